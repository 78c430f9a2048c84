"""The Alembic schema: a baseline compatible with the lab's pre-seeded table; the expand branch (what
home-region writers need: home epoch, per-writer id blocks, the handle authority, the home index, the
write fence) additive, squawk-clean and reversible; the contract branch drops only what v1 needed."""

from __future__ import annotations

import psycopg
import pytest

from app import db
from migrate.lab.seed import create_schema
from tests.app.conftest import set_fence

pytestmark = pytest.mark.lab

BASELINE_COLUMNS = [("id", "bigint", "NO", None), ("handle", "text", "NO", None), ("home_region", "text", "NO", None),
            ("level", "integer", "YES", None), ("xp", "bigint", "YES", None), ("coins", "bigint", "YES", None),
            ("created_at", "timestamp with time zone", "NO", "now()"),
            ("updated_at", "timestamp with time zone", "NO", "now()"),
            ("profile", "jsonb", "NO", "'{}'::jsonb")]
EXPANDED_COLUMNS = BASELINE_COLUMNS + [("home_epoch", "bigint", "NO", "1")]
EXPAND_HEAD = "e008_fence_sequences"
CONTRACT_HEAD = "c001_drop_handle_claims_sync"


def columns(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT column_name, data_type, is_nullable, column_default "
                            "FROM information_schema.columns WHERE table_name = 'players' "
                            "ORDER BY ordinal_position").fetchall()


def test_heads_and_branches():
    assert db.heads() == {EXPAND_HEAD, CONTRACT_HEAD}
    sql = db.upgrade_sql("heads")
    assert "CREATE TABLE IF NOT EXISTS players" in sql


