"""Fixtures the phase modules share beyond the session lab (tests/conftest.py)."""

from __future__ import annotations

import sqlite3

import pytest

from migrate.engine import services
from tests.conftest import point_at, reset_targets
from tests.phases import harness


def copy_journal(source, target) -> None:
    """`source`'s journal into `target`, whole (SQLite's backup: the WAL's pages too)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture(scope="module")
def expanded_journal(lab, lab_spec, tmp_path_factory):
    """expand-schema applied once for a module's tests, through the engine on a journal of its own; the
    journal's file. A test starts from a copy of it (cutover_world.expanded_lab, evacuation_world) and
    leaves the schema expanded; the module's end rolls expand-schema back. Expanding and rolling back
    for every test cost each about 16 Alembic revisions and a backfill."""
    state = tmp_path_factory.mktemp("expanded") / "state.db"
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, lab, state, lab_spec)
        reset_targets(lab)
        with harness.session() as session:
            assert services.run_phase(session, "expand-schema", None).status == "succeeded"
        yield state
        with harness.session() as session:
            assert services.rollback_phase(session, "expand-schema", None).status == "rolled-back"
