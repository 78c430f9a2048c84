"""The region-kill game day (DESIGN §6b) under live load, with its figures.

    python -m bench.gameday --players 100000 --rate 30 --out bench/results/gameday.json   (make gameday)
    python -m bench.gameday --lab .lab --rate 40                                          (the demo's last act)

Fresh (no --lab): a lab of N players; Tokyo stood up and attached, APAC's reads shadowed and APAC
shifted to Tokyo (the real phases, gated, players playing), the schema expanded, Tokyo cut over. With
--lab: a lab where that has happened already (`make demo` gets there), journal and spec from the
environment (MIGRATE_STATE, MIGRATE_SPEC).

Then, players playing at the 60/25/15 mix: every WAN link of Tokyo is cut (its processes run on,
unreachable); `migrate region evacuate ap-northeast-1` as soon as its health check through APAC's link
fails; APAC plays on us-east-1 for a while; the links come back; `migrate region return ap-northeast-1`;
APAC plays on Tokyo again. Figures (migrate/lab/gameday.py): seconds in which APAC requests failed,
requests failed by kind, sessions refreshed, every acknowledged write not replicated (from the players'
ledger) against what the return listed from the returned writer; any broken guarantee is printed and
fails the run (exit 1)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.labkit import bench_lab, migrate, players
from migrate.lab.machine import describe_machine

REGION = "ap-northeast-1"
GEOGRAPHY = "apac"


def cli(*args: str) -> dict[str, Any]:
    """`migrate --output json ARGS` in its own process, as the incident commander runs it; the data."""
    proc = subprocess.run([sys.executable, "-m", "migrate", "--output", "json", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"migrate {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout)["data"]


def prepare(topology, rate: float) -> None:
    """Tokyo serving APAC and writing its home, through the programme's own phases (players playing)."""
    migrate("phase", "run", "stand-up-region", "--region", REGION, "--yes")
    migrate("phase", "run", "attach-secondary", "--region", REGION, "--yes")
    with players(topology, rate, 7):
        migrate("phase", "run", "shadow-traffic", "--region", REGION, "--yes")
        migrate("phase", "run", "shift-traffic", "--region", REGION, "--yes")
        migrate("phase", "rollback", "shadow-traffic", "--region", REGION, "--yes")
        migrate("phase", "run", "expand-schema", "--yes")
        migrate("phase", "run", "cutover", "--region", REGION, "--yes")


def play(topology, rate: float, away_s: float) -> dict[str, Any]:
    from migrate.lab.gameday import figures, problems, region_kill

    with players(topology, rate, 13) as seen:
        day = region_kill(topology, cli, REGION, GEOGRAPHY, away_s=away_s)
    figs = figures(topology, day, seen["report"])
    return {"figures": figs, "problems": problems(figs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=100_000, help="players of a fresh lab")
    parser.add_argument("--lab", type=Path, help="play on this lab (Tokyo cut over and serving APAC already)")
    parser.add_argument("--rate", type=float, default=30.0, help="player requests per second")
    parser.add_argument("--away", type=float, default=10.0, help="seconds APAC plays on the fallback")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gameday.json"))
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    args = parser.parse_args(argv)

    from migrate.lab.topology import LabTopology

    started = time.time()
    if args.lab is not None:
        os.environ["MIGRATE_LAB_DIR"] = str(args.lab.resolve())
        topology = LabTopology.load(args.lab.resolve())
        if topology is None:
            print(f"no lab in {args.lab}: `make demo` builds one", file=sys.stderr)
            return 1
        outcome = play(topology, args.rate, args.away)
    else:
        with bench_lab(args.players, args.spec) as lab:
            topology = LabTopology.load(lab.lab_dir)
            prepare(topology, args.rate)
            outcome = play(topology, args.rate, args.away)
    result = {"benchmark": "gameday",
              "command": "python -m bench.gameday " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
              "machine": describe_machine(), "players": None if args.lab else args.players, "rate": args.rate,
              "wall_s": round(time.time() - started, 1), **outcome}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    figs = outcome["figures"]
    print(json.dumps({k: v for k, v in figs.items() if k != "acknowledged_writes_not_replicated"}, indent=2,
                     default=str))
    print(f"acknowledged writes not replicated: {len(figs['acknowledged_writes_not_replicated'])} "
          f"(the return listed {(figs['listed_by_the_return'] or {}).get('count')} row(s) from the returned writer)")
    for problem in outcome["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if outcome["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
