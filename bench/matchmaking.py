"""Benchmark: cross-region matchmaking — time to match per pair of geographies, and the host every
match got, checked.

    python -m bench.matchmaking --players na=2,apac=1,eu=1 --seconds 180 --out bench/results/matchmaking.json

A lab (its PostgreSQL holds the players and their homes), a Redis per region, and the three regions'
apps in this process with the regions' real round trips between them (migrate/lab/match_world.py).
The queue is sparse on purpose (a few players per geography, as in a rare mode or a narrow skill band):
with many players every match forms in its home region at once and nothing crosses. Each player first measures its own round trip to every region (median of three GET /health through
its geography's link), then, again and again: waits a random think time, queues at its home region
through its link with those round trips, polls every 50 ms until matched. Time to match is from the
POST being sent to the poll that sees the match (what the player waits, two WAN legs included).

The result: per pair of geographies (a match of two players) the count, time-to-match p50/p95 and the
hosts chosen with their worst round trip; local vs cross-region counts; and the history checker's
verdict over every region's record (migrate/lab/checkers/matches.py: no ticket in two matches,
claims all-or-none, host = minimax every time, each player within their own widening limit)."""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench.labkit import percentile, three_region_redis
from migrate.lab.checkers.matches import Seen, check_matches, formed_matches, read_history
from migrate.lab.machine import describe_machine
from migrate.lab.match_world import MatchWorld, three_regions
from migrate.names import REGIONS

GEOGRAPHY_OF_HOME = {"ap-northeast-1": "apac", "eu-central-1": "eu", "us-east-1": "na"}
POLL_S = 0.05


def measure(world: MatchWorld, geography: str) -> dict[str, float]:
    """The player's own round trip to each region: median of three /health calls through its link."""
    rtts = {}
    for region in REGIONS:
        with httpx.Client(base_url=world.player_url(geography, region), timeout=10) as http:
            http.get("/health")  # the connection is set up outside the samples
            samples = []
            for _ in range(3):
                start = time.perf_counter()
                http.get("/health")
                samples.append((time.perf_counter() - start) * 1000)
        rtts[region] = round(statistics.median(samples), 1)
    return rtts


def play(world: MatchWorld, home: str, player_id: int, until: float, out: list, lock: threading.Lock,
         seed: int, think_s: float) -> None:
    rng = random.Random(seed)
    geography = GEOGRAPHY_OF_HOME[home]
    rtts = measure(world, geography)
    with httpx.Client(base_url=world.player_url(geography, home), timeout=10) as http:
        auth = {"Authorization": "Bearer " + http.post("/v1/login", json={"player_id": player_id}).json()["token"]}
        while time.monotonic() < until:
            time.sleep(rng.uniform(0, think_s))
            sent = time.monotonic()
            ticket = http.post("/v1/matchmaking/tickets", json={"rtt_ms": rtts}, headers=auth).json()
            while ticket.get("status") == "waiting" and time.monotonic() < until + 30:
                time.sleep(POLL_S)
                ticket = http.get(f"/v1/matchmaking/tickets/{ticket['ticket_id']}", headers=auth).json()
            if ticket.get("status") == "matched":
                with lock:
                    out.append({"ticket_id": ticket["ticket_id"], "match": ticket["match"], "geography": geography,
                                "player_id": player_id, "waited_s": time.monotonic() - sent})


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summarise(played: list[dict[str, Any]], history: list, violations: list[str]) -> dict[str, Any]:
    geography_of = {p["player_id"]: p["geography"] for p in played}
    by_pair: dict[str, dict[str, Any]] = defaultdict(lambda: {"waits_s": [], "hosts": Counter(), "worst_rtt_ms": []})
    for p in played:
        members = p["match"]["players"]
        pair = "+".join(sorted(geography_of.get(m, "?") for m in members))
        entry = by_pair[pair]
        entry["waits_s"].append(p["waited_s"])
        if p["player_id"] == min(members):  # one count per match
            entry["hosts"][p["match"]["host_region"]] += 1
            entry["worst_rtt_ms"].append(p["match"]["expected_rtt_ms"])

    pairs = {pair: {"matches": sum(e["hosts"].values()), "players_matched": len(e["waits_s"]),
                    "time_to_match_p50_s": _round(percentile(e["waits_s"], 50)),
                    "time_to_match_p95_s": _round(percentile(e["waits_s"], 95)),
                    "hosts": dict(e["hosts"]),
                    "worst_rtt_ms_p50": percentile([w for w in e["worst_rtt_ms"] if w is not None], 50)}
             for pair, e in sorted(by_pair.items())}
    matches = formed_matches(history)
    return {"pairs": pairs, "matches": {"local": sum(m.get("kind") == "local" for m in matches),
                                        "cross_region": sum(m.get("kind") == "cross" for m in matches)},
            "claims": dict(Counter(e.event for e in history)),
            "checker": {"violations": len(violations), "first": violations[:10]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.matchmaking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", default="na=2,apac=1,eu=1",
                        help="players per geography (each homed in its nearest region), e.g. na=2,apac=1,eu=1")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--think-seconds", type=float, default=2.0, help="largest pause between two tickets")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/matchmaking.json"))
    args = parser.parse_args(argv)
    home_of = {g: r for r, g in GEOGRAPHY_OF_HOME.items()}
    try:
        wanted = {home_of[g]: int(n) for g, _, n in (part.partition("=") for part in args.players.split(","))}
    except (KeyError, ValueError):
        parser.error(f"--players {args.players!r}: want geography=count pairs of {sorted(home_of)}")
    command = "python -m bench.matchmaking " + shlex.join(sys.argv[1:] if argv is None else argv)

    with three_region_redis(args.spec) as (t, dsn, keys):
        with psycopg.connect(dsn) as conn:
            homes = {region: [row[0] for row in conn.execute(
                "SELECT id FROM players WHERE home_region = %s ORDER BY id LIMIT %s",
                (region, wanted.get(region, 0)))] for region in REGIONS}
        clients = {r: redis.Redis.from_url(t.redis_url(r)) for r in REGIONS}
        with three_regions(dsn, {r: t.redis_url(r) for r in REGIONS}, keys, match_size=2) as mw:
            played: list[dict[str, Any]] = []
            lock = threading.Lock()
            until = time.monotonic() + args.seconds
            threads = [threading.Thread(target=play, args=(mw, home, pid, until, played, lock, args.seed * 100_003 + pid,
                                                           args.think_seconds))
                       for home, ids in homes.items() for pid in ids]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(5)  # claims a late poll left open settle (their lease)
            history = [e for r in REGIONS for e in read_history(clients[r], f"game:{r}:", r)]
        seen = [Seen(p["ticket_id"], p["match"]["match_id"]) for p in played]
        violations = check_matches(history, seen, REGIONS)

    result = {"command": command, "machine": describe_machine(), "players": args.players,
              "seconds": args.seconds, **summarise(played, history, violations)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("pairs", "matches", "checker")}, indent=2))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
