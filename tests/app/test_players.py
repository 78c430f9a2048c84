"""Player profiles: reads from the region's reader with read-your-writes through an LSN token,
writes to the writer; a real streaming standby shows the token at work; READERS_FILE switching."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from tests.app.conftest import US, internal, login, seed, wait_for

pytestmark = pytest.mark.lab


def test_read_update_and_read_your_writes_on_one_server(client):
    profile = client.get("/v1/players/4")
    assert profile.status_code == 200
    assert profile.json()["handle"] == "player4" and profile.json()["home_region"] == US
    assert profile.headers["X-Read-From"] == "reader"

    auth = login(client, 4)
    updated = client.patch("/v1/players/4", headers=auth,
                           json={"level": 9, "coins": 120, "profile": {"title": "veteran", "lang": "en"}})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["level"] == 9 and body["coins"] == 120 and body["profile"] == {"title": "veteran", "lang": "en"}
    assert body["lsn"] == updated.headers["X-LSN"] and "/" in body["lsn"]
    # profile keys merge
    merged = client.patch("/v1/players/4", headers=auth, json={"profile": {"lang": "ja"}}).json()
    assert merged["profile"] == {"title": "veteran", "lang": "ja"}

    again = client.get("/v1/players/4", headers={"X-Min-LSN": merged["lsn"]})
    assert again.status_code == 200 and again.json()["profile"]["lang"] == "ja"
    assert again.headers["X-Read-From"] == "reader"  # the reader is the primary here: caught up

    # A token the reader can never reach: wait the bounded time, then read the writer.
    start = time.monotonic()
    far = client.get("/v1/players/4", headers={"X-Min-LSN": "FFFFFFFF/0"})
    assert far.status_code == 200 and far.headers["X-Read-From"] == "writer"
    assert time.monotonic() - start >= 0.2


def test_update_rules(client):
    auth = login(client, 5)
    assert client.patch("/v1/players/6", headers=auth, json={"level": 1}).status_code == 403
    assert client.patch("/v1/players/5", json={"level": 1}).status_code == 401
    taken = client.patch("/v1/players/5", headers=auth, json={"handle": "player6"})
    assert taken.status_code == 409 and taken.json()["field"] == "handle"
    assert client.patch("/v1/players/5", headers=auth, json={"handle": "new.name_5"}).json()["handle"] == "new.name_5"
    assert client.get("/v1/players/12345").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({}, "body"),
    ({"level": None}, "body"),
    ({"level": "high"}, "level"),
    ({"level": -1}, "level"),
    ({"level": 2**31}, "level"),
    ({"xp": 2**63}, "xp"),
    ({"coins": 1.5}, "coins"),
    ({"handle": "x"}, "handle"),
    ({"handle": "bad handle!"}, "handle"),
    ({"home_region": "eu-central-1"}, "home_region"),
    ({"profile": "text"}, "profile"),
    ({"profile": {"k": "nul\u0000byte"}}, "profile"),
    ({"profile": {"k\u0000": 1}}, "profile"),
    ({"profile": {"k": "\ud800"}}, "profile"),
    ({"profile": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}, "profile"),
    ({"profile": {"big": "x" * 20000}}, "profile"),
])
def test_malformed_updates_are_422_naming_the_field(client, body, field):
    auth = {**login(client, 7), "content-type": "application/json"}
    # json.dumps escapes non-ASCII (httpx would refuse to encode a lone surrogate)
    response = client.patch("/v1/players/7", headers=auth, content=json.dumps(body).encode())
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"], response.json()


def test_non_finite_numbers_and_bad_json_are_4xx(client):
    auth = {**login(client, 7), "content-type": "application/json"}
    for raw in (b'{"profile": {"x": NaN}}', b'{"profile": {"x": Infinity}}', b'{"level": 1', b"\xff\xfe"):
        response = client.patch("/v1/players/7", headers=auth, content=raw)
        assert 400 <= response.status_code < 500, (raw, response.status_code, response.text)
    huge = client.patch("/v1/players/7", headers=auth, content=b'{"profile": {"x": "' + b"a" * 70000 + b'"}}')
    assert huge.status_code == 413


@pytest.mark.parametrize("path, headers, field", [
    ("/v1/players/0", {}, "player_id"),
    ("/v1/players/abc", {}, "player_id"),
    (f"/v1/players/{2**63}", {}, "player_id"),
    ("/v1/players/1", {"X-Min-LSN": "not-an-lsn"}, "x-min-lsn"),
    ("/v1/players/1", {"X-Min-LSN": "1/2/3"}, "x-min-lsn"),
])
def test_malformed_reads_are_422_naming_the_field(client, path, headers, field):
    response = client.get(path, headers=headers)
    assert response.status_code == 422
    assert response.json()["fields"] == [field]


def _sql(dsn: str, query: str, params=()):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()


def test_read_your_writes_against_a_paused_replica(replica_pair, make_client):
    writer, replica, _ = replica_pair
    app = make_client(US, writer_dsn=writer, reader_dsn=replica, read_your_writes_wait_ms=300)
    health = app.get("/health").json()
    assert health["role"] == "replica" and health["reader"]["source"] == "reader_dsn"
    auth = login(app, 8)
    _sql(replica, "SELECT pg_wal_replay_pause()")
    try:
        wait_for(lambda: _sql(replica, "SELECT pg_get_wal_replay_pause_state()")[0] == "paused", "pause")
        write = app.patch("/v1/players/8", headers=auth, json={"coins": 4242}).json()
        # Without the token the replica answers, stale.
        stale = app.get("/v1/players/8")
        assert stale.headers["X-Read-From"] == "reader" and stale.json()["coins"] != 4242
        # With it, the replica is behind: after the bounded wait the writer answers, fresh.
        fresh = app.get("/v1/players/8", headers={"X-Min-LSN": write["lsn"]})
        assert fresh.headers["X-Read-From"] == "writer" and fresh.json()["coins"] == 4242
        assert app.get("/health").json()["replication_lag_seconds"] >= 0
    finally:
        _sql(replica, "SELECT pg_wal_replay_resume()")
    # Once replay resumes the replica serves the token itself.
    wait_for(lambda: _sql(replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (write["lsn"],))[0],
             "replay")
    caught_up = app.get("/v1/players/8", headers={"X-Min-LSN": write["lsn"]})
    assert caught_up.headers["X-Read-From"] == "reader" and caught_up.json()["coins"] == 4242
    metrics = app.get(internal("/metrics")).text
    assert 'app_profile_reads_total{reason="lagging",served_by="writer"} 1.0' in metrics


def test_reads_follow_the_readers_file(pg_server, db, make_client, tmp_path):
    # A second database stands in for the region's local replica; its row differs so we can tell.
    other = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        other_dsn = pg_server.dsn(other)
        from app.db import upgrade

        upgrade(other_dsn, "expand@head")
        seed(other_dsn, {1: "local-replica"})
        readers = tmp_path / "readers.json"
        readers.write_text(json.dumps({"eu-central-1": other_dsn}))  # another region's entry only
        app = make_client(US, readers_file=readers)
        assert app.get("/v1/players/1").json()["home_region"] == US
        assert app.get("/health").json()["reader"]["source"] == "writer_dsn"

        tmp = tmp_path / "readers.json.tmp"
        tmp.write_text(json.dumps({"us-east-1": other_dsn}))
        tmp.rename(readers)  # atomic replace, as the migration tool does
        assert app.get("/v1/players/1").json()["home_region"] == "local-replica"
        health = app.get("/health").json()
        assert health["reader"]["source"] == "readers_file" and health["reader"]["dbname"] == other

        readers.write_text("{ half-written")  # a botched write keeps the last good value
        assert app.get("/v1/players/1").json()["home_region"] == "local-replica"
        readers.write_text(json.dumps({"us-east-1": db}))
        assert app.get("/v1/players/1").json()["home_region"] == US
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
