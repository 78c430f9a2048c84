"""Keep handle_claims in step with players while apps that do not know it (v1) still write.

A v1 app renames a player with a plain UPDATE of players.handle; without this trigger the authority
would go on holding the old name and miss the new one. The trigger claims a player's handle when the
row is inserted or renamed (releasing the old name), and releases it when the row is deleted; a name
claimed by another player is refused with SQLSTATE 23505 (unique_violation), as players' own unique
index does today. Contract removes it once every region runs v2 (which claims through the authority
itself, even when the player's home writer is another database).

Revision ID: e007_handle_claims_sync
Revises: e006_write_fence
"""

from __future__ import annotations

from alembic import op

revision = "e007_handle_claims_sync"
down_revision = "e006_write_fence"
branch_labels = None
depends_on = None

SYNC_FUNCTION = """
CREATE OR REPLACE FUNCTION game_handle_claims_sync() RETURNS trigger LANGUAGE plpgsql AS $sync$
DECLARE
    holder bigint;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM handle_claims WHERE handle = OLD.handle AND player_id = OLD.id;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    INSERT INTO handle_claims (handle, player_id, home_region) VALUES (NEW.handle, NEW.id, NEW.home_region)
        ON CONFLICT (handle) DO NOTHING;
    SELECT player_id INTO holder FROM handle_claims WHERE handle = NEW.handle;
    IF holder <> NEW.id THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation', CONSTRAINT = 'handle_claims_pkey',
            MESSAGE = 'handle ' || NEW.handle || ' is claimed by another player';
    END IF;
    RETURN NEW;
END
$sync$"""


def upgrade() -> None:
    op.execute(SYNC_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS players_handle_claims_sync ON players")
    op.execute("CREATE TRIGGER players_handle_claims_sync AFTER INSERT OR DELETE OR UPDATE OF handle ON players "
               "FOR EACH ROW EXECUTE FUNCTION game_handle_claims_sync()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS players_handle_claims_sync ON players")
    op.execute("DROP FUNCTION IF EXISTS game_handle_claims_sync()")
