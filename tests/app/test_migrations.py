"""The Alembic schema: a baseline compatible with the lab's pre-seeded table, and the expand and
contract branches ready for the schema phases."""

from __future__ import annotations

import psycopg
import pytest

from app import db
from migrate.lab.seed import create_schema

pytestmark = pytest.mark.lab

EXPECTED = [("id", "bigint", "NO", None), ("handle", "text", "NO", None), ("home_region", "text", "NO", None),
            ("level", "integer", "YES", None), ("xp", "bigint", "YES", None), ("coins", "bigint", "YES", None),
            ("created_at", "timestamp with time zone", "NO", "now()"),
            ("updated_at", "timestamp with time zone", "NO", "now()"),
            ("profile", "jsonb", "NO", "'{}'::jsonb")]


def columns(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT column_name, data_type, is_nullable, column_default "
                            "FROM information_schema.columns WHERE table_name = 'players' "
                            "ORDER BY ordinal_position").fetchall()


def test_heads_and_branches():
    assert db.heads() == {"e000_expand_root", "c000_contract_root"}
    sql = db.upgrade_sql("heads")
    assert "CREATE TABLE IF NOT EXISTS players" in sql


def test_upgrade_on_an_empty_database_creates_exactly_the_table(pg_database):
    assert db.current(pg_database) == set()
    db.upgrade(pg_database, "expand@head")
    assert columns(pg_database) == EXPECTED
    assert db.current(pg_database) == {"e000_expand_root"}
    with psycopg.connect(pg_database) as conn:
        indexes = {r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'players'")}
    assert any("UNIQUE" in i and "(handle)" in i for i in indexes)
    assert any("UNIQUE" in i and "(id)" in i for i in indexes)
    db.upgrade(pg_database)  # heads: the contract root (no-op) too
    db.upgrade(pg_database)  # idempotent
    assert db.current(pg_database) == {"c000_contract_root"}  # it depends on, so subsumes, the expand root


def test_baseline_adopts_the_labs_existing_table(pg_database):
    create_schema(pg_database)  # what `migrate lab up` does before Alembic runs
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("INSERT INTO players (id, handle, home_region) VALUES (1, 'kept', 'us-east-1')")
    db.upgrade(pg_database, "heads", lock_timeout_ms=2000)
    assert columns(pg_database) == EXPECTED
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT handle FROM players").fetchall() == [("kept",)]


def test_the_baseline_refuses_to_be_downgraded(pg_database):
    db.upgrade(pg_database, "0001_baseline")
    with pytest.raises(RuntimeError, match="no downgrade"):
        db.downgrade(pg_database, "base")
    assert columns(pg_database) == EXPECTED
