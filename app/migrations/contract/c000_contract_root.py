"""Root of the `contract` branch: no schema change; later contract revisions chain from it, each
`depends_on` the expand revision it completes.

Revision ID: c000_contract_root
Revises: 0001_baseline
"""

from __future__ import annotations

revision = "c000_contract_root"
down_revision = "0001_baseline"
branch_labels = ("contract",)
depends_on = "e000_expand_root"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
