"""Matchmaking: create, poll, cancel; FIFO groups of MATCH_SIZE; never a ticket in two matches, even
with many concurrent creates through two API processes sharing the region's Redis."""

from __future__ import annotations

import json
import threading
from collections import Counter
import time
from datetime import datetime

import pytest
import redis

from tests.app.conftest import AP, US, login

pytestmark = pytest.mark.lab


def test_create_poll_match_and_cancel(client):
    a, b, c = login(client, 1), login(client, 2), login(client, 3)
    first = client.post("/v1/matchmaking/tickets", json={}, headers=a)
    assert first.status_code == 201
    ticket = first.json()
    assert ticket["status"] == "waiting" and ticket["match"] is None and ticket["region"] == US
    # asking again returns the same waiting ticket
    again = client.post("/v1/matchmaking/tickets", json={}, headers=a)
    assert again.status_code == 200 and again.json()["ticket_id"] == ticket["ticket_id"]
    # someone else may not see or cancel it
    assert client.get(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=b).status_code == 403
    assert client.delete(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=b).status_code == 403

    second = client.post("/v1/matchmaking/tickets", json={"mode": "default"}, headers=b).json()
    assert second["status"] == "matched"
    polled = client.get(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=a).json()
    assert polled["status"] == "matched"
    assert polled["match"]["match_id"] == second["match"]["match_id"]
    assert sorted(polled["match"]["players"]) == [1, 2]
    refused = client.delete(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=a)
    assert refused.status_code == 409 and refused.json()["error"] == "already_matched"

    # a matched player may queue again; a cancelled ticket never matches
    lone = client.post("/v1/matchmaking/tickets", json={"mode": "duel"}, headers=c).json()
    cancelled = client.delete(f"/v1/matchmaking/tickets/{lone['ticket_id']}", headers=c)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.delete(f"/v1/matchmaking/tickets/{lone['ticket_id']}", headers=c).status_code == 200
    newer = client.post("/v1/matchmaking/tickets", json={"mode": "duel"}, headers=a).json()
    assert newer["status"] == "waiting"  # not matched with the cancelled ticket


def test_tickets_of_other_regions_and_bad_input(client):
    tokyo_player = login(client, 22)
    response = client.post("/v1/matchmaking/tickets", json={}, headers=tokyo_player)
    assert response.status_code == 409 and response.json()["serving_region"] == AP
    # a poll or cancel outside the home region is sent home too, never a false "no such ticket"
    for method in (client.get, client.delete):
        away = method("/v1/matchmaking/tickets/" + "0" * 32, headers=tokyo_player)
        assert away.status_code == 409 and away.json()["error"] == "wrong_region", method
    auth = login(client, 1)
    assert client.post("/v1/matchmaking/tickets", json={"mode": "Bad Mode"}, headers=auth).status_code == 422
    assert client.post("/v1/matchmaking/tickets", json={"x": 1}, headers=auth).status_code == 422
    bad = client.get("/v1/matchmaking/tickets/not-hex", headers=auth)
    assert bad.status_code == 422 and bad.json()["fields"] == ["ticket_id"]
    assert client.get("/v1/matchmaking/tickets/" + "0" * 32, headers=auth).status_code == 404
    assert client.post("/v1/matchmaking/tickets", json={}).status_code == 401


@pytest.mark.parametrize("size", [2, 3])
def test_concurrent_creates_never_share_a_ticket(make_client, redis_url, size):
    # Two API processes of one region (same Redis), 20 players queueing at once from 20 threads.
    apps = [make_client(US, match_size=size), make_client(US, match_size=size)]
    players = list(range(1, 21))
    auths = {pid: login(apps[0], pid) for pid in players}
    results: dict[int, dict] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(players))

    def play(pid: int) -> None:
        try:
            barrier.wait()
            response = apps[pid % 2].post("/v1/matchmaking/tickets", json={}, headers=auths[pid])
            assert response.status_code == 201, response.text
            results[pid] = response.json()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(pid,)) for pid in players]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    # the final state of every ticket, as its owner polls it
    final = {pid: apps[0].get(f"/v1/matchmaking/tickets/{results[pid]['ticket_id']}",
                              headers=auths[pid]).json() for pid in players}
    matched = {pid: t for pid, t in final.items() if t["status"] == "matched"}
    waiting = [pid for pid, t in final.items() if t["status"] == "waiting"]
    assert len(waiting) == len(players) % size
    assert len(matched) == len(players) - len(players) % size

    # every match has `size` distinct players, each ticket in exactly one match, and the tickets'
    # view agrees with the match records in Redis
    by_match: dict[str, list[int]] = {}
    for pid, t in matched.items():
        by_match.setdefault(t["match"]["match_id"], []).append(pid)
        assert pid in t["match"]["players"]
    assert all(len(set(v)) == size for v in by_match.values())
    client = redis.Redis.from_url(redis_url)
    records = [json.loads(client.get(k)) for k in client.scan_iter(match="game:us-east-1:mm:match:*")]
    client.close()
    assert len(records) == len(by_match)
    ticket_uses = Counter(t["ticket_id"] for r in records for t in r["tickets"])
    assert ticket_uses and max(ticket_uses.values()) == 1
    for r in records:
        assert sorted(int(t["player_id"]) for t in r["tickets"]) == sorted(by_match[r["match_id"]])


def test_a_ticket_says_when_it_expires_and_is_gone_after_it(make_client, redis_url):
    """expires_at is TICKET_TTL_SECONDS after the ticket's last change (its Redis key's own TTL): a client
    that meets a 404 after it knows the ticket expired and queues again."""
    app = make_client(US, ticket_ttl_seconds=5)
    headers = login(app, 1)
    asked = time.time()
    ticket = app.post("/v1/matchmaking/tickets", json={"mode": "solo"}, headers=headers).json()
    answered = time.time()
    expires = datetime.fromisoformat(ticket["expires_at"]).timestamp()
    assert asked + 5 - 0.01 <= expires <= answered + 5  # set within the request, 5 s on (ms precision)
    redis.Redis.from_url(redis_url).delete(f"game:{US}:mm:ticket:{ticket['ticket_id']}")  # what expiry does
    gone = app.get(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=headers)
    assert gone.status_code == 404 and gone.json()["error"] == "ticket_not_found"
