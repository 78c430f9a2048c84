"""Player ids per writer: one sequence per home region over a block of ids no other writer uses
(DESIGN §2, "player id"). Ids of the players who exist today are below 2**40; home region number r
(app.ids.HOME_REGIONS) allocates from [r·2**40, (r+1)·2**40). A sequence lives in its shard and
follows it when the shard is promoted, so after a cutover the new writer goes on from where the
origin stopped, and two writers never hand out the same id.

Revision ID: e003_player_id_blocks
Revises: e002_validate_home_epoch
"""

from __future__ import annotations

from alembic import op

from app.ids import HOME_REGIONS, block_of, sequence_name

revision = "e003_player_id_blocks"
down_revision = "e002_validate_home_epoch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for region in HOME_REGIONS:
        first, last = block_of(region)
        op.execute(f"CREATE SEQUENCE IF NOT EXISTS {sequence_name(region)} AS bigint "
                   f"START WITH {first} MINVALUE {first} MAXVALUE {last} NO CYCLE")


def downgrade() -> None:
    for region in HOME_REGIONS:
        op.execute(f"DROP SEQUENCE IF EXISTS {sequence_name(region)}")
