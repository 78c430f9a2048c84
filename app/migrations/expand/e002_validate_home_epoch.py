"""Validate players_home_epoch_positive: a scan under SHARE UPDATE EXCLUSIVE (reads and writes go
on), in its own transaction — validating in the transaction that added it would hold that one's
ACCESS EXCLUSIVE lock through the scan.

Revision ID: e002_validate_home_epoch
Revises: e001_home_epoch
"""

from __future__ import annotations

from alembic import op

revision = "e002_validate_home_epoch"
down_revision = "e001_home_epoch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE players VALIDATE CONSTRAINT players_home_epoch_positive")


def downgrade() -> None:
    pass  # a validated constraint becomes unvalidated only by dropping it: e001's downgrade does
