"""Benchmark: the write stall players see when a home's writer moves, over repeated cutovers and
rollbacks under live load.

    python -m bench.cutover --players 1000000 --cycles 5 --rate 30 --out bench/results/cutover.json

A lab of N players, Tokyo stood up and attached, the schema expanded. Players play at the 60/25/15 mix
(APAC players reach the us-east-1 app: no shift, so each write to the moving home crosses to whichever
writer owns it) while this process runs `migrate phase run cutover --region ap-northeast-1` and then
`migrate phase rollback cutover …`, CYCLES times, each as its own operator command.

The stall of one move is the window in which the home's writes are held:
- cutover: from fence-origin's start to route-writes' end (the journal);
- rollback: from route-writes' undo start (the new writer fenced) to its end (routed back, origin unfenced).
For each window, the players' slowest request per geography (their own HdrHistogram interval logs, every
request type: it bounds the slowest held write) and the failed requests. The floor is one round trip of
the APAC players' link to us-east-1 plus the promotion (its own step time); the target is floor + 0.5 s.
p50/p99 are over the moves (2 × CYCLES: with 10 moves p99 is the worst one). The ledger check at the end
covers every acknowledged write of the whole run (the lab reads moved rows from the home's writer)."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.labkit import BenchLab, bench_lab, journal_events, latency_in, migrate, percentile, players, settle
from migrate.lab.machine import describe_machine

REGION = "ap-northeast-1"
GEOGRAPHY = "apac"
QUIET_S = 10.0  # players before the first move: the baseline the stalls are compared with
BETWEEN_S = 5.0  # players between two moves, so their windows never share an interval
HOLD_S = 3.5  # WRITE_HOLD_SECONDS and an interval: a held write is logged when it is answered


def move_windows(lab: BenchLab, since: int) -> list[dict[str, Any]]:
    """Each move since journal serial `since`: kind, held window (epoch), promote seconds."""
    moves, started = [], {}
    for e in journal_events(lab, "cutover"):
        if e.serial <= since:
            continue
        key = (e.kind, e.step)
        if key in (("step_started", "fence-origin"), ("undo_started", "route-writes"), ("step_started", "promote")):
            started[key] = e.at.timestamp()
        elif key == ("step_succeeded", "promote"):
            started["promote_s"] = e.at.timestamp() - started.pop(("step_started", "promote"))
        elif key == ("step_succeeded", "route-writes"):
            moves.append({"move": "cutover", "held_from": started.pop(("step_started", "fence-origin")),
                          "held_until": e.at.timestamp(), "promote_s": started.pop("promote_s", None)})
        elif key == ("undo_succeeded", "route-writes"):
            moves.append({"move": "rollback", "held_from": started.pop(("undo_started", "route-writes")),
                          "held_until": e.at.timestamp(), "promote_s": None})
    return moves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=5, help="cutover + rollback pairs")
    parser.add_argument("--rate", type=float, default=30.0, help="player requests per second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/cutover.json"))
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    args = parser.parse_args(argv)

    from migrate.lab.topology import SOURCE_REGION, LabTopology, player_rtt_ms

    with bench_lab(args.players, args.spec) as lab:
        migrate("phase", "run", "stand-up-region", "--region", REGION, "--yes")
        migrate("phase", "run", "attach-secondary", "--region", REGION, "--yes")
        migrate("phase", "run", "expand-schema", "--yes")
        topology = LabTopology.load(lab.lab_dir)
        since = max((e.serial for e in journal_events(lab)), default=0)
        with players(topology, args.rate, 31) as seen:
            quiet_from = time.time()
            time.sleep(QUIET_S)
            quiet = latency_in(lab.lab_dir, quiet_from, time.time())
            for _ in range(args.cycles):
                migrate("phase", "run", "cutover", "--region", REGION, "--yes")
                settle(BETWEEN_S)
                migrate("phase", "rollback", "cutover", "--region", REGION, "--yes")
                settle(BETWEEN_S)
        report = seen["report"]
        rtt = player_rtt_ms(GEOGRAPHY, SOURCE_REGION)
        moves = []
        for move in move_windows(lab, since):
            during = latency_in(lab.lab_dir, move["held_from"], move["held_until"] + HOLD_S)
            floor = rtt + (move["promote_s"] or 0) * 1000
            moves.append({**move, "held_s": round(move["held_until"] - move["held_from"], 3),
                          "players": during, "floor_ms": round(floor, 1), "target_ms": round(floor + 500, 1)})
        held = [m["held_s"] for m in moves]
        slowest = [m["players"][GEOGRAPHY]["max_ms"] for m in moves if m["players"][GEOGRAPHY]["max_ms"]]
        ledger = report["ledger"]
        result = {
            "benchmark": "cutover",
            "command": "python -m bench.cutover " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
            "machine": describe_machine(),
            "players": args.players, "rate": args.rate, "cycles": args.cycles,
            "moves": len(moves),
            "held_s": {"p50": percentile(held, 50), "p99": percentile(held, 99), "max": max(held, default=None)},
            "apac_slowest_request_ms": {"p50": percentile(slowest, 50), "p99": percentile(slowest, 99)},
            "apac_quiet_before": quiet[GEOGRAPHY],
            "failed_requests_in_windows": sum(v["failed"] for m in moves for v in m["players"].values()),
            "player_requests": report["requests"]["finished"],
            "player_errors": sum(report["errors_by_kind"].values()),
            "errors_by_kind": report["errors_by_kind"],
            "ledger": {k: ledger.get(k) for k in ("acknowledged", "found", "lost", "unknown")},
            "per_move": moves,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "per_move"}, indent=2))
        for m in moves:
            p = m["players"][GEOGRAPHY]
            print(f"  {m['move']:<9} held {m['held_s']:6.3f} s  apac slowest {p['max_ms']} ms "
                  f"(floor {m['floor_ms']} ms, target {m['target_ms']} ms), {p['failed']} failed")
        return 0


if __name__ == "__main__":
    sys.exit(main())
