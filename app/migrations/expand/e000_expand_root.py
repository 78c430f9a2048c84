"""Root of the `expand` branch: no schema change; later expand revisions chain from it.

Revision ID: e000_expand_root
Revises: 0001_baseline
"""

from __future__ import annotations

revision = "e000_expand_root"
down_revision = "0001_baseline"
branch_labels = ("expand",)
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
