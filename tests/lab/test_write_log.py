"""write_log.history turns the journal and the databases' logs into the one-writer checker's history: a
cutover's promotion makes the home writer a writer, an evacuation that takes its home makes it gone (a
write it accepts afterwards is a violation) and the origin writable again; a region's successive home
writers share a port, so copies are told apart by the whole entry, not its sequence number alone."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

from migrate.lab.checkers.writers import check_one_writer
from migrate.lab.write_log import LoggedWrite, history
from migrate.names import REGIONS

TOKYO, ORIGIN_PORT, TOKYO_PORT = "ap-northeast-1", 5000, 5001


def event(phase, kind, step, at, **data):
    return SimpleNamespace(phase=phase, region=TOKYO, kind=kind, step=step, data=data,
                           at=datetime.fromtimestamp(at, timezone.utc))


JOURNAL = [
    event("cutover", "step_succeeded", "fence-origin", 10.0, outputs={"writable_until": 10.0}),
    event("cutover", "step_succeeded", "promote", 11.0, outputs={"promoting_from": 11.0}),
    event("evacuate-region", "step_progress", "take-home", 20.0, taken=True, lost_because="cut off"),
    event("evacuate-region", "step_progress", "take-home", 21.0, origin_writable_from=21.0),
]


def tokyo_write(seq, at, player=7):
    return LoggedWrite(TOKYO_PORT, seq, player, TOKYO, at)


def origin_write(seq, at, player=7):
    return LoggedWrite(ORIGIN_PORT, seq, player, TOKYO, at)


def test_writes_in_order_across_a_region_loss_are_one_writer():
    logs = [origin_write(1, 5.0), tokyo_write(2, 15.0), origin_write(3, 25.0)]
    assert check_one_writer(history(ORIGIN_PORT, {TOKYO: TOKYO_PORT}, logs, JOURNAL, 0.0), REGIONS) == []


def test_a_write_the_lost_writer_took_after_its_home_was_taken_is_a_violation():
    logs = [tokyo_write(2, 15.0), tokyo_write(3, 22.0), origin_write(4, 25.0)]
    found = check_one_writer(history(ORIGIN_PORT, {TOKYO: TOKYO_PORT}, logs, JOURNAL, 0.0), REGIONS)
    assert found and "ap-northeast-1 home writer at t=22.000 while it was not a writer" in found[0]


def test_two_writers_of_one_port_with_the_same_sequence_number_are_both_kept():
    # the lost writer's entry 2 and the fresh writer's entry 2 (staged later from the same sequence)
    logs = [tokyo_write(2, 15.0), tokyo_write(2, 22.0, player=8)]
    found = check_one_writer(history(ORIGIN_PORT, {TOKYO: TOKYO_PORT}, logs, JOURNAL, 0.0), REGIONS)
    assert found, "the second write (after the take-over, no new promotion) must not be dropped as a copy"
