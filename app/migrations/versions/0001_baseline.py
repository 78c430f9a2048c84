"""Baseline: the players table as the live game has it.

The lab seeds this table with CREATE TABLE IF NOT EXISTS before Alembic ever runs, so the baseline
uses the same statement: applied to a database that already has the table it only records the
revision.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

PLAYERS = """
CREATE TABLE IF NOT EXISTS players (
    id          bigint PRIMARY KEY,
    handle      text   NOT NULL UNIQUE,
    home_region text   NOT NULL,
    level       int,
    xp          bigint,
    coins       bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    profile     jsonb  NOT NULL DEFAULT '{}'::jsonb
)
"""


def upgrade() -> None:
    op.execute(PLAYERS)


def downgrade() -> None:
    # Dropping the baseline would drop every player: no migration path should ever do that.
    raise RuntimeError("the baseline revision has no downgrade (it would drop the players table)")
