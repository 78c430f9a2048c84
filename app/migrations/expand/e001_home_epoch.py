"""players.home_epoch: how many times the player's home has moved (DESIGN §2, session row).

Re-homing a player (a cutover, a region loss) bumps it; session tokens carry it; a write carrying an
older epoch is refused, so a client still holding a token from before a re-homing cannot write at
the old home. A constant default makes the ADD COLUMN a catalogue change (PostgreSQL ≥ 11): no table
rewrite. The CHECK goes in NOT VALID (no scan under the ACCESS EXCLUSIVE lock) and is validated by
the next revision, under a lock that lets writes through.

Revision ID: e001_home_epoch
Revises: e000_expand_root
"""

from __future__ import annotations

from alembic import op

revision = "e001_home_epoch"
down_revision = "e000_expand_root"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE players ADD COLUMN IF NOT EXISTS home_epoch bigint NOT NULL DEFAULT 1")
    op.execute("ALTER TABLE players ADD CONSTRAINT players_home_epoch_positive CHECK (home_epoch >= 1) NOT VALID")


def downgrade() -> None:
    op.execute("ALTER TABLE players DROP CONSTRAINT IF EXISTS players_home_epoch_positive")
    op.execute("ALTER TABLE players DROP COLUMN IF EXISTS home_epoch")
