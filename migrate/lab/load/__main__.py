"""`python -m migrate.lab.load --lab-dir DIR --duration S --rate R [--out FILE] [--seed N]`: one load run
against a lab without the migrate CLI (prints the table on stderr, writes the JSON report)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from migrate.lab.load import render, run_load, write_report
    from migrate.errors import MigrateError
    from migrate.lab.topology import LabTopology, default_lab_dir

    parser = argparse.ArgumentParser(prog="python -m migrate.lab.load", description=__doc__)
    parser.add_argument("--lab-dir", type=Path, default=default_lab_dir())
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=20.0, help="target requests per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--players", type=int, default=None, help="default: 4 × rate (30..5000)")
    parser.add_argument("--max-in-flight", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(".migrate/load.json"))
    args = parser.parse_args(argv)
    console = Console(stderr=True, highlight=False)
    topology = LabTopology.load(args.lab_dir.absolute())
    if topology is None:
        console.print(f"[red]error[/] no lab at {args.lab_dir} (run `migrate lab up`)")
        return 1
    try:
        report = run_load(topology, args.duration, args.rate, seed=args.seed, players=args.players,
                          max_in_flight=args.max_in_flight,
                          command=shlex.join(["python", "-m", "migrate.lab.load", *(argv or sys.argv[1:])]))
    except MigrateError as exc:
        console.print(f"[red]error[/] {exc.one_line()}")
        return 1
    write_report(report, args.out)
    render(report, console)
    console.print(f"report: {args.out}")
    return 0 if report.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
