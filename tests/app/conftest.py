"""Fixtures for the game backend's tests: real Redis servers (throwaway `redis-server` processes),
real PostgreSQL databases migrated by Alembic and seeded with a few players, app instances per
"region" driven in-process (TestClient) or served over real HTTP by uvicorn in a thread."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import upgrade
from app.ids import HOME_REGIONS
from app.main import create_app
from migrate.lab.pg import PgCluster, free_port, primary_and_standby
from migrate.lab.served import serve  # noqa: F401 (the app tests take it from here)
from tests.conftest import reachable_tmpdir

US, AP, EU = "us-east-1", "ap-northeast-1", "eu-central-1"
# key id → secret, in the order SESSION_KEYS gives them (first = active unless told otherwise)
KEYS = {"k1": "first-secret-0123456789abcdef", "k2": "second-secret-0123456789abcdef"}
# Seeded players: id → home region.
HOMES = {**{i: US for i in range(1, 21)}, **{i: AP for i in range(21, 31)}, **{i: EU for i in range(31, 41)}}


class RedisServer:
    """A throwaway redis-server on a free loopback port, no persistence."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not on PATH (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = folder / f"redis-{self.port}.log"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server on {self.port} did not start; see {self.log}") from None
                time.sleep(0.02)
        client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def redis_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("redis")


@pytest.fixture(scope="session")
def redis_server(redis_folder) -> Iterator[RedisServer]:
    """One Redis for the session; each test starts from an empty one (see redis_url)."""
    server = RedisServer(redis_folder)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    with contextlib.closing(redis_server.client()) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def start_redis(redis_folder) -> Iterator:
    """Factory for extra Redis servers a test may stop; all stopped at teardown."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        servers.append(RedisServer(redis_folder))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def seed(dsn: str, homes: dict[int, str] = HOMES) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO players (id, handle, home_region, level, xp, coins) "
                        "VALUES (%s, %s, %s, 1, 0, 0)",
                        [(pid, f"player{pid}", home) for pid, home in homes.items()])


@pytest.fixture
def db(pg_database) -> str:
    """A fresh database at expand@head (v1 and v2 apps side by side), seeded with HOMES; its DSN."""
    upgrade(pg_database, "expand@head")
    seed(pg_database)
    return pg_database


class Clock:
    """A settable clock (Unix seconds) for apps under test."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


INTERNAL_PORT = 9100  # the apps' internal listener (app/internal.py); TestClient takes the port from the URL


def internal(path: str) -> str:
    """The URL of `path` on a TestClient app's internal listener (/metrics, /internal/*)."""
    return f"http://testserver:{INTERNAL_PORT}{path}"


def settings_for(region: str, writer_dsn: str, redis_url: str, **overrides) -> Settings:
    # Redis's timeout is generous: 20 players connecting at once through one TestClient's event loop on a
    # busy 2-core CI machine took over the 0.5 s this once was (a 503 in the matchmaking race test). An
    # outage test stops the server, so its connects are refused at once, not timed out.
    values = dict(region=region, writer_dsn=writer_dsn, redis_url=redis_url, session_keys=KEYS,
                  app_version="test", asset_bucket=f"game-assets-{region}", global_cache_seconds=0,
                  global_max_stale_seconds=0, peer_timeout_seconds=1.0, db_timeout_seconds=2.0,
                  redis_timeout_seconds=5.0, health_timeout_seconds=1.0, internal_port=INTERNAL_PORT)
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def make_client(db, redis_url) -> Iterator:
    """Factory: an entered TestClient for a region's app (defaults: this test's DB and Redis)."""
    clients: list[TestClient] = []

    def make(region: str = US, *, clock=None, **overrides) -> TestClient:
        overrides.setdefault("writer_dsn", db)
        overrides.setdefault("redis_url", redis_url)
        settings = settings_for(region, **overrides)
        client = TestClient(create_app(settings, clock=clock), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    """us-east-1's app on this test's DB and Redis."""
    return make_client(US)


def login(client: TestClient, player_id: int) -> dict:
    """Auth header for `player_id`, logging in through `client`."""
    response = client.post("/v1/login", json={"player_id": player_id})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture(scope="module")
def replica_pair() -> Iterator[tuple[str, str, PgCluster]]:
    """A primary and a streaming hot standby (pg_basebackup), both real PostgreSQL 15; yields the
    DSNs of database `game` on each and the standby cluster. Module-scoped: building it takes seconds."""
    def prepare(primary: PgCluster) -> None:
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE game")
        upgrade(primary.dsn("game"), "expand@head")
        seed(primary.dsn("game"))

    root = reachable_tmpdir("migrate-test-app-repl-")
    try:
        with primary_and_standby(root, {}, prepare) as (primary, standby):
            wait_for(lambda: _count(standby.dsn("game")) == len(HOMES), "standby serving")
            yield primary.dsn("game"), standby.dsn("game"), standby
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _count(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            return conn.execute("SELECT count(*) FROM players").fetchone()[0]
    except psycopg.Error:
        return -1


def wait_for(cond, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def set_fence(dsn: str, homes: str) -> None:
    """What the cutover does (expand e008): each home's fence sequence set, 1 for the homes listed
    (comma-separated), 0 for the rest. setval() is not transactional: it acts on the next row written."""
    fenced = set(filter(None, homes.split(",")))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for home in HOME_REGIONS:
            conn.execute("SELECT setval(%s, %s)", ("game_fence_" + home.replace("-", "_"), int(home in fenced)))
