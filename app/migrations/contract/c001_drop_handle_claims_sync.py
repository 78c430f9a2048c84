"""Drop the trigger that kept handle_claims in step with players for v1 apps (expand e007).

Only v1 needed it: v1 renames a player with a plain UPDATE and knows nothing of the authority. App v2
claims and moves handles at the authority itself (app/player_store.py), in the same statement as the
write, so with every region on v2 the trigger only does again what was already done, on the hot path
of every sign-up and rename. Once it is gone a v1 app's rename would leave the authority holding the
old name: contract-schema refuses while any region runs v1 (app/generations.py, breaks_at).

Revision ID: c001_drop_handle_claims_sync
Revises: c000_contract_root
Depends on: e007_handle_claims_sync
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "c001_drop_handle_claims_sync"
down_revision = "c000_contract_root"
branch_labels = None
depends_on = "e007_handle_claims_sync"


def upgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS players_handle_claims_sync ON players")
    # The function is the trigger's body, called by nothing else (no client calls it): squawk's rule
    # is about functions clients call.
    op.execute("-- why: game_handle_claims_sync() is only the trigger's body, dropped with it; no client calls it\n"
               "-- squawk-ignore ban-drop-function\n"
               "DROP FUNCTION IF EXISTS game_handle_claims_sync()")


def downgrade() -> None:
    # Alembic's own downgrade (tests, a restore drill); the tool refuses to roll contract back. The
    # trigger is e007's, read from its file so there is one definition of it.
    source = Path(__file__).resolve().parent.parent / "expand" / "e007_handle_claims_sync.py"
    spec = importlib.util.spec_from_file_location("e007_handle_claims_sync", source)
    assert spec is not None and spec.loader is not None
    e007 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e007)
    e007.upgrade()
