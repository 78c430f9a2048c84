"""Benchmark: expand → backfill → contract under live player load, with every region attached.

    python -m bench.schema_under_load --players 100000 --rate 40 --out bench/results/schema-under-load.json

A lab of N players; Tokyo and Frankfurt stood up and attached (every region reads a replica). Players
play at the 60/25/15 geography mix in this process while `migrate phase run expand-schema` runs in
another, as an operator would run it; then every region's app is deployed as v2 (between the two load
windows: the lab has one app process per region and a restart refuses connections, where ECS rolls
tasks behind the load balancer), and contract-schema runs under a second load window. Each window ends
with the ledger check (every acknowledged write found in the database).

The stall figures come from the players' own HdrHistogram interval logs (migrate/lab/player_logs.py):
for each journaled step (each DDL, the backfill), the slowest successful request and the failed
requests of each geography in the intervals that overlap the step, next to the same figures for a
quiet stretch of the same window before the phase began. The interval logs mix request types, so "the
slowest request" bounds the slowest write; the per-type table of the load report is in the output."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.labkit import bench_lab, latency_in, migrate, players, settle, step_windows
from migrate.lab.machine import describe_machine

REGIONS_TO_ATTACH = ("ap-northeast-1", "eu-central-1")
QUIET_S = 12.0  # load before each phase starts: the baseline the steps are compared with
SETTLE_S = 4.0  # load after each phase ends, so the last step's intervals are complete


def under_load(topology, rate: float, seed: int, phase_args: list[str]) -> tuple[dict, float, float]:
    """Players at `rate` while `migrate phase run …` runs: (load report, quiet start, phase start)."""
    with players(topology, rate, seed) as seen:
        quiet_from = time.time()
        time.sleep(QUIET_S)
        phase_from = time.time()
        migrate("phase", "run", *phase_args, "--yes")
        settle(SETTLE_S)
    return seen["report"], quiet_from, phase_from


def window_result(report: dict, lab_dir: Path, quiet: tuple[float, float], steps: list[dict]) -> dict[str, Any]:
    ledger = report["ledger"]
    return {
        "player_requests": report["requests"]["finished"],
        "player_errors": sum(report["errors_by_kind"].values()),
        "errors_by_kind": report["errors_by_kind"],
        "ledger": {k: ledger.get(k) for k in ("acknowledged", "found", "lost", "unknown")},
        "quiet_before": latency_in(lab_dir, *quiet),
        "steps": [{"step": s["step"], "seconds": round(s["end"] - s["start"], 3),
                   "players": latency_in(lab_dir, s["start"], s["end"])} for s in steps],
        "per_request_type": report["per_geography"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=40.0, help="player requests per second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/schema-under-load.json"))
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    args = parser.parse_args(argv)

    from migrate.lab import world
    from migrate.lab.topology import REGIONS, LabTopology

    with bench_lab(args.players, args.spec) as lab:
        for region in REGIONS_TO_ATTACH:
            migrate("phase", "run", "stand-up-region", "--region", region, "--yes")
            migrate("phase", "run", "attach-secondary", "--region", region, "--yes")
        topology = LabTopology.load(lab.lab_dir)

        expand_report, quiet_from, expand_from = under_load(topology, args.rate, 21, ["expand-schema"])
        expand = window_result(expand_report, lab.lab_dir, (quiet_from, expand_from),
                               step_windows(lab, "expand-schema"))
        deployed = [line for region in REGIONS for line in world.deploy_app_generation(topology, region, 2)]
        contract_report, quiet_from, contract_from = under_load(topology, args.rate, 22, ["contract-schema"])
        contract = window_result(contract_report, lab.lab_dir, (quiet_from, contract_from),
                                 step_windows(lab, "contract-schema"))
        result = {
            "benchmark": "schema-under-load",
            "command": "python -m bench.schema_under_load " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
            "machine": describe_machine(),
            "players": args.players,
            "rate": args.rate,
            "attached": list(REGIONS_TO_ATTACH),
            "expand": expand,
            "between_windows": deployed,
            "contract": contract,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k not in ("expand", "contract")}, indent=2))
        for name in ("expand", "contract"):
            w = result[name]
            print(f"\n{name}: {w['player_requests']} player requests, {w['player_errors']} errors, ledger {w['ledger']}")
            print(f"  quiet before: " + ", ".join(f"{g} max {v['max_ms']} ms" for g, v in w["quiet_before"].items()))
            for s in w["steps"]:
                print(f"  {s['step']:<34} {s['seconds']:>7.2f} s  " + ", ".join(
                    f"{g} max {v['max_ms']} ms ({v['failed']} failed)" for g, v in s["players"].items()))
        return 0


if __name__ == "__main__":
    sys.exit(main())
