"""attach-secondary on a real lab: real PostgreSQL primary and standbys, the real WAN proxy.

Lifecycle: apply → verify → rollback → apply → verify. Crash: the process SIGKILLs itself at every
step boundary and inside every step; re-running the same command reaches the same verified end."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from migrate.engine import services
from migrate.providers.lab.global_database import LabGlobalDatabase
from phases.attach_secondary import AttachSecondary
from tests.phases import harness
from tests.phases.harness import PhaseUnderTest
from tests.conftest import SPEC

REGION = "ap-northeast-1"
STEP_IDS = [s.id for s in AttachSecondary().steps(None)]


def open_session():
    return services.open_session(Path(os.environ.get("MIGRATE_SPEC", SPEC)), "lab")


def assert_attached_and_verified(lab, region=REGION):
    """The end state of a successful attach, read from the real processes, not the journal."""
    session = open_session()
    try:
        report = services.status(session)
        row = next(r for r in report.phases if r["phase"] == "attach-secondary" and r["region"] == region)
        assert row["status"] == "succeeded", row
        gdb = LabGlobalDatabase(lab)
        assert gdb.replication_lag(region).state == "streaming"
        slot = gdb.secondary_facts(region).slot_name
        assert slot in gdb.primary_facts().slots
        assert gdb.reader_endpoint(region) == lab.pg(region).dsn()
        # the replica really serves the players, through its own port
        with psycopg.connect(lab.pg(region).dsn()) as conn:
            assert conn.execute("select count(*) from players").fetchone()[0] >= 3000
            assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is True
    finally:
        session.close()


def assert_nothing_left(lab, region=REGION):
    gdb = LabGlobalDatabase(lab)
    assert not lab.pg(region).exists()
    assert gdb.secondary_facts(region).slot_name not in gdb.primary_facts().slots
    assert gdb.replication_lag(region).state == "absent"
    assert gdb.reader_endpoint(region) != lab.pg(region).dsn()  # reads back at the writer


def test_attach_verify_rollback_attach_verify(clean_lab):
    session = open_session()
    try:
        first = services.run_phase(session, "attach-secondary", REGION)
        assert first.status == "succeeded"
        assert all(c.ok for c in first.verify)
        assert first.outputs["verify-data"]["mismatches"] == 0
        assert first.outputs["verify-data"]["rows"] >= 3000
        assert first.outputs["verify-data"]["chunks"] >= 3
    finally:
        session.close()
    assert_attached_and_verified(clean_lab)

    # a write on the writer reaches the replica and is read locally
    with psycopg.connect(clean_lab.primary().dsn(), autocommit=True) as conn:
        conn.execute("update players set coins = 424242 where id = 7")
    session = open_session()
    try:
        assert services.run_phase(session, "attach-secondary", REGION).status == "already-done"
        back = services.rollback_phase(session, "attach-secondary", REGION)
        assert back.status == "rolled-back"
        assert [s["result"] for s in back.steps] == ["undone"] * len(STEP_IDS)
        assert_nothing_left(clean_lab)
        assert services.rollback_phase(session, "attach-secondary", REGION).status == "nothing-to-roll-back"
        again = services.run_phase(session, "attach-secondary", REGION)
        assert again.status == "succeeded"
    finally:
        session.close()
    assert_attached_and_verified(clean_lab)
    with psycopg.connect(clean_lab.pg(REGION).dsn()) as conn:
        assert conn.execute("select coins from players where id = 7").fetchone()[0] == 424242


# inside verify-data: at the third checkpoint, i.e. after two chunks were compared and journaled. Before
# and after only the steps whose inside point is mid-step (the copy, the catch-up wait, the chunked
# verify); the others' inside point stands after their action, the state "after" would repeat.
ATTACH = PhaseUnderTest("attach-secondary", REGION, tuple(STEP_IDS), assert_attached_and_verified,
                        assert_nothing_left, inside_at={"verify-data": "@3"},
                        boundaries=("seed-secondary", "wait-catch-up", "verify-data"))


def test_a_crash_at_every_point_resumes_to_the_same_verified_end(clean_lab):
    harness.crash_at_every_point_in_turn(ATTACH, clean_lab)


def test_a_crash_at_every_undo_point_rolls_back_again_to_nothing(clean_lab):
    harness.crash_at_every_undo_point_in_turn(ATTACH, clean_lab)


def test_verify_data_chunks_by_rows_so_sparse_ids_cost_nothing(clean_lab):
    """Players signed up after expand get ids from their home's block (from 2**40 up): a chunk is a
    number of rows, not of ids, or verify-data would walk a trillion empty ids."""
    with psycopg.connect(clean_lab.primary().dsn(), autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM players").fetchone()[0] + 1
        conn.execute("INSERT INTO players (id, handle, home_region) VALUES (%s, 'far_block', 'ap-northeast-1')",
                     ((2 << 40) + 5,))
    session = open_session()
    try:
        done = services.run_phase(session, "attach-secondary", REGION)
        assert done.status == "succeeded", done.to_json()
        verified = done.outputs["verify-data"]
        assert verified["rows"] == total and verified["mismatches"] == 0
        assert verified["chunks"] == -(-total // 1000)  # the spec's 1000-row chunks, nothing more
        assert services.rollback_phase(session, "attach-secondary", REGION).status == "rolled-back"
    finally:
        session.close()
        with psycopg.connect(clean_lab.primary().dsn(), autocommit=True) as conn:
            conn.execute("DELETE FROM players WHERE id = %s", ((2 << 40) + 5,))
