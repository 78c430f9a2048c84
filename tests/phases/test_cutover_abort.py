"""`migrate abort` during a cutover, at every step before routing flips, on a real lab: the run rolls
back what it did and the origin is in charge of the home again (no fence, no staged writer, no slot,
nothing routed), and a write to the home lands on the origin at once."""

from __future__ import annotations

import psycopg
import pytest

from migrate.engine import faults, services
from tests.phases import harness
from tests.phases.cutover_world import REGION, STEP_IDS, assert_nothing_left, expanded_lab  # noqa: F401

BEFORE_ROUTING = STEP_IDS[:STEP_IDS.index("route-writes")]


def test_every_step_before_routing_is_a_step_an_abort_can_land_in():
    assert BEFORE_ROUTING == ("stage-writer", "fence-origin", "catch-up", "promote", "reverse-slot")


def test_an_abort_at_each_step_before_routing_flips_puts_the_origin_back_in_charge(expanded_lab, monkeypatch):
    lab = expanded_lab
    with psycopg.connect(lab.primary().dsn()) as conn:
        player = conn.execute("SELECT min(id) FROM players WHERE home_region = %s", (REGION,)).fetchone()[0]
    # inside each step: after what it did first (the copy, the fence, the marker, the promotion, the slot)
    for step in BEFORE_ROUTING:
        monkeypatch.setenv(faults.ABORT_VAR, f"inside:{step}")
        faults.reset()
        since = harness.last_serial()
        with harness.session() as session:
            outcome = services.run_phase(session, "cutover", REGION)
        assert outcome.status == "aborted", (step, outcome.to_json())
        kinds = harness.journal_kinds("cutover", since)
        assert ("run_aborted", None) in kinds and kinds[-1] == ("rollback_succeeded", None), (step, kinds)
        assert_nothing_left(lab)
        with psycopg.connect(lab.primary().dsn(), autocommit=True) as origin:  # the origin takes the home's writes
            origin.execute("UPDATE players SET coins = coins + 1 WHERE id = %s", (player,))
    monkeypatch.delenv(faults.ABORT_VAR)
    faults.reset()
