"""What the lab benchmarks share: a throwaway lab of N players in its own folder, `migrate` run as an
operator runs it, players in the background while a phase runs, and what the players saw inside a
window (their own HdrHistogram interval logs, migrate/lab/player_logs.py) and the journal's step times."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchLab:
    lab_dir: Path
    state: str  # the journal (sqlite path)
    spec: Path


@contextlib.contextmanager
def bench_lab(players: int, spec: Path) -> Iterator[BenchLab]:
    """A lab of `players` in a fresh folder, with MIGRATE_LAB_DIR / _STATE / _SPEC pointing at it for
    every `migrate` this process starts; removed, every process with it, at the end."""
    from migrate.lab import world
    from migrate.providers.factory import route_lab_api

    workdir = Path(tempfile.mkdtemp(prefix="migrate-bench-"))
    workdir.chmod(0o755)
    lab = BenchLab(workdir / "lab", str(workdir / "state.db"), spec.resolve())
    os.environ.update({"MIGRATE_LAB_DIR": str(lab.lab_dir), "MIGRATE_STATE": lab.state,
                       "MIGRATE_SPEC": str(lab.spec)})
    try:
        world.lab_up(lab.lab_dir, players, route_api=route_lab_api)
        yield lab
    finally:
        world.lab_down(lab.lab_dir)


def migrate(*args: str) -> None:
    """`migrate ARGS` as an operator runs it (its own process); raises with its stderr when it fails."""
    proc = subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"migrate {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")


@contextlib.contextmanager
def players(topology, rate: float, seed: int) -> Iterator[dict[str, Any]]:
    """Players at `rate` (60/25/15 mix, with the ledger) for the block; the dict gets their report
    ("report") once they stopped and the ledger was checked."""
    from migrate.lab.load.runner import start_load

    started, out = threading.Event(), {}
    load = start_load(topology, duration_s=3600, rate=rate, seed=seed, on_start=lambda _info: started.set())
    if not started.wait(120):
        load.stop()
        raise RuntimeError("the players never started")
    try:
        yield out
    finally:
        load.stop()
        out["report"] = load.wait(timeout=600).to_json()


def journal_events(lab: BenchLab, phase: str | None = None) -> list[Any]:
    """The journal's events (of `phase` only when named), oldest first."""
    from migrate.engine import services

    session = services.open_session(lab.spec, "lab", state_url=lab.state)
    try:
        return [e for e in services.history(session, 0) if phase is None or e.phase == phase]
    finally:
        session.close()


def step_windows(lab: BenchLab, phase: str) -> list[dict[str, Any]]:
    """(step, epoch start, epoch end) of every step the phase applied, from the journal."""
    started, out = {}, []
    for e in journal_events(lab, phase):
        if e.kind == "step_started":
            started[e.step] = e.at.timestamp()
        elif e.kind == "step_succeeded" and e.step in started:
            out.append({"step": e.step, "start": started[e.step], "end": e.at.timestamp()})
    return out


def latency_in(lab_dir: Path, start: float, end: float) -> dict[str, Any]:
    """Per geography: the slowest successful request (ms), p95, p99, requests and failures the players logged
    in the intervals that overlap [start, end] (one interval earlier too: a step shorter than an interval
    falls inside one that started before it)."""
    from migrate.lab.player_logs import INTERVAL_S, read_range
    from migrate.names import GEOGRAPHIES

    out = {}
    for geography in GEOGRAPHIES:
        seen = read_range(lab_dir, geography, start - INTERVAL_S, end)
        out[geography] = {"requests": seen.samples, "failed": seen.errors,
                          "max_ms": round(seen.histogram.get_max_value() / 1000, 1) if seen.samples else None,
                          **{f"p{q}_ms": round(seen.histogram.get_value_at_percentile(q) / 1000, 1)
                             if seen.samples else None for q in (95, 99)}}
    return out


def settle(seconds: float) -> None:
    """Let the players' intervals complete past a window's end (they are written every INTERVAL_S)."""
    time.sleep(seconds)


@contextlib.contextmanager
def three_region_redis(spec: Path) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """A small lab whose PostgreSQL holds the players and their homes, and a fresh Redis for each region
    (the lab's us-east-1 app stopped: the caller runs the regions' apps, migrate/lab/match_world.py);
    yields (topology, writer DSN, session keys)."""
    import json

    import redis

    from migrate.lab import world
    from migrate.lab.topology import LabTopology
    from migrate.names import REGIONS, SOURCE_REGION

    with bench_lab(1000, spec) as lab:
        t = LabTopology.load(lab.lab_dir)
        world.stop_region_app(t, SOURCE_REGION)
        for region in REGIONS:
            world.start_region_redis(t, region)
            redis.Redis.from_url(t.redis_url(region)).flushdb()
        yield t, world.region_app_env(t, SOURCE_REGION)["WRITER_DSN"], json.loads(t.session_keys_file.read_text())


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100) of a few samples (too few for a histogram to add anything)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]
