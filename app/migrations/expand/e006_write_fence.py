"""The per-row write fence (DESIGN §9): a BEFORE ROW trigger on players that refuses a write to a
player whose home is listed in the reloadable setting `game.fenced_homes` (comma-separated regions,
set in postgresql.conf / the cluster parameter group and applied with pg_reload_conf()).

Installed now and inactive: with the setting empty or absent the trigger only reads it. The cutover
fences one home at a time by setting it. Why a trigger on a reloadable setting: it stops even an
open REPEATABLE READ transaction at its next statement, where a fence kept in a table does not (an
older snapshot still sees it unset), `default_transaction_read_only` is per session and any session
can turn it off, and row-level security silently updates 0 rows. Logical replication's apply runs
with session_replication_role = replica, which skips ordinary triggers: a fenced origin still takes
the reverse stream. The error is SQLSTATE 25006 (read_only_sql_transaction), which the apps treat
as "held: retry at the home's writer", never as a failure to show a player.

Revision ID: e006_write_fence
Revises: e005_players_home_index
"""

from __future__ import annotations

from alembic import op

revision = "e006_write_fence"
down_revision = "e005_players_home_index"
branch_labels = None
depends_on = None

FENCE_FUNCTION = """
CREATE OR REPLACE FUNCTION game_write_fence() RETURNS trigger LANGUAGE plpgsql AS $fence$
DECLARE
    fenced text[] := string_to_array(nullif(current_setting('game.fenced_homes', true), ''), ',');
    home   text;
BEGIN
    IF fenced IS NULL THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    home := CASE WHEN TG_OP = 'DELETE' THEN OLD.home_region ELSE NEW.home_region END;
    IF home = ANY (fenced) OR (TG_OP = 'UPDATE' AND OLD.home_region = ANY (fenced)) THEN
        -- concatenated, not a % placeholder: the offline SQL (for squawk and reviewers) would double it
        RAISE EXCEPTION USING ERRCODE = 'read_only_sql_transaction',
            MESSAGE = 'writes of players homed in ' || home || ' are fenced (a cutover is moving their writer)';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fence$"""


def upgrade() -> None:
    op.execute(FENCE_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS players_write_fence ON players")
    op.execute("CREATE TRIGGER players_write_fence BEFORE INSERT OR UPDATE OR DELETE ON players "
               "FOR EACH ROW EXECUTE FUNCTION game_write_fence()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS players_write_fence ON players")
    op.execute("DROP FUNCTION IF EXISTS game_write_fence()")
