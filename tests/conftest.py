"""Shared fixtures. Real PostgreSQL servers are started from the machine's PostgreSQL 15 binaries in
throwaway folders (as the postgres user when we are root); nothing reuses the machine's own server."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from migrate.lab.pg import PgCluster, free_port


def reachable_tmpdir(prefix: str) -> Path:
    """A temp folder the postgres user can traverse (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the whole test session."""
    root = reachable_tmpdir("migrate-test-pg-")
    cluster = PgCluster(root / "pg", free_port())
    cluster.init()
    cluster.start()
    yield cluster
    cluster.destroy()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_database(pg_server):
    """A fresh, empty database on the session's server; its libpq URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn(name)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