def test_upgrade_on_an_empty_database_creates_exactly_the_table(pg_database):
    assert db.current(pg_database) == set()
    db.upgrade(pg_database, "0001_baseline")
    assert columns(pg_database) == BASELINE_COLUMNS
    db.upgrade(pg_database, "expand@head")
    assert columns(pg_database) == EXPANDED_COLUMNS
    assert db.current(pg_database) == {EXPAND_HEAD}
    with psycopg.connect(pg_database) as conn:
        indexes = {r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'players'")}
    assert any("UNIQUE" in i and "(handle)" in i for i in indexes)
    assert any("UNIQUE" in i and "(id)" in i for i in indexes)
    db.upgrade(pg_database)  # heads: the contract branch too (it depends on expand@head)
    db.upgrade(pg_database)  # idempotent
    # contract depends on e007, not on the expand revisions after it: both heads stay in alembic_version
    assert db.current(pg_database) == {CONTRACT_HEAD, EXPAND_HEAD}


def test_baseline_adopts_the_labs_existing_table(pg_database):
    create_schema(pg_database)  # what `migrate lab up` does before Alembic runs
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("INSERT INTO players (id, handle, home_region) VALUES (1, 'kept', 'us-east-1')")
    db.upgrade(pg_database, "expand@head", lock_timeout_ms=2000)
    assert columns(pg_database) == EXPANDED_COLUMNS
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT handle FROM players").fetchall() == [("kept",)]


def test_the_baseline_refuses_to_be_downgraded(pg_database):
    db.upgrade(pg_database, "0001_baseline")
    with pytest.raises(RuntimeError, match="no downgrade"):
        db.downgrade(pg_database, "base")
    assert columns(pg_database) == BASELINE_COLUMNS


def schema_objects(dsn: str) -> dict[str, list]:
    """What a revision can leave behind, read from the catalogue."""
    with psycopg.connect(dsn) as conn:
        def rows(query: str) -> list:
            return sorted(conn.execute(query).fetchall())
        return {
            "columns": columns(dsn),
            "tables": rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"),
            "indexes": rows("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"),
            "sequences": rows("SELECT sequencename FROM pg_sequences"),
            "constraints": rows("SELECT conname FROM pg_constraint WHERE conrelid = 'players'::regclass"),
            "triggers": rows("SELECT tgname FROM pg_trigger WHERE tgrelid = 'players'::regclass AND NOT tgisinternal"),
            "functions": rows("SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"),
        }


def test_the_expand_branch_downgrades_to_exactly_the_baseline_and_upgrades_again(pg_database):
    db.upgrade(pg_database, "e000_expand_root")
    before = schema_objects(pg_database)
    db.upgrade(pg_database, "expand@head")
    expanded = schema_objects(pg_database)
    assert expanded["tables"] == sorted(before["tables"] + [("handle_claims",)])
    assert ("players_home_region_id",) in expanded["indexes"]
    assert [s for (s,) in expanded["sequences"]] == ["game_cutover_marker", "game_fence_ap_northeast_1", "game_fence_eu_central_1",
                                                     "game_fence_us_east_1", "player_ids_ap_northeast_1",
                                                     "player_ids_eu_central_1", "player_ids_us_east_1"]
    assert expanded["triggers"] == [("players_handle_claims_sync",), ("players_write_fence",)]
    with psycopg.connect(pg_database) as conn:  # NOT VALID, then validated by the next revision
        assert conn.execute("SELECT convalidated FROM pg_constraint "
                            "WHERE conname = 'players_home_epoch_positive'").fetchone() == (True,)
    db.downgrade(pg_database, "e000_expand_root")
    assert schema_objects(pg_database) == before
    db.upgrade(pg_database, "expand@head")
    assert schema_objects(pg_database) == expanded


def test_the_contract_branch_drops_only_the_sync_trigger_and_its_downgrade_puts_it_back(pg_database):
    db.upgrade(pg_database, "expand@head")
    expanded = schema_objects(pg_database)
    db.upgrade(pg_database, "contract@head")
    assert db.current(pg_database) == {CONTRACT_HEAD, EXPAND_HEAD}
    contracted = schema_objects(pg_database)
    assert contracted["triggers"] == [("players_write_fence",)]
    assert [f for f in expanded["functions"] if f not in contracted["functions"]] == [("game_handle_claims_sync",)]
    assert {k: v for k, v in contracted.items() if k not in ("triggers", "functions")} == \
        {k: v for k, v in expanded.items() if k not in ("triggers", "functions")}
    db.downgrade(pg_database, "c000_contract_root")  # the restore drill's last resort (the tool refuses)
    assert schema_objects(pg_database) == expanded


def test_the_expand_sql_passes_squawk(tmp_path):
    from migrate.providers.sql_lint import lint_sql

    sql = db.upgrade_sql("expand@head", "0001_baseline")
    assert "SET lock_timeout" in sql.split("BEGIN;")[0]  # set before any DDL, in the SQL squawk reads
    assert lint_sql(sql, tmp_path / "expand.sql") == []


def test_each_home_writer_allocates_ids_from_its_own_block(db):
    from app.ids import BLOCK_BITS, HOME_REGIONS, allocator_region, block_of, sequence_name

    blocks = [block_of(r) for r in HOME_REGIONS]
    assert all(last < first_next for (_, last), (first_next, _) in zip(blocks, blocks[1:]))
    assert blocks[0][0] == 1 << BLOCK_BITS  # above every id given out before the migration
    with psycopg.connect(db, autocommit=True) as conn:
        for region in HOME_REGIONS:
            first, last = block_of(region)
            got = [conn.execute(f"SELECT nextval('{sequence_name(region)}')").fetchone()[0] for _ in range(3)]
            assert got == [first, first + 1, first + 2] and all(allocator_region(i) == region for i in got)
            assert got[-1] <= last
    assert allocator_region(42) is None


def test_the_write_fence_is_inactive_until_set_then_stops_even_an_open_snapshot(db):
    tokyo, virginia = 22, 1  # HOMES in tests/app/conftest.py
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT home_region FROM players WHERE id = %s", (tokyo,)).fetchone() == ("ap-northeast-1",)
        conn.execute("UPDATE players SET coins = 1 WHERE id = %s", (tokyo,))  # installed, inactive
    try:
        with psycopg.connect(db) as old:  # a transaction whose snapshot predates the fence
            old.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            old.execute("SELECT count(*) FROM players").fetchone()
            set_fence(db, "ap-northeast-1")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ap-northeast-1 are fenced"):
                old.execute("UPDATE players SET coins = 2 WHERE id = %s", (tokyo,))
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE players SET coins = 3 WHERE id = %s", (virginia,))  # other homes write on
            for statement, args in (("UPDATE players SET home_region = 'ap-northeast-1' WHERE id = %s", (virginia,)),
                                    ("DELETE FROM players WHERE id = %s", (tokyo,)),
                                    ("INSERT INTO players (id, handle, home_region) VALUES (%s, 'new', 'ap-northeast-1')",
                                     (999,))):
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    conn.execute(statement, args)
            assert conn.execute("SELECT coins FROM players WHERE id = %s", (tokyo,)).fetchone() == (1,)
    finally:
        set_fence(db, "")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE players SET coins = 4 WHERE id = %s", (tokyo,))


def test_the_fence_setting_still_fences_a_home_its_sequence_does_not(db):
    """A staged standby cannot setval(): the lab lists the other homes in `game.fenced_homes` in its
    configuration, so the copy comes out of promotion fenced for them (expand e008)."""
    tokyo, virginia = 22, 1
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SET game.fenced_homes = 'us-east-1,eu-central-1'")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="us-east-1 are fenced"):
            conn.execute("UPDATE players SET coins = 5 WHERE id = %s", (virginia,))
        conn.execute("UPDATE players SET coins = 5 WHERE id = %s", (tokyo,))
        assert conn.execute("SELECT game_home_fenced('us-east-1'), game_home_fenced('ap-northeast-1')").fetchone() \
            == (True, False)


def test_rolling_the_fence_sequences_back_restores_the_setting_only_fence(pg_database):
    db.upgrade(pg_database, "expand@head")
    db.downgrade(pg_database, "e007_handle_claims_sync")
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("INSERT INTO players (id, handle, home_region) VALUES (22, 'tokyo', 'ap-northeast-1')")
        assert conn.execute("SELECT to_regclass('game_fence_ap_northeast_1')").fetchone() == (None,)
        conn.execute("SET game.fenced_homes = 'ap-northeast-1'")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ap-northeast-1 are fenced"):
            conn.execute("UPDATE players SET coins = 6 WHERE id = 22")
        assert conn.execute("SELECT to_regprocedure('game_home_fenced(text)')").fetchone() == (None,)
