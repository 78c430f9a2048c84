"""The service as it is deployed: a uvicorn process configured only from environment variables,
driven over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from migrate.lab.pg import free_port
from tests.app.conftest import KEYS, US

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(db, redis_url, tmp_path):
    port, internal_port = free_port(), free_port()
    readers = tmp_path / "readers.json"
    readers.write_text(json.dumps({US: db}))
    env = {**os.environ, "REGION": US, "WRITER_DSN": db, "READERS_FILE": str(readers),
           "REDIS_URL": redis_url, "SESSION_KEYS": json.dumps(KEYS), "SESSION_ACTIVE_KEY": "k2",
           "PEER_REGIONS": json.dumps({"eu-central-1": "http://127.0.0.1:1"}),
           "PEER_TIMEOUT_SECONDS": "0.3", "APP_VERSION": "1.2.3", "ASSET_BUCKET": "game-assets",
           "ASSET_BASE_URL": "https://cdn.game.example", "MATCH_SIZE": "2", "INTERNAL_PORT": str(internal_port)}
    log = (tmp_path / "uvicorn.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("uvicorn did not become healthy:\n" + (tmp_path / "uvicorn.log").read_text())
        time.sleep(0.1)
    yield base, f"http://127.0.0.1:{internal_port}"
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_smoke_over_real_http(served):
    public, internal = served
    with httpx.Client(base_url=public, timeout=5) as http:
        health = http.get("/health").json()
        assert health["region"] == US and health["version"] == "1.2.3" and health["role"] == "writer"
        assert health["reader"]["source"] == "readers_file"

        session = http.post("/v1/login", json={"player_id": 2}).json()
        assert session["key_id"] == "k2"  # SESSION_ACTIVE_KEY signs
        auth = {"Authorization": f"Bearer {session['token']}"}
        write = http.patch("/v1/players/2", json={"xp": 77}, headers=auth)
        assert write.status_code == 200
        read = http.get("/v1/players/2", headers={"X-Min-LSN": write.headers["X-LSN"]})
        assert read.json()["xp"] == 77 and read.headers["X-Read-From"] == "reader"

        assert http.post("/v1/scores", json={"score": 42}, headers=auth).json()["rank"] == 1
        board = http.get("/v1/leaderboard/global").json()
        assert board["complete"] is False and board["missing"] == ["eu-central-1"]
        assert board["entries"][0]["player_id"] == 2
        ticket = http.post("/v1/matchmaking/tickets", json={}, headers=auth)
        assert ticket.status_code == 201 and ticket.json()["status"] == "waiting"
        assert http.get("/v1/assets/ui/logo.png").json()["url"] == "https://cdn.game.example/ui/logo.png"
        assert http.get("/openapi.json").json()["info"]["version"] == "1.2.3"
        assert 'route="/v1/login"' in httpx.get(f"{internal}/metrics", timeout=5).text
        bad = http.post("/v1/scores", json={"score": "lots"}, headers=auth)
        assert bad.status_code == 422 and bad.json()["fields"] == ["score"]


def test_metrics_and_internal_paths_answer_only_on_the_internal_listener(served, tmp_path):
    public, internal = served
    for path in ("/metrics", "/internal/shadow/report", "/internal", "/metrics/"):
        answer = httpx.get(f"{public}{path}", timeout=5)
        assert answer.status_code == 404 and answer.json()["error"] == "not_found", path
        assert "shadow" not in answer.text and "app_http" not in answer.text
    assert httpx.get(f"{internal}/metrics", timeout=5).status_code == 200
    assert httpx.get(f"{internal}/internal/shadow/report", timeout=5).json()["region"] == US
    # a Host header naming the internal port changes nothing: the listener is the connection's
    answer = httpx.get(f"{public}/metrics", headers={"Host": f"127.0.0.1:{internal.rsplit(':', 1)[1]}"}, timeout=5)
    assert answer.status_code == 404
    # nothing secret reaches the process's log: not the signing keys, not a token, whatever was refused
    token = httpx.post(f"{public}/v1/login", json={"player_id": 2}, timeout=5).json()["token"]
    httpx.get(f"{public}/v1/matchmaking/tickets/1", headers={"Authorization": f"Bearer {token}x"}, timeout=5)
    log = (tmp_path / "uvicorn.log").read_text()
    assert "ready" in log  # the app's own lines are there
    assert token not in log and not any(secret in log for secret in KEYS.values())


def test_the_listeners_connections_send_small_writes_at_once():
    """app/__main__._listen: the connections it accepts have Nagle off (TCP_NODELAY) and say TCP, so
    asyncio keeps it off too: a response's headers and body, written apart, never wait for the client's
    delayed ACK (+40 ms on about one request in ten before the fix)."""
    import socket

    from app.__main__ import _listen

    listener = _listen("127.0.0.1", free_port())
    listener.listen(1)
    client = socket.create_connection(listener.getsockname()[:2])
    accepted, _ = listener.accept()
    try:
        assert accepted.proto == socket.IPPROTO_TCP
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for s in (accepted, client, listener):
            s.close()
