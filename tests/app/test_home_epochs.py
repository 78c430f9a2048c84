"""Sessions across a region loss (app/sessions.py, home epochs), with three real regions: Tokyo's home is
re-homed to us-east-1 (epoch 2) while its players write; they keep their sessions by trading their
tokens at POST /v1/sessions/refresh, and a client that keeps its old token is refused in every region,
Tokyo included (it is back, reading the same routing). The history goes to the stale-epoch checker."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from migrate.lab.checkers.epochs import Bump, WriteTry, check_stale_epochs
from migrate.lab.match_world import three_regions
from migrate.lab.world import write_atomic
from tests.app.conftest import AP, EU, KEYS, US, seed

pytestmark = pytest.mark.lab

REGIONS = (AP, EU, US)
PLAYERS = range(4001, 4007)  # homed in Tokyo


def test_a_rehomed_home_refuses_old_epoch_writes_everywhere_and_sessions_go_on(db, start_redis, tmp_path):
    seed(db, {pid: AP for pid in PLAYERS})
    routing = tmp_path / "home-routing.json"
    write_atomic(routing, json.dumps({AP: {"region": AP, "epoch": 1}}))
    servers = {r: start_redis() for r in REGIONS}
    writes: list[WriteTry] = []
    lock = threading.Lock()
    stop = threading.Event()
    with three_regions(db, {r: servers[r].url for r in REGIONS}, KEYS, home_routing_file=routing) as world:

        def write(http: httpx.Client, region: str, player: int, session: dict) -> httpx.Response:
            sent_at = time.time()
            answer = http.patch(f"{world.urls[region]}/v1/players/{player}", json={"xp": int(sent_at * 1000) % 10**6},
                                headers={"Authorization": f"Bearer {session['token']}"})
            with lock:
                writes.append(WriteTry(player, AP, session["home_epoch"], region, sent_at, answer.status_code == 200))
            return answer

        def player(pid: int) -> None:
            """A well-behaved client: writes where it is served, refreshes its session when told to."""
            with httpx.Client(timeout=10) as http:
                session = http.post(f"{world.urls[AP]}/v1/login", json={"player_id": pid}).json()
                while not stop.is_set():
                    answer = write(http, session["serving_region"], pid, session)
                    if answer.status_code == 409 and answer.json()["error"] == "stale_home_epoch":
                        region = answer.json()["serving_region"]
                        refreshed = http.post(f"{world.urls[region]}/v1/sessions/refresh",
                                              headers={"Authorization": f"Bearer {session['token']}"})
                        assert refreshed.status_code == 200, refreshed.text
                        session = refreshed.json()
                    else:
                        assert answer.status_code == 200, answer.text
                    time.sleep(0.02)

        def zombie(pid: int, session: dict) -> None:
            """A client that keeps its old token and writes to every region in turn."""
            with httpx.Client(timeout=10) as http:
                i = 0
                while not stop.is_set():
                    write(http, REGIONS[i % 3], pid, session)
                    i += 1
                    time.sleep(0.02)

        old = httpx.post(f"{world.urls[AP]}/v1/login", json={"player_id": PLAYERS[0]}, timeout=10).json()
        assert old["home_epoch"] == 1
        threads = [threading.Thread(target=player, args=(pid,)) for pid in PLAYERS]
        threads.append(threading.Thread(target=zombie, args=(PLAYERS[0], old)))
        for t in threads:
            t.start()
        time.sleep(2.0)
        write_atomic(routing, json.dumps({AP: {"region": US, "epoch": 2}}))  # Tokyo lost: its home now served by us-east-1
        bumped_at = time.time()
        time.sleep(3.0)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        refreshed = httpx.post(f"{world.urls[EU]}/v1/sessions/refresh",
                               headers={"Authorization": f"Bearer {old['token']}"}, timeout=10).json()

    assert check_stale_epochs([Bump(AP, 2, bumped_at)], writes) == []
    after = [w for w in writes if w.sent_at > bumped_at]
    assert {w.region for w in after if w.token_epoch == 1} == set(REGIONS)  # the zombie tried everywhere…
    assert not any(w.accepted for w in after if w.token_epoch == 1)  # …and was refused everywhere
    kept = {w.player for w in after if w.token_epoch == 2 and w.accepted and w.region == US}
    assert kept == set(PLAYERS)  # every player went on writing, at us-east-1, without logging in again
    assert (refreshed["home_epoch"], refreshed["serving_region"]) == (2, US)
    assert json.loads(routing.read_text())[AP]["epoch"] == 2
