"""Benchmark: the forward stream's share of an AWS cutover's write stall, through an emulated link.

    python -m bench.forward_catchup --trials 20 --rate 200 --out bench/results/forward-catchup.json

On Aurora the region's copy is detached ahead of the fence and kept current by the forward stream
(migrate/providers/home_writer_sql.py, runbooks/cutover.md "On AWS"). At the fence the home's writes wait
until the copy confirms the origin's position: this measures that wait on real PostgreSQL 15. The origin has
wal_level = logical, and its standby, promoted after the forward slot is made, stands for the detached copy.
The copy's subscription reaches the origin through a lab WAN link with Tokyo ↔ us-east-1's round trip
(migrate/lab/topology.py). The tool's own connection is local to the origin, as it would be run in
us-east-1. Players write at RATE per second across the three homes all along.

Each trial fences Tokyo's home at the origin, runs the barrier, reads the marker LSN, polls the forward
slot's confirmed position every 5 ms until it reaches the marker, then does the promote's copy side as the
AWS adapter does (a new connection across the link, the recovery check, one batch: the overlap's end, the
id sequences, the hand-over), then puts both back (the copy fenced first, then the origin unfenced). Trials alternate the
subscription's synchronous_commit between on (what the adapter sets) and off (PostgreSQL's default for a
subscription); the ratio of the two, from one run, shows why it is on. The floor is one round trip of the
link: the copy must receive the marker's WAL and send its confirmation back."""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from app.db import upgrade
from bench.labkit import percentile
from migrate.lab.machine import describe_machine
from migrate.lab.pg import PgCluster, primary_and_standby, run_pg
from migrate.lab.topology import rtt_ms
from migrate.lab.wan_proxy import WanProxyThread
from migrate.lab.wan_spec import LinkSpec
from migrate.names import REGIONS
from migrate.providers import home_writer_sql as sql
from migrate.providers.home_fence import set_fenced

HOME, ORIGIN_REGION = "ap-northeast-1", "us-east-1"
POLL_S = 0.005
SETTLE_S = 1.5  # after a change of the subscription's settings: its apply worker restarts and catches up


class Players:
    """Coins bumped for random players of every home at `rate` per second, in a thread; a fenced home's
    write is refused (and counted), as the app's would be."""

    def __init__(self, dsn: str, players: int, rate: float) -> None:
        self.dsn, self.players, self.rate = dsn, players, rate
        self.done = self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Players:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        rng, gap = random.Random(1), 1.0 / self.rate
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    conn.execute("UPDATE players SET coins = coins + 1, updated_at = now() WHERE id = %s",
                                 (rng.randint(1, self.players),))
                    self.done += 1
                except psycopg.errors.ReadOnlySqlTransaction:
                    self.refused += 1
                next_at += gap
                time.sleep(max(0.0, next_at - time.monotonic()))


