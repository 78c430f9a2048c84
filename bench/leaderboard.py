"""Benchmark: the leaderboards under load in three regions — how long an acknowledged top-100 score
takes to show in every region's global top-100, and the checkers' verdicts.

    python -m bench.leaderboard --players-per-region 300 --seconds 60 --out bench/results/leaderboard.json

A Redis per region and the three regions' apps in this process, with the regions' real round trips
between them and the app's shipped cache settings (GLOBAL_CACHE_SECONDS 1, GLOBAL_MAX_STALE_SECONDS
10, PEER_TIMEOUT_SECONDS 2: the documented bound of a quiet global board is 12 s). Submitters score
players homed in each region; readers read each region's regional and global top-100 as fast as
they answer. Then reads go on for one bound with no scores. Convergence is per acknowledged score in
the oracle's top-100 and per region read through (migrate/lab/checkers/leaderboard.convergence).
The apps, the WAN proxy and the clients share one Python process: its figures are an upper bound."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import httpx
import psycopg

from bench.labkit import percentile, three_region_redis
from migrate.lab.board_load import run_board_load
from migrate.lab.checkers.leaderboard import check_global_quiet, check_no_phantom, check_strict, convergence
from migrate.lab.machine import describe_machine
from migrate.lab.match_world import three_regions
from migrate.names import REGIONS

CACHE_S, MAX_STALE_S, PEER_TIMEOUT_S = 1.0, 10.0, 2.0  # app/config.py's defaults


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leaderboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--players-per-region", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--submitters-per-region", type=int, default=2)
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/leaderboard.json"))
    args = parser.parse_args(argv)
    command = "python -m bench.leaderboard " + shlex.join(sys.argv[1:] if argv is None else argv)
    bound = MAX_STALE_S + PEER_TIMEOUT_S

    with three_region_redis(args.spec) as (t, dsn, keys):
        with psycopg.connect(dsn) as conn:
            homes = {region: [row[0] for row in conn.execute(
                "SELECT id FROM players WHERE home_region = %s ORDER BY id LIMIT %s",
                (region, args.players_per_region))] for region in REGIONS}
        with three_regions(dsn, {r: t.redis_url(r) for r in REGIONS}, keys, global_cache_seconds=CACHE_S,
                           global_max_stale_seconds=MAX_STALE_S, peer_timeout_seconds=PEER_TIMEOUT_S) as world:
            tokens = {r: {p: httpx.post(f"{world.urls[r]}/v1/login", json={"player_id": p}, timeout=10).json()["token"]
                          for p in ids} for r, ids in homes.items()}
            history = run_board_load(world.urls, tokens, seconds=args.seconds, quiet_s=bound + 3.0,
                                     submitters_per_region=args.submitters_per_region)

    delays = convergence(history.acks, history.reads)
    strict = check_strict(history.acks, history.reads)
    phantom = check_no_phantom(history.sent, history.reads)
    quiet = check_global_quiet(history.acks, history.reads, bound)
    result = {
        "command": command, "machine": describe_machine(), "players_per_region": args.players_per_region,
        "seconds": args.seconds, "scores_acknowledged": len(history.acks), "scores_failed": history.failed,
        "reads": {kind: sum(r.kind == kind for r in history.reads) for kind in ("regional", "global")},
        "global_convergence_s": {"samples": len(delays), "p50": _round(percentile(delays, 50)), "p99": _round(percentile(delays, 99)),
                                 "max": round(max(delays), 3) if delays else None, "documented_bound": bound},
        "checker": {"strict_top100_violations": len(strict), "phantom_entries": len(phantom),
                    "quiet_global_differs_from_oracle": len(quiet), "first": (strict + phantom + quiet)[:10]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("scores_acknowledged", "global_convergence_s", "checker")}, indent=2))
    return 1 if strict or phantom or quiet else 0


if __name__ == "__main__":
    sys.exit(main())
