"""Cross-region matchmaking with three real regions: each app on real HTTP with its own Redis, the
regions' peer calls through emulated WAN links (the lab's proxy, real round trips), players queueing
at their home region at once. The peer links between us-east-1 and Tokyo are cut and restored in the
middle. What every region recorded, and what the players saw, go to the history checker
(migrate/lab/checkers/matches.py): no ticket in two matches, claims all-or-none, minimax hosts,
widening by each player's own round trips."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import httpx
import pytest

from migrate.lab.checkers.matches import Seen, check_matches, formed_matches, read_history
from migrate.lab.match_world import three_regions
from migrate.lab.topology import link_rtt_ms
from tests.app.conftest import AP, EU, KEYS, US, seed

pytestmark = pytest.mark.lab

REGIONS = (AP, EU, US)
GEOGRAPHY = {AP: "apac", EU: "eu", US: "na"}
# few players, so tickets often wait alone and widen (many would all match locally): Frankfurt's and
# Tokyo's only player match only across regions, and all three matchmakers want us-east-1's two
PLAYERS = {US: (101, 102), AP: (121,), EU: (141,)}
WIDENING = [[0.3, 50.0], [0.8, 120.0], [1.5, 200.0]]  # the shipped one, shortened for the test
CUT_AT_S, RESTORE_AT_S = 5.0, 9.0
# a liveness bound, not a timing claim: the players go on until a cross-region match forms after the
# links came back (whether one forms within a fixed window depends on the players' random pauses and
# on how loaded the machine is; CI once saw none in 5 s)
AFTER_RESTORE_DEADLINE_S = 90.0


def player_rtts(region: str, rng: random.Random) -> dict[str, float]:
    """What this player's client measured to each region: its link's round trip, ± 5 %."""
    return {r: round(link_rtt_ms(f"{GEOGRAPHY[region]}->{r}:api") * rng.uniform(0.95, 1.05), 1) for r in REGIONS}


def play(region: str, url: str, player_id: int, stop: threading.Event, seen: list, lock: threading.Lock,
         seed_: int) -> None:
    """Queue, poll until matched, repeat, until `stop`; every match seen is recorded."""
    rng = random.Random(seed_)
    with httpx.Client(base_url=url, timeout=5) as http:
        token = http.post("/v1/login", json={"player_id": player_id}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        while not stop.wait(rng.uniform(0.0, 1.0)):
            made = http.post("/v1/matchmaking/tickets", json={"rtt_ms": player_rtts(region, rng)}, headers=auth)
            assert made.status_code in (200, 201), made.text
            ticket = made.json()
            while ticket["status"] == "waiting":
                if stop.is_set():  # the player leaves the queue; a match being formed answers 409 first
                    left = http.delete(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=auth)
                    assert left.status_code in (200, 409), left.text
                    if left.status_code == 200:
                        ticket = left.json()
                        break
                time.sleep(0.1)
                ticket = http.get(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=auth).json()
            if ticket["status"] == "matched":
                with lock:
                    seen.append((Seen(ticket["ticket_id"], ticket["match"]["match_id"]), ticket["match"]))


def cross_match_since(redis_of: dict, since: float) -> bool:
    """Whether the regions' histories hold a cross-region match chosen after `since` (Unix seconds)."""
    history = [e for r in REGIONS for e in read_history(redis_of[r], f"game:{r}:", r)]
    return any(m["kind"] == "cross" and m["chosen_at"] > since for m in formed_matches(history))


def test_concurrent_matchmakers_in_three_regions_never_share_a_ticket_across_a_link_cut(db, start_redis):
    seed(db, {pid: region for region, ids in PLAYERS.items() for pid in ids})
    servers = {r: start_redis() for r in REGIONS}
    redis_of = {r: servers[r].client() for r in REGIONS}
    with three_regions(db, {r: servers[r].url for r in REGIONS}, KEYS, match_size=2, cross_match_widening=WIDENING,
                       cross_match_lease_seconds=1.0, cross_match_interval_seconds=0.1,
                       peer_timeout_seconds=1.0) as world:
        urls, wan = world.urls, world.wan
        seen: list = []
        lock = threading.Lock()
        stop = threading.Event()
        threads = [threading.Thread(target=play, args=(region, urls[region], pid, stop, seen, lock, pid))
                   for region, ids in PLAYERS.items() for pid in ids]
        for t in threads:
            t.start()
        time.sleep(CUT_AT_S)
        for name in (f"{US}->{AP}", f"{AP}->{US}"):
            wan.cut(name)
        time.sleep(RESTORE_AT_S - CUT_AT_S)
        for name in (f"{US}->{AP}", f"{AP}->{US}"):
            wan.restore(name)
        restored_at = time.time()  # the apps' clock
        deadline = time.monotonic() + AFTER_RESTORE_DEADLINE_S
        while not cross_match_since(redis_of, restored_at) and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        # every claim the cut left open is settled once its lease runs out and its coordinator answers
        deadline = time.monotonic() + 20
        while any(redis_of[r].scard(f"game:{r}:mm:claimed") for r in REGIONS):
            assert time.monotonic() < deadline, {r: redis_of[r].smembers(f"game:{r}:mm:claimed") for r in REGIONS}
            time.sleep(0.2)
        history = [e for r in REGIONS for e in read_history(redis_of[r], f"game:{r}:", r)]

    assert check_matches(history, [s for s, _ in seen], REGIONS) == []
    matches = formed_matches(history)
    cross = [m for m in matches if m["kind"] == "cross"]
    events = Counter(e.event for e in history)
    assert cross, f"no cross-region match formed: {events}"
    assert events["claimed"] >= len(cross)
    # the players were told where their match is hosted and the worst round trip there
    for _, match in seen:
        assert match["host_region"] in REGIONS and match["expected_rtt_ms"] > 0
    # matchmaking went on after the links came back
    assert any(m["chosen_at"] > restored_at for m in cross), [m["chosen_at"] - restored_at for m in cross]