def _seed(players: int):
    def prepare(origin: PgCluster) -> None:
        with psycopg.connect(origin.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE game")
        upgrade(origin.dsn("game"), "expand@head")
        with psycopg.connect(origin.dsn("game"), autocommit=True) as conn:
            conn.execute("INSERT INTO players (id, handle, home_region, level, xp, coins) SELECT g, 'player' || g, "
                         "(%s::text[])[1 + g %% 3], 1, 0, 0 FROM generate_series(1, %s) g", (list(REGIONS), players))
    return prepare


def _trial(origin: str, copy: str, copy_across: str) -> dict[str, float]:
    """One fence of the home; the copy is reached from here across the link (`copy_across`), as the tool in
    us-east-1 reaches Tokyo's writer, on a new connection as the adapter's promote opens one."""
    with psycopg.connect(origin, autocommit=True) as conn:
        started = time.monotonic()
        set_fenced(conn, HOME, True)
        sql.barrier(conn, "bench", "origin: barrier")
        marker = sql.current_lsn(conn)
        marked = time.monotonic()
        while not sql.forward_confirmed(conn, HOME, marker):
            time.sleep(POLL_S)
        confirmed = time.monotonic()
        with psycopg.connect(copy_across, autocommit=True) as far:  # the promote's copy side, as the adapter runs it
            sql.in_recovery(far)
            sql.take_home_from_stream(conn, far, HOME)
        handed_over = time.monotonic()
        with psycopg.connect(copy, autocommit=True) as near:  # back as it was, the copy first: one writer at a time
            set_fenced(near, HOME, True)
        set_fenced(conn, HOME, False)
    return {"fence_to_confirmed_s": round(confirmed - started, 4),
            "marker_to_confirmed_s": round(confirmed - marked, 4),
            "fence_to_handed_over_s": round(handed_over - started, 4)}


def run(trials: int, rate: float, players: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="migrate-bench-forward-"))
    root.chmod(0o755)  # the postgres user runs the servers inside it
    link_rtt = rtt_ms(HOME, ORIGIN_REGION)
    try:
        with primary_and_standby(root, {"wal_level": "logical"}, _seed(players)) as (origin_pg, copy_pg):
            origin, copy = origin_pg.dsn("game"), copy_pg.dsn("game")
            link = LinkSpec(name=f"{HOME}->{ORIGIN_REGION}:pg", listen_port=0, target_host="127.0.0.1",
                            target_port=origin_pg.port, rtt_ms=link_rtt)
            back = LinkSpec(name=f"{ORIGIN_REGION}->{HOME}:pg", listen_port=0, target_host="127.0.0.1",
                            target_port=copy_pg.port, rtt_ms=link_rtt)
            with WanProxyThread([link, back]) as wan, Players(origin, players, rate) as load:
                with psycopg.connect(origin, autocommit=True) as conn:
                    sql.prepare_forward(conn, HOME)
                time.sleep(SETTLE_S)  # writes between the slot and the detach: the overlap the copy replays
                run_pg(["pg_ctl", "promote", "-w", "-D", str(copy_pg.datadir)], timeout=60)
                with psycopg.connect(copy, autocommit=True) as conn:
                    for home in REGIONS:
                        set_fenced(conn, home, True)
                    sql.subscribe_forward(conn, HOME, f"host=127.0.0.1 port={wan.port(link.name)} dbname=game "
                                                      f"user=postgres")
                time.sleep(SETTLE_S)
                samples: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
                for number in range(trials * 2):
                    mode = "on" if number % 2 == 0 else "off"
                    with psycopg.connect(copy, autocommit=True) as conn:
                        conn.execute(f"ALTER SUBSCRIPTION {sql.forward_name(HOME)} SET (synchronous_commit = {mode})")
                    time.sleep(SETTLE_S)
                    across = f"host=127.0.0.1 port={wan.port(back.name)} dbname=game user=postgres"
                    samples[mode].append(_trial(origin, copy, across))
                writes, refused = load.done, load.refused
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def summary(values: list[dict[str, float]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("fence_to_confirmed_s", "marker_to_confirmed_s", "fence_to_handed_over_s"):
            series = [v[key] for v in values]
            out[key] = {"p50": percentile(series, 50), "p99": percentile(series, 99), "max": max(series)}
        return out
    on, off = summary(samples["on"]), summary(samples["off"])
    return {
        "command": "python -m bench.forward_catchup " + shlex.join(sys.argv[1:]),
        "machine": describe_machine(),
        "link": {"between": [HOME, ORIGIN_REGION], "rtt_ms": link_rtt},
        "players": players, "writes_per_s": rate, "trials_per_mode": trials,
        "writes": writes, "writes_refused_while_fenced": refused,
        "floor_s": round(link_rtt / 1000, 3),
        "synchronous_commit_on": on, "synchronous_commit_off": off,
        "ratio_off_to_on_p50": round(off["fence_to_confirmed_s"]["p50"] / on["fence_to_confirmed_s"]["p50"], 2),
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.forward_catchup", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="fences per synchronous_commit mode")
    parser.add_argument("--rate", type=float, default=200.0, help="players' writes per second at the origin")
    parser.add_argument("--players", type=int, default=30_000, help="players seeded at the origin")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.rate <= 0 or args.players < 3:
        parser.error("--trials ≥ 1, --rate > 0 and --players ≥ 3")
    result = run(args.trials, args.rate, args.players)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    on, off = result["synchronous_commit_on"], result["synchronous_commit_off"]
    print(f"forward stream through a {result['link']['rtt_ms']:g} ms link, {args.rate:g} writes/s: fence → confirmed "
          f"p50 {on['fence_to_confirmed_s']['p50']} s, p99 {on['fence_to_confirmed_s']['p99']} s with "
          f"synchronous_commit on; p50 {off['fence_to_confirmed_s']['p50']} s off (×{result['ratio_off_to_on_p50']}); "
          f"floor {result['floor_s']} s; fence → handed over (a new connection across the link) p50 "
          f"{on['fence_to_handed_over_s']['p50']} s, p99 {on['fence_to_handed_over_s']['p99']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
