"""players (home_region, id), unique, and players' replica identity: what a shard's per-home work
walks in id order — the cutover's reverse stream and contract-schema's deletion of the rows a shard
no longer owns.

The reverse stream publishes one home's rows from its new writer back to the origin:
`CREATE PUBLICATION … FOR TABLE players WHERE (home_region = '…')`. PostgreSQL 15 requires every
column of a row filter in the replica identity, accepts a bad filter at CREATE time and then fails
every UPDATE and DELETE on the publisher (DESIGN §9). The default identity is the primary key (id);
this index becomes it (unique, as an identity index must be: id alone is unique, so the pair is).
Cheaper than REPLICA IDENTITY FULL, which would log every updated row's whole old version. The
identity change is a catalogue update under a brief lock (lock_timeout from env.py; no rewrite).
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
        op.execute("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS players_home_region_id "
                   "ON players (home_region, id)")
    op.execute("ALTER TABLE players REPLICA IDENTITY USING INDEX players_home_region_id")


def downgrade() -> None:
    op.execute("ALTER TABLE players REPLICA IDENTITY DEFAULT")
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS players_home_region_id")
