"""handle_claims: the one authority for handles (DESIGN §2, "handle"; why this one: app/handles.py).

A handle is taken when its row exists here, in the us-east-1 shard, whose single writer makes the
primary key the arbiter: two regions claiming one name at the same moment meet at one unique index,
and exactly one INSERT wins. Existing players' handles are copied in by expand-schema's backfill,
in keyset batches (players.handle is already unique, so the copy cannot conflict with itself).

Revision ID: e004_handle_claims
Revises: e003_player_id_blocks
"""

from __future__ import annotations

from alembic import op

revision = "e004_handle_claims"
down_revision = "e003_player_id_blocks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS handle_claims (
            handle      text        PRIMARY KEY,
            player_id   bigint      NOT NULL,
            home_region text        NOT NULL,
            claimed_at  timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS handle_claims")
