"""expand-schema on a real lab: the app's Alembic expand revisions against the lab writer, the handle
backfill in batches, squawk in preflight. Lifecycle and a crash at every point through the shared
harness (the crash cases, the longest, are in test_expand_schema_crashes.py so that another worker
runs them); a revision squawk rejects refused before anything is applied; the backfill pausing while a
secondary's link is cut and going on by itself once it catches up."""

from __future__ import annotations

import psycopg
import pytest

from migrate.engine import services
from migrate.lab import wan_client
from migrate.providers.schema_source import branch_revisions
from phases.expand_schema import BACKFILL_STEP
from tests.cli_helpers import migrate, start_migrate
from tests.phases import harness
from tests.phases.harness import PhaseUnderTest

PHASE = "expand-schema"
STEP_IDS = tuple(r.id for r in branch_revisions("expand")) + (BACKFILL_STEP, "watch-players")
HEAD = STEP_IDS[-3]


def _writer(lab) -> psycopg.Connection:
    return psycopg.connect(lab.primary().dsn(), autocommit=True)


def assert_expanded(lab) -> None:
    """Read from the writer, not the journal: expand@head is there and every handle is claimed."""
    with _writer(lab) as conn:
        assert {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")} == {HEAD}
        players = conn.execute("SELECT count(*) FROM players").fetchone()[0]
        claimed = conn.execute("SELECT count(*) FROM players p JOIN handle_claims c "
                               "ON c.handle = p.handle AND c.player_id = p.id").fetchone()[0]
        assert players > 0 and claimed == players


def assert_baseline(lab) -> None:
    with _writer(lab) as conn:
        assert {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")} == {"0001_baseline"}
        assert conn.execute("SELECT to_regclass('handle_claims')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'players' "
                            "AND column_name = 'home_epoch'").fetchone()[0] == 0


# inside a revision: its second checkpoint, once the DDL is applied (the first is the lag wait before it);
# inside the backfill: its second checkpoint, after the first batch was journaled. Before and after only
# the first revision and the backfill: each revision's own state is the one inside it (its DDL applied,
# not journaled), so "after" would repeat it (ca. 60 s of suite time for nothing new).
EXPAND = PhaseUnderTest(PHASE, None, STEP_IDS, assert_expanded, assert_baseline,
                        inside_at={step: "@2" for step in STEP_IDS}, boundaries=(STEP_IDS[0], BACKFILL_STEP))


@pytest.fixture
def schema_lab(clean_lab):
    """The worker's lab at the baseline schema before and after (its other modules expect it)."""
    assert_baseline(clean_lab)
    yield clean_lab
    with harness.session() as session:
        services.rollback_phase(session, PHASE, None)
    assert_baseline(clean_lab)


def test_expand_verify_rollback_expand_verify(schema_lab):
    harness.lifecycle(EXPAND, schema_lab)


BAD_REVISION = '''"""A revision squawk must reject: a plain CREATE INDEX (blocks writes while it builds) and a NOT NULL
column without a default (fails on any existing row, rewrites the table).

Revision ID: e999_rejected_by_squawk
Revises: {head}
"""

from alembic import op

revision = "e999_rejected_by_squawk"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE INDEX IF NOT EXISTS players_level ON players (level)")
    op.execute("ALTER TABLE players ADD COLUMN IF NOT EXISTS guild_id bigint NOT NULL")


def downgrade():
    pass
'''


def test_a_revision_squawk_rejects_is_refused_in_preflight_and_nothing_is_applied(schema_lab, tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "e999_rejected_by_squawk.py").write_text(BAD_REVISION.format(head=HEAD))
    monkeypatch.setenv("GAME_MIGRATIONS_EXTRA", str(extra))
    refused = migrate("phase", "run", PHASE, "--yes")
    assert refused.returncode != 0
    assert "squawk-lint" in refused.stdout + refused.stderr
    for rule in ("require-concurrent-index-creation", "adding-required-field"):
        assert rule in refused.stdout + refused.stderr, rule
    assert_baseline(schema_lab)  # nothing applied
    with harness.session() as session:
        kinds = [e.kind for e in services.history(session, 0)]
    assert "step_started" not in kinds


def test_the_backfill_pauses_while_a_secondary_lags_and_goes_on_by_itself(schema_lab):
    region = "ap-northeast-1"
    migrate("phase", "run", "stand-up-region", "--region", region, "--yes", check=0)
    migrate("phase", "run", "attach-secondary", "--region", region, "--yes", check=0)
    link = f"{region}->us-east-1:pg"  # the secondary's replication stream crosses this link
    harness.die_at(EXPAND, f"before:{BACKFILL_STEP}", "run")  # the revisions are in; the backfill is next
    run = None
    try:
        wan_client.cut_link(schema_lab.wan_control_port, link)  # the secondary stops streaming: over budget
        run = start_migrate("phase", "run", PHASE, "--yes")
        harness.wait_for_event(lambda e: e.kind == "step_progress" and e.step == BACKFILL_STEP
                               and "paused" in e.data, "the backfill to pause")
        with _writer(schema_lab) as conn:
            assert conn.execute("SELECT count(*) FROM handle_claims").fetchone()[0] == 0  # nothing copied while paused
        wan_client.restore_link(schema_lab.wan_control_port, link)
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err
    finally:
        wan_client.restore_link(schema_lab.wan_control_port, link)
        if run is not None and run.poll() is None:
            run.kill()
    with harness.session() as session:
        events = [e for e in services.history(session, 0) if e.step == BACKFILL_STEP and e.kind == "step_progress"]
    assert any("resumed" in e.data for e in events)
    assert_expanded(schema_lab)
    migrate("phase", "rollback", "attach-secondary", "--region", region, check=0)
    migrate("phase", "rollback", "stand-up-region", "--region", region, check=0)


def test_a_kill_in_the_middle_of_the_backfill_resumes_after_the_last_journaled_batch(schema_lab):
    harness.die_at(EXPAND, f"inside:{BACKFILL_STEP}@2", "run")  # after the first batch was journaled

    def saved_last_ids(since: int = 0) -> list[int]:
        with harness.session() as session:
            return [e.data["last_id"] for e in services.history(session, 0)
                    if e.serial > since and e.step == BACKFILL_STEP and e.kind == "step_progress"
                    and "last_id" in e.data]

    journaled = saved_last_ids()
    assert len(journaled) == 1, journaled
    since = harness.last_serial()
    with harness.session() as session:
        assert services.run_phase(session, PHASE, None).status == "succeeded"
    resumed = saved_last_ids(since)
    assert resumed and resumed[0] > journaled[0], (journaled, resumed)  # from scratch would repeat the first
    assert_expanded(schema_lab)
