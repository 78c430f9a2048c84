"""Writes go to the writer of the player's home: WRITERS_FILE names a home's own writer once cutover
moved it (re-read live). The write's token names that home, so a read with it is served by a database
on the same timeline. A write held through a cutover's fence lands on the new writer once the file
flips, not on the fenced origin. Two real PostgreSQL servers: the origin, and one standing in for the
home's new writer (the same schema and players, as a promoted copy would hold)."""

from __future__ import annotations

import json
import os
import threading
import time

import boto3
import psycopg
import psycopg.conninfo
import pytest

from app.db import upgrade
from tests.app.conftest import AP, US, login, replica_pair, seed, set_fence  # noqa: F401 (a fixture)
from tests.app.test_write_hold import metric
from tests.conftest import a_pg_server
from tests.providers.aws.conftest import moto, moto_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.lab

TOKYO_PLAYER, VIRGINIA_PLAYER = 22, 1


@pytest.fixture(scope="module")
def second_server():
    with a_pg_server("migrate-test-home-writer-") as cluster:
        yield cluster


@pytest.fixture
def home_writer(second_server):
    """A fresh database on the second server, at expand@head with the same players: Tokyo's new writer."""
    name = f"home_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(second_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = second_server.dsn(name)
    upgrade(dsn, "expand@head")
    seed(dsn)
    yield dsn
    with psycopg.connect(second_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def route(path, routes: dict[str, str]) -> None:
    """Rewrite WRITERS_FILE atomically, as the cutover does (temp + rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(routes))
    os.replace(tmp, path)


def connections_to(dsn: str) -> int:
    """Sessions other than this one on `dsn`'s database."""
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()").fetchone()[0]


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def coins(dsn: str, player: int) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT coins FROM players WHERE id = %s", (player,)).fetchone()[0]


def test_a_homes_writes_follow_the_writers_file_and_its_tokens_name_the_home(make_client, db, home_writer, tmp_path):
    writers = tmp_path / "writers.json"
    route(writers, {})
    app = make_client(US, writers_file=writers)
    tokyo, virginia = login(app, TOKYO_PLAYER), login(app, VIRGINIA_PLAYER)
    before = app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 10}, headers=tokyo)
    assert before.status_code == 200 and "@" not in before.headers["X-LSN"]
    assert coins(db, TOKYO_PLAYER) == 10

    route(writers, {f"warm:{AP}": home_writer})  # staged: the app connects ahead of routing, routes nothing
    app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 10}, headers=tokyo)
    assert coins(db, TOKYO_PLAYER) == 10 and coins(home_writer, TOKYO_PLAYER) != 10
    wait_until(lambda: connections_to(home_writer) > 0, "the app to connect to the staged writer")

    route(writers, {f"warm:{AP}": home_writer, AP: home_writer})
    moved = app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 11}, headers=tokyo)
    assert moved.status_code == 200, moved.text
    assert moved.headers["X-LSN"].endswith(f"@{AP}")
    assert (coins(home_writer, TOKYO_PLAYER), coins(db, TOKYO_PLAYER)) == (11, 10)
    read = app.get(f"/v1/players/{TOKYO_PLAYER}", headers={"X-Min-LSN": moved.headers["X-LSN"]})
    assert read.status_code == 200 and read.json()["coins"] == 11
    assert read.headers["X-Read-From"] == "home-writer"
    other = app.patch(f"/v1/players/{VIRGINIA_PLAYER}", json={"coins": 12}, headers=virginia)
    assert other.status_code == 200 and "@" not in other.headers["X-LSN"]  # other homes stay on the origin
    assert coins(db, VIRGINIA_PLAYER) == 12

    route(writers, {})  # routed back (a rollback): writes and that old token go to the origin again
    back = app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 13}, headers=tokyo)
    assert back.status_code == 200 and coins(db, TOKYO_PLAYER) == 13
    stale = app.get(f"/v1/players/{TOKYO_PLAYER}", headers={"X-Min-LSN": moved.headers["X-LSN"]})
    assert stale.status_code == 200 and stale.headers["X-Read-From"] == "writer"
    # the removed writer's connections go with it: a next cutover's copy at that address gets fresh ones
    wait_until(lambda: connections_to(home_writer) == 0, "the app to close its pool to the removed writer")


def test_a_write_held_by_the_origins_fence_lands_on_the_new_writer_when_routing_flips(
        make_client, db, home_writer, tmp_path):
    writers = tmp_path / "writers.json"
    route(writers, {})
    app = make_client(US, writers_file=writers, write_hold_seconds=30)
    headers = login(app, TOKYO_PLAYER)
    set_fence(db, AP)
    try:
        answers = []
        writer = threading.Thread(target=lambda: answers.append(
            app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 99}, headers=headers)))
        writer.start()
        deadline = time.monotonic() + 30
        while metric(app, "app_writes_waiting") < 1:
            assert time.monotonic() < deadline and writer.is_alive(), "the write was never held"
            time.sleep(0.05)
        route(writers, {AP: home_writer})  # the cutover flips routing; the origin stays fenced
        writer.join(30)
    finally:
        set_fence(db, "")
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert answers[0].headers["X-LSN"].endswith(f"@{AP}")
    assert coins(home_writer, TOKYO_PLAYER) == 99 and coins(db, TOKYO_PLAYER) != 99


