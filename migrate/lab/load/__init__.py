"""The load generator: players at the 60/25/15 mix who resolve the API name through Route 53 (moto
in the lab) the way a resolver would, play a realistic request mix through their geography's WAN
links, and keep a ledger of every acknowledged write, checked against the database at the end.

    run_load(topology, duration_s, rate) -> LoadReport       # blocking; SIGINT/SIGTERM stop early
    start_load(topology, duration_s, rate) -> LoadHandle      # background thread: .stop(), .wait()
    python -m migrate.lab.load --lab-dir .lab --duration 30 --rate 50 --out load.json
    migrate lab load --duration 30 --rate 50 [--out FILE]

Modules: resolver (Route 53 as a client sees it, health checkers), players (mix and client
behaviour), ledger (acknowledged writes and the check), report (histograms, JSON, table), runner."""

from migrate.lab.load.report import SCHEMA, LoadReport, render
from migrate.lab.load.runner import LoadHandle, run_load, start_load

__all__ = ["SCHEMA", "LoadHandle", "LoadReport", "render", "run_load", "start_load", "write_report"]


def write_report(report: LoadReport, path) -> None:
    """Write the JSON report atomically (a reader never sees half a file)."""
    import json
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
    os.replace(tmp, path)
