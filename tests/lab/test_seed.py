"""The players table and the COPY seeder, against a real PostgreSQL database."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from migrate.lab.seed import create_schema, generate_rows, seed_players

pytestmark = pytest.mark.lab

DIGEST = "SELECT count(*), md5(string_agg(md5(p::text), '' ORDER BY id)) FROM players p"


def one(dsn: str, query: str, params=()):
    with psycopg.connect(dsn, options="-c TimeZone=UTC") as conn:
        return conn.execute(query, params).fetchone()


@pytest.fixture
def second_database(pg_server):
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn(name)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_create_schema_is_idempotent(pg_database):
    create_schema(pg_database)
    create_schema(pg_database)
    with psycopg.connect(pg_database) as conn:
        cols = conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'players' ORDER BY ordinal_position").fetchall()
        uniques = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'players'").fetchone()[0]
    assert cols == [("id", "bigint"), ("handle", "text"), ("home_region", "text"), ("level", "integer"),
                    ("xp", "bigint"), ("coins", "bigint"), ("created_at", "timestamp with time zone"),
                    ("updated_at", "timestamp with time zone"), ("profile", "jsonb")]
    assert uniques == 2  # primary key and the unique handle


def test_seed_counts_resumes_and_reports_progress(pg_database):
    seen: list[tuple[int, int | None]] = []
    assert seed_players(pg_database, 2500, batch=1000, progress=lambda d, t: seen.append((d, t))) == 2500
    assert seen == [(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]
    assert seed_players(pg_database, 2500) == 0  # idempotent
    assert seed_players(pg_database, 3100) == 600  # grows from max(id) + 1
    assert one(pg_database, "SELECT count(*), min(id), max(id), count(DISTINCT handle) FROM players") \
        == (3100, 1, 3100, 3100)
    assert one(pg_database, "SELECT count(*) FROM players WHERE updated_at < created_at "
                            "OR level NOT BETWEEN 1 AND 100 OR profile->>'title' IS NULL") == (0,)


def test_rows_are_a_function_of_their_id(pg_database, second_database):
    seed_players(pg_database, 2345, batch=10_000)
    # Another database, seeded in interrupted pieces with other batch sizes: byte-identical rows.
    seed_players(second_database, 777, batch=100)
    seed_players(second_database, 1500, batch=333)
    seed_players(second_database, 2345, batch=50_000)
    assert one(pg_database, DIGEST) == one(second_database, DIGEST)
    assert generate_rows(10, 12) == "".join(generate_rows(1, 20).splitlines(keepends=True)[9:11])


def test_home_regions_follow_the_player_mix(pg_database):
    seed_players(pg_database, 20_000)
    with psycopg.connect(pg_database) as conn:
        mix = dict(conn.execute("SELECT home_region, count(*) / 20000.0 FROM players GROUP BY 1").fetchall())
    assert set(mix) == {"ap-northeast-1", "us-east-1", "eu-central-1"}
    assert abs(float(mix["ap-northeast-1"]) - 0.60) < 0.02
    assert abs(float(mix["us-east-1"]) - 0.25) < 0.02
    assert abs(float(mix["eu-central-1"]) - 0.15) < 0.02


def test_players_added_by_the_app_above_the_count_do_not_stop_seeding(pg_database):
    create_schema(pg_database)
    with psycopg.connect(pg_database) as conn:
        conn.execute("INSERT INTO players (id, handle, home_region) VALUES (50000, 'newcomer', 'us-east-1')")
    assert seed_players(pg_database, 500) == 500
    assert one(pg_database, "SELECT count(*) FROM players") == (501,)
