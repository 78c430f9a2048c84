"""players (home_region, id): what a shard's per-home work walks in id order — the cutover's
publication and catch-up checks, and contract-schema's deletion of the rows a shard no longer owns.
Built CONCURRENTLY (outside a transaction: writes go on while it builds); a build that failed
leaves an INVALID index, which the downgrade drops and a rerun rebuilds.

Revision ID: e005_players_home_index
Revises: e004_handle_claims
"""

from __future__ import annotations

from alembic import op

revision = "e005_players_home_index"
down_revision = "e004_handle_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS players_home_region_id ON players (home_region, id)")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS players_home_region_id")