def claims(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT handle, player_id FROM handle_claims").fetchall())


def players_named(dsn: str, handle: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM players WHERE handle = %s", (handle,)).fetchall()]


def test_after_its_cutover_a_homes_sign_ups_and_renames_claim_at_the_us_east_1_authority(
        make_client, db, home_writer, tmp_path):
    writers = tmp_path / "writers.json"
    route(writers, {AP: home_writer})  # Tokyo's home has its own writer (a copy taken before what follows)
    virginia = make_client(US, app_generation=2, writers_file=writers)
    tokyo = make_client(AP, app_generation=2, writers_file=writers)
    assert virginia.post("/v1/players", json={"handle": "neo"}).status_code == 201  # unknown to the copy

    taken = tokyo.post("/v1/players", json={"handle": "neo"})
    assert taken.status_code == 409 and taken.json()["error"] == "handle_taken"  # the authority decides
    assert players_named(home_writer, "neo") == []

    created = tokyo.post("/v1/players", json={"handle": "trinity"})
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    assert players_named(home_writer, "trinity") == [new_id] and players_named(db, "trinity") == []
    assert claims(db)["trinity"] == new_id  # claimed at the authority, written at home

    headers = login(tokyo, TOKYO_PLAYER)
    old_handle = tokyo.get(f"/v1/players/{TOKYO_PLAYER}", headers=headers).json()["handle"]
    refused = tokyo.patch(f"/v1/players/{TOKYO_PLAYER}", json={"handle": "neo"}, headers=headers)
    assert refused.status_code == 409
    renamed = tokyo.patch(f"/v1/players/{TOKYO_PLAYER}", json={"handle": "morpheus"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    held = claims(db)
    assert held["morpheus"] == TOKYO_PLAYER and old_handle not in held  # moved at the authority
    assert virginia.post("/v1/players", json={"handle": "morpheus"}).status_code == 409


def test_a_token_of_a_homes_writer_is_read_from_this_regions_secondary_of_its_shard_once_replayed(
        make_client, db, replica_pair, tmp_path):  # noqa: F811
    """replica_pair stands for Tokyo's home writer and this region's streaming secondary of its shard."""
    home_writer, shard_secondary, standby = replica_pair
    writers = tmp_path / "writers.json"
    route(writers, {AP: home_writer, f"reader:{AP}": shard_secondary})
    app = make_client(US, writers_file=writers, read_your_writes_wait_ms=5000)
    tokyo = login(app, TOKYO_PLAYER)
    written = app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 41}, headers=tokyo)
    assert written.status_code == 200 and written.headers["X-LSN"].endswith(f"@{AP}")
    read = app.get(f"/v1/players/{TOKYO_PLAYER}", headers={"X-Min-LSN": written.headers["X-LSN"]})
    assert read.status_code == 200 and read.json()["coins"] == 41
    assert read.headers["X-Read-From"] == "shard-reader"  # local, and it has the write

    with psycopg.connect(shard_secondary, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        app = make_client(US, writers_file=writers, read_your_writes_wait_ms=200)
        tokyo = login(app, TOKYO_PLAYER)
        written = app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 42}, headers=tokyo)
        read = app.get(f"/v1/players/{TOKYO_PLAYER}", headers={"X-Min-LSN": written.headers["X-LSN"]})
        assert read.json()["coins"] == 42 and read.headers["X-Read-From"] == "home-writer"  # it lags: the writer
    finally:
        with psycopg.connect(shard_secondary, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def test_on_aws_the_writers_map_is_an_ssm_parameter_whose_entries_name_only_where_the_writer_is(
        make_client, db, second_server, moto, monkeypatch):
    """WRITERS_PARAMETER (moto's SSM standing for the region's), read before the first request, then polled;
    an entry of host and port (what the tool writes on AWS) takes database, user and TLS from WRITER_DSN."""
    name = psycopg.conninfo.conninfo_to_dict(db)["dbname"]
    with psycopg.connect(second_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(second_server.dsn(name), "expand@head")
    seed(second_server.dsn(name))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    ssm = boto3.client("ssm", region_name=US, endpoint_url=moto)
    parameter = "/game/us-east-1/api/home-writers"
    ssm.put_parameter(Name=parameter, Type="String",
                      Value=json.dumps({AP: f"host=127.0.0.1 port={second_server.port} application_name=game-home-x"}))
    try:
        app = make_client(US, writers_parameter=parameter, writers_poll_seconds=0.1)
        tokyo = login(app, TOKYO_PLAYER)
        moved = app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 51}, headers=tokyo)  # the first request
        assert moved.status_code == 200 and moved.headers["X-LSN"].endswith(f"@{AP}"), moved.text
        assert coins(second_server.dsn(name), TOKYO_PLAYER) == 51 and coins(db, TOKYO_PLAYER) != 51
        ssm.put_parameter(Name=parameter, Type="String", Value="{}", Overwrite=True)  # a rollback routes back
        deadline = time.monotonic() + 30
        while "@" in app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 52}, headers=tokyo).headers["X-LSN"]:
            assert time.monotonic() < deadline, "the task never polled the new map"
            time.sleep(0.05)
        assert coins(db, TOKYO_PLAYER) == 52
    finally:
        with psycopg.connect(second_server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
