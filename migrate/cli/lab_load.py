"""`migrate lab load`: players at the 60/25/15 mix against the lab; a latency table and a JSON report.

Runs fine in the background during phases (`migrate lab load --duration 120 --rate 50 --out f.json &`):
no TTY needed, progress only when stderr is a terminal this process owns (foreground). SIGINT or
SIGTERM ends the load early; the ledger is still checked and the report still written."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from migrate import exit_codes
from migrate.cli.context import execute
from migrate.output.console import err, out


def _foreground_tty() -> bool:
    """stderr is a terminal and we are its foreground job (so a bar does not scribble over a shell)."""
    try:
        fd = sys.stderr.fileno()
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def register(app: typer.Typer) -> None:
    """Add `load` to the `migrate lab` group."""

    @app.command("load")
    def load_cmd(
        ctx: typer.Context,
        duration: float = typer.Option(30.0, "--duration", help="seconds of load"),
        rate: float = typer.Option(20.0, "--rate", help="target requests per second, all geographies"),
        out_file: Optional[Path] = typer.Option(None, "--out",
                                                help="JSON report (default .migrate/load.json next to the spec)"),
        seed: int = typer.Option(1, "--seed", help="seeds players, arrivals, request mix and DNS picks"),
        players: Optional[int] = typer.Option(None, "--players",
                                             help="players to play, split 60/25/15 (default: 4 × rate, 30..5000)"),
        max_in_flight: int = typer.Option(200, "--max-in-flight",
                                          help="requests at once before arrivals are dropped (and counted)"),
    ) -> None:
        """Play players (Route 53 resolution, WAN links, realistic mix) and check every acknowledged write."""

        def body(opts):
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            from migrate.lab.load import render, run_load, write_report
            from migrate.cli.lab import _lab_dir
            from migrate.errors import LabError
            from migrate.lab.topology import LabTopology

            lab_dir, _ = _lab_dir(opts)
            topology = LabTopology.load(lab_dir)
            if topology is None:
                raise LabError(f"the lab is not up (no {lab_dir / 'lab.json'})", hint="start it with `migrate lab up`")
            path = out_file or Path(opts.spec).absolute().parent / ".migrate" / "load.json"
            command = shlex.join(["migrate", *sys.argv[1:]])
            show = _foreground_tty() and not opts.json
            with Progress(TextColumn("load"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=err, transient=True, disable=not show) as bar:
                task = bar.add_task("", total=duration)

                def progress(p: dict) -> None:
                    bar.update(task, completed=min(p["elapsed_s"], duration),
                               description=f"{p['finished']:,} done · {p['failed']:,} failed · "
                                           f"{p['rate']:.1f} req/s")

                def started(info: dict) -> None:
                    records = ", ".join(f"{r['set_identifier'] or r['region']}"
                                        + (f" w{r['weight']}" if r["weight"] is not None else "")
                                        for r in info["records"])
                    players_line = ", ".join(f"{g} {n}" for g, n in info["players"].items())
                    err.print(f"load started: {rate:g} req/s for {duration:g} s · players {players_line} · "
                              f"DNS {records} · SIGINT/SIGTERM end it early (report still written)",
                              soft_wrap=True)

                report = run_load(topology, duration, rate, seed=seed, players=players,
                                  max_in_flight=max_in_flight, progress=progress, on_start=started,
                                  command=command)
            write_report(report, path)
            if not opts.json:
                render(report, out)
                err.print(f"report: {path}")
            if report.lost:
                err.print(f"[red]{report.lost} acknowledged write(s) lost[/] (see the report's ledger.examples)")
                return report.to_json(), exit_codes.ERROR
            return report.to_json(), exit_codes.OK

        execute(ctx, "lab load", body)
