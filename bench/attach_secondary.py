"""Benchmark: attach a secondary holding N players over the emulated 145 ms Pacific link, then
measure replication lag under a steady write load.

    python -m bench.attach_secondary --players 1000000 --out bench/results/attach-secondary.json

Lag is measured end to end, the way a player would feel it: a writer inserts a numbered heartbeat
row on the us-east-1 primary every few ms; a reader polls the Tokyo standby and records, per row,
the time from commit to visibility (one clock: both run on this machine). HdrHistogram gives
p50/p95/p99. The byte lag reported by pg_stat_replication is sampled alongside."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from hdrh.histogram import HdrHistogram

from migrate.lab.machine import describe_machine

REGION = "ap-northeast-1"


def _step_timings(events) -> dict[str, float]:
    started, took = {}, {}
    for e in events:
        if e.kind == "step_started":
            started[e.step] = e.at
        elif e.kind == "step_succeeded" and e.step in started:
            took[e.step] = round((e.at - started[e.step]).total_seconds(), 3)
    return took


def measure_lag(writer_dsn: str, standby_dsn: str, seconds: float, rate: float) -> dict:
    """Commit→visible-on-standby latency of heartbeat rows written at `rate` per second."""
    with psycopg.connect(writer_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS bench_heartbeat (seq bigint PRIMARY KEY, note text)")
        c.execute("TRUNCATE bench_heartbeat")
    deadline = time.monotonic() + 30
    with psycopg.connect(standby_dsn, autocommit=True) as c:  # the DDL must reach the replica first
        while c.execute("SELECT to_regclass('bench_heartbeat')").fetchone()[0] is None:
            if time.monotonic() > deadline:
                raise RuntimeError("bench_heartbeat never appeared on the replica")
            time.sleep(0.05)
    committed: dict[int, float] = {}
    hist = HdrHistogram(1, 60_000_000, 3)  # microseconds
    stop = threading.Event()
    lock = threading.Lock()

    def writer() -> None:
        interval = 1.0 / rate
        with psycopg.connect(writer_dsn, autocommit=True) as c:
            seq, next_at = 0, time.monotonic()
            while not stop.is_set():
                seq += 1
                c.execute("INSERT INTO bench_heartbeat VALUES (%s, repeat('x', 200))", (seq,))
                c.execute("UPDATE players SET coins = coins + 1, updated_at = now() WHERE id = %s",
                          (seq % 1000 + 1,))
                with lock:
                    committed[seq] = time.monotonic()
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

    seen = 0
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    with psycopg.connect(standby_dsn, autocommit=True) as c:
        while time.monotonic() < deadline:
            row = c.execute("SELECT coalesce(max(seq), 0) FROM bench_heartbeat").fetchone()
            now = time.monotonic()
            with lock:
                for s in range(seen + 1, row[0] + 1):
                    if s in committed:
                        hist.record_value(max(1, int((now - committed.pop(s)) * 1_000_000)))
            seen = max(seen, row[0])
            time.sleep(0.002)
    stop.set()
    thread.join()
    ms = lambda q: round(hist.get_value_at_percentile(q) / 1000, 1)
    return {"samples": hist.get_total_count(), "write_rate_per_s": rate, "duration_s": seconds,
            "p50_ms": ms(50), "p95_ms": ms(95), "p99_ms": ms(99), "max_ms": round(hist.get_max_value() / 1000, 1),
            "poll_interval_ms": 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--lag-seconds", type=float, default=30.0)
    parser.add_argument("--write-rate", type=float, default=200.0, help="heartbeat commits per second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/attach-secondary.json"))
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="migrate-bench-"))
    workdir.chmod(0o755)
    os.environ["MIGRATE_LAB_DIR"] = str(workdir / "lab")
    from migrate.engine.services import open_session, run_phase
    from migrate.lab.topology import LabTopology
    from migrate.lab.world import lab_down, lab_up
    from migrate.providers.factory import route_lab_api

    try:
        t0 = time.monotonic()
        lab_up(workdir / "lab", args.players, route_api=route_lab_api)
        seed_s = time.monotonic() - t0
        session = open_session(args.spec, "lab", state_url=str(workdir / "state.db"))
        db_bytes = session.providers.global_database.primary_facts().database_bytes
        t1 = time.monotonic()
        outcome = run_phase(session, "attach-secondary", REGION)
        attach_s = time.monotonic() - t1
        steps = _step_timings(session.store.events("lab"))
        topo = LabTopology.load(workdir / "lab")
        lag = measure_lag(topo.primary().dsn(), topo.pg(REGION).dsn(), args.lag_seconds, args.write_rate)
        sample = session.providers.global_database.replication_lag(REGION)
        session.close()
        result = {
            "benchmark": "attach-secondary",
            "command": "python -m bench.attach_secondary " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
            "machine": describe_machine(),
            "players": args.players,
            "database_bytes": db_bytes,
            "link": {"pair": f"us-east-1<->{REGION}", "rtt_ms": 145, "jitter": "±2.5 % of RTT"},
            "lab_up_and_seed_s": round(seed_s, 2),
            "attach": {"status": outcome.status, "total_s": round(attach_s, 2), "steps_s": steps},
            "replication_lag_under_load": lag,
            "byte_lag_after_load": sample.lag_bytes,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0
    finally:
        lab_down(workdir / "lab")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
