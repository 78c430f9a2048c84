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

from app.schema_baseline import PLAYERS_DDL as PLAYERS  # noqa: E402 — one definition, shared with the lab's seeder


def upgrade() -> None:
    op.execute(PLAYERS)


def downgrade() -> None:
    # Dropping the baseline would drop every player: no migration path should ever do that.
    raise RuntimeError("the baseline revision has no downgrade (it would drop the players table)")
