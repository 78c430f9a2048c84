"""Writes to a fenced home (a cutover moving that home's writer) are held, not failed: the app retries
them until the fence lifts, within a bound; past the bound, or with too many held, a retryable 503
with Retry-After, never a 500. Other homes write on untouched. On a real PostgreSQL with the expand
schema's fence trigger."""

from __future__ import annotations

import re
import threading
import time

import psycopg
import pytest

from tests.app.conftest import AP, US, internal, login, set_fence

pytestmark = pytest.mark.lab

TOKYO_PLAYER, VIRGINIA_PLAYER = 22, 1  # HOMES in tests/app/conftest.py


def coins(db: str, player: int) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT coins FROM players WHERE id = %s", (player,)).fetchone()[0]


def metric(client, name: str) -> float:
    """The value of a metric line of /metrics (labels included in `name`), 0 when absent."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", client.get(internal("/metrics")).text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def fenced(db):
    """Tokyo's home fenced on the test database (the next row any backend writes sees it); lifted at the end."""
    set_fence(db, AP)
    yield lambda: set_fence(db, "")
    set_fence(db, "")


def test_a_write_is_held_while_its_home_is_fenced_and_lands_when_the_fence_lifts(make_client, db, fenced):
    app = make_client(US, write_hold_seconds=30)
    headers = login(app, TOKYO_PLAYER)
    answers = []
    writer = threading.Thread(target=lambda: answers.append(
        app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 77}, headers=headers)))
    writer.start()
    deadline = time.monotonic() + 30
    while metric(app, "app_writes_waiting") < 1:  # the app holds it: a condition, not a sleep
        assert time.monotonic() < deadline and writer.is_alive(), "the write was never held"
        time.sleep(0.05)
    other = app.patch(f"/v1/players/{VIRGINIA_PLAYER}", json={"coins": 5}, headers=login(app, VIRGINIA_PLAYER))
    assert other.status_code == 200  # another home writes on during the fence, without a hold
    assert coins(db, TOKYO_PLAYER) != 77
    fenced()  # lift it
    writer.join(30)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert answers[0].json()["coins"] == 77 and coins(db, TOKYO_PLAYER) == 77
    assert metric(app, 'app_writes_held_total{outcome="released"}') == 1
    assert metric(app, "app_writes_waiting") == 0


def test_past_the_hold_the_write_is_a_retryable_503_and_nothing_is_written(make_client, db, fenced):
    app = make_client(US, write_hold_seconds=0.2)
    before = coins(db, TOKYO_PLAYER)
    refused = app.patch(f"/v1/players/{TOKYO_PLAYER}", json={"coins": 78}, headers=login(app, TOKYO_PLAYER))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == "write_held"
    assert coins(db, TOKYO_PLAYER) == before
    assert metric(app, 'app_writes_held_total{outcome="refused"}') == 1


def test_with_the_hold_full_a_write_is_refused_at_once_with_retry_after(make_client, db, fenced):
    app = make_client(AP, write_hold_max=0, app_generation=2)
    refused = app.post("/v1/players", json={"handle": "held_back"})  # a sign-up in Tokyo is a Tokyo-home write
    assert refused.status_code == 503 and refused.json()["error"] == "write_held", refused.text
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM players WHERE handle = 'held_back'").fetchone() == (0,)
