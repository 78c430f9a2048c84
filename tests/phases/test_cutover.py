"""cutover on a real lab: Tokyo's home writer staged from the us-east-1 origin through the WAN link,
the origin fenced for Tokyo's home with the barrier, the marker replayed, the writer promoted, the
reverse stream created, every region's apps routed. Read from the real processes, not the journal.

Lifecycle and a crash at every point (forward and during the rollback) through the shared harness;
a Tokyo-homed player's write lands on the new writer and reaches the origin by the reverse stream;
after a rollback the origin takes that home's writes again and holds every write the new writer took."""

from __future__ import annotations

import psycopg
import pytest

from migrate.engine import services
from migrate.lab.topology import REGIONS
from migrate.providers.lab.home_writers import ORIGIN, LabHomeWriters, slot_name
from phases.cutover import PHASE as CUTOVER_PHASE
from tests.phases import harness
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


def assert_nothing_left(lab) -> None:
    hw = LabHomeWriters(lab)
    assert not hw.staged(REGION)
    assert REGION not in hw.fenced(ORIGIN)
    assert hw.reverse_stream(REGION) is None
    assert not any(hw.writes_routed(REGION).values())
    with psycopg.connect(lab.primary().dsn()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (slot_name(REGION),)).fetchone() == (0,)


# inside@1 everywhere: stage-writer's copy loop, after the fence before the barrier, after the marker
# is journaled, after promotion, after the stream, after routing
CUTOVER = PhaseUnderTest("cutover", REGION, STEP_IDS, assert_cut_over, assert_nothing_left,
                         undo_inside=STEP_IDS)


@pytest.fixture
def expanded_lab(clean_lab):
    """The worker's lab with expand-schema applied (the fence trigger, the replica identity); after the
    test, cutover and expand rolled back, so the lab is as the other modules expect it."""
    with harness.session() as session:
        assert services.run_phase(session, "expand-schema", None).status == "succeeded"
    yield clean_lab
    with harness.session() as session:
        services.rollback_phase(session, "cutover", REGION)
        services.rollback_phase(session, "expand-schema", None)
    assert_nothing_left(clean_lab)


def tokyo_player(lab) -> int:
    with psycopg.connect(lab.primary().dsn()) as conn:
        return conn.execute("SELECT min(id) FROM players WHERE home_region = %s", (REGION,)).fetchone()[0]


def coins(dsn: str, player: int) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT coins FROM players WHERE id = %s", (player,)).fetchone()[0]


def test_cutover_verify_rollback_cutover_verify(expanded_lab):
    harness.lifecycle(CUTOVER, expanded_lab)


def test_the_new_writer_takes_the_homes_writes_the_origin_keeps_a_copy_and_gets_them_back(expanded_lab):
    lab, hw = expanded_lab, LabHomeWriters(expanded_lab)
    player = tokyo_player(lab)
    with harness.session() as session:
        assert services.run_phase(session, "cutover", REGION).status == "succeeded"
    home = lab.home_pg(REGION).dsn()
    with psycopg.connect(lab.primary().dsn(), autocommit=True) as origin:  # the origin refuses the home
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            origin.execute("UPDATE players SET coins = 1 WHERE id = %s", (player,))
    with psycopg.connect(home, autocommit=True) as writer:
        writer.execute("UPDATE players SET coins = 4242 WHERE id = %s", (player,))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # and the new writer refuses the others
            writer.execute("UPDATE players SET coins = 1 WHERE id = "
                           "(SELECT min(id) FROM players WHERE home_region = 'us-east-1')")
    hw.drain_reverse_stream(REGION, 60, lambda: None)
    assert coins(lab.primary().dsn(), player) == 4242  # the origin's copy, by the reverse stream
    with psycopg.connect(home, autocommit=True) as writer:
        writer.execute("UPDATE players SET coins = 4343 WHERE id = %s", (player,))
    with harness.session() as session:
        assert services.rollback_phase(session, "cutover", REGION).status == "rolled-back"
    assert coins(lab.primary().dsn(), player) == 4343  # drained before routing back: nothing lost
    with psycopg.connect(lab.primary().dsn(), autocommit=True) as origin:
        origin.execute("UPDATE players SET coins = 1 WHERE id = %s", (player,))  # the origin owns it again


def test_a_crash_at_every_point_resumes_to_the_same_verified_end(expanded_lab):
    harness.crash_at_every_point_in_turn(CUTOVER, expanded_lab)


def test_a_crash_at_every_undo_point_rolls_back_again_to_nothing(expanded_lab):
    harness.crash_at_every_undo_point_in_turn(CUTOVER, expanded_lab)
