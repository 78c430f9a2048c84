"""The write fence's carrier becomes a sequence per home (`game_fence_<home>`, 1 = fenced), so that it
works on Aurora, whose parameter groups take no custom setting such as e006's `game.fenced_homes`.

Why a sequence: `setval()` is not transactional and a sequence is read outside MVCC, so a transaction
whose snapshot is older than the fence still sees it at its next row, as it did the reloaded setting
(tried on PostgreSQL 15: a REPEATABLE READ transaction read 0, another session set 1, its next
UPDATE was refused). A fence kept in a table would not do that. It acts at once (no reload to wait
for) and it is plain SQL, which Aurora takes. Only the tool's role may change it (UPDATE is not
granted); every role may read it. Logical replication carries no sequence changes, so a fence set on
one writer never reaches another through the reverse stream; physical standbys replay it.

The setting is still read as well: a standby cannot run `setval()`, so the lab stages a home's future
writer with the other homes listed in `game.fenced_homes` in its configuration. It comes out of
promotion fenced for them before the tool has set their sequences.

Revision ID: e008_fence_sequences
Revises: e007_handle_claims_sync
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

from app.ids import HOME_REGIONS

revision = "e008_fence_sequences"
down_revision = "e007_handle_claims_sync"
branch_labels = None
depends_on = None

MARKER = "game_cutover_marker"


def fence_sequence(region: str) -> str:
    return "game_fence_" + region.replace("-", "_")


FENCED_FUNCTION = """
CREATE OR REPLACE FUNCTION game_home_fenced(home text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fenced$
DECLARE
    carrier regclass := to_regclass('game_fence_' || replace(home, '-', '_'));
BEGIN
    IF carrier IS NOT NULL AND coalesce(pg_sequence_last_value(carrier), 0) = 1 THEN
        RETURN true;
    END IF;
    RETURN home = ANY (coalesce(string_to_array(nullif(current_setting('game.fenced_homes', true), ''), ','),
                                '{}'::text[]));
END
$fenced$"""

FENCE_FUNCTION = """
CREATE OR REPLACE FUNCTION game_write_fence() RETURNS trigger LANGUAGE plpgsql AS $fence$
DECLARE
    home text := CASE WHEN TG_OP = 'DELETE' THEN OLD.home_region ELSE NEW.home_region END;
BEGIN
    IF game_home_fenced(home) OR (TG_OP = 'UPDATE' AND OLD.home_region <> home AND game_home_fenced(OLD.home_region)) THEN
        -- concatenated, not a % placeholder: the offline SQL (for squawk and reviewers) would double it
        RAISE EXCEPTION USING ERRCODE = 'read_only_sql_transaction',
            MESSAGE = 'writes of players homed in ' || home || ' are fenced (a cutover is moving their writer)';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fence$"""


def upgrade() -> None:
    for region in HOME_REGIONS:
        name = fence_sequence(region)
        op.execute(f"CREATE SEQUENCE IF NOT EXISTS {name} AS smallint MINVALUE 0 MAXVALUE 1 START WITH 0 NO CYCLE")
        op.execute(f"GRANT SELECT ON SEQUENCE {name} TO PUBLIC")
    op.execute(f"CREATE SEQUENCE IF NOT EXISTS {MARKER} AS bigint MINVALUE 0 START WITH 0")
    op.execute(f"GRANT SELECT ON SEQUENCE {MARKER} TO PUBLIC")
    op.execute(FENCED_FUNCTION)
    op.execute(FENCE_FUNCTION)  # the trigger (e006) calls it by name: replaced in place, no trigger change


def downgrade() -> None:
    # e006's own function back, read from its file so there is one definition of it
    source = Path(__file__).resolve().parent / "e006_write_fence.py"
    spec = importlib.util.spec_from_file_location("e006_write_fence", source)
    assert spec is not None and spec.loader is not None
    e006 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e006)
    op.execute(e006.FENCE_FUNCTION)
    op.execute("DROP FUNCTION IF EXISTS game_home_fenced(text)")
    op.execute(f"DROP SEQUENCE IF EXISTS {MARKER}")
    for region in HOME_REGIONS:
        op.execute(f"DROP SEQUENCE IF EXISTS {fence_sequence(region)}")
