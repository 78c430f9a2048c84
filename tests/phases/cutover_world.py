"""The cutover world the cutover test modules share: Tokyo's home, what "cut over" and "nothing left"
look like from the lab's real processes, the phase as the harness sees it, and the expanded lab."""

from __future__ import annotations

import json
import os

import psycopg
import pytest

from migrate.engine import services
from migrate.lab.topology import REGIONS, SOURCE_REGION
from migrate.providers.lab.home_serving import LabHomeServing
from migrate.providers.lab.home_writers import ORIGIN, LabHomeWriters, slot_name
from migrate.providers.lab.runtime import LabRegionRuntime
from phases.cutover import PHASE as CUTOVER_PHASE
from tests.phases import harness
from tests.phases.conftest import copy_journal
from tests.phases.harness import PhaseUnderTest

REGION = "ap-northeast-1"
STEP_IDS = tuple(s.id for s in CUTOVER_PHASE.steps(None))


def assert_cut_over(lab) -> None:
    """From the lab's processes: Tokyo's home has exactly one writer, its own; the way back exists."""
    hw = LabHomeWriters(lab)
    assert hw.is_writer(REGION)
    assert REGION in hw.fenced(ORIGIN)
    assert set(REGIONS) - {REGION} <= hw.fenced(REGION)
    assert hw.reverse_stream(REGION)["enabled"]
    assert all(hw.writes_routed(REGION).values())
    assert LabHomeServing(lab).serving(REGION) == REGION
    for other in set(REGIONS) - {REGION}:  # its shard's secondaries stream, and the apps there know them
        assert lab.shard_pg(REGION, other).is_running(), other
        assert f"reader:{REGION}" in json.loads(lab.writers_file(other).read_text()), other


def assert_nothing_left(lab) -> None:
    hw = LabHomeWriters(lab)
    assert not hw.staged(REGION)
    assert REGION not in hw.fenced(ORIGIN)
    assert hw.reverse_stream(REGION) is None
    assert not any(hw.writes_routed(REGION).values())
    assert LabHomeServing(lab).serving(REGION) == SOURCE_REGION
    assert not any(lab.shard_pg(REGION, other).exists() for other in set(REGIONS) - {REGION})
    with psycopg.connect(lab.primary().dsn()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (slot_name(REGION),)).fetchone() == (0,)


# inside@1 everywhere: stage-writer's copy loop, after the fence before the barrier, after the marker
# is journaled, after promotion, after the slot, after routing, after the subscription, after serving
# before the move. Before and after too only where inside is mid-step; elsewhere it already stands after
# the step's action.
CUTOVER = PhaseUnderTest("cutover", REGION, STEP_IDS, assert_cut_over, assert_nothing_left,
                         undo_inside=STEP_IDS, boundaries=("stage-writer", "fence-origin", "catch-up", "rehome"))


@pytest.fixture
def expanded_lab(expanded_journal, clean_lab):
    """The worker's lab with expand-schema applied (the fence trigger, the replica identity), on a copy of
    the module's journal (tests/phases/conftest.py); after the test, cutover rolled back. Tokyo's cache
    is up (re-home moves the home's leaderboard entries and tickets there)."""
    copy_journal(expanded_journal, os.environ["MIGRATE_STATE"])
    LabRegionRuntime(clean_lab).ensure_cache(REGION)
    yield clean_lab
    with harness.session() as session:
        services.rollback_phase(session, "cutover", REGION)
    assert_nothing_left(clean_lab)
