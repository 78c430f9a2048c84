"""One load run: players at the 60/25/15 mix, open loop at a target rate, against the lab.

Open loop: arrivals are a seeded Poisson process at `rate` per second, independent of how fast the
game answers (a slow region does not slow the offered load down, as with real players). Each arrival
picks a geography by the mix and an idle player of it; when `max_in_flight` requests are already
running (or every player of that geography is busy) the arrival is dropped and counted, so a
saturated generator shows in the report instead of silently lowering the rate.

One asyncio event loop does the HTTP; Route 53 reads (boto3) run in a worker thread when the TTL
runs out, and the health checkers probe from their own threads, so neither stalls the players.

Every finished request also goes to the run's HdrHistogram interval logs in the lab folder
(migrate.lab.player_logs), appended from the same loop: the lab's shift-traffic gates judge the
players' own p95 per geography from them while a run plays, instead of estimating it from the apps.

SIGINT / SIGTERM (when run in the main thread) stop the arrivals early; the run still drains,
checks the ledger and returns its report. A second SIGINT aborts."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from migrate.lab.load.ledger import Ledger, redis_scores, writer_profiles
from migrate.lab.load.players import (GEO_MIX, REQUEST_MIX, Network, Player, Session, load_players,
                                split_players)
from migrate.lab.load.report import LoadReport, Metrics
from migrate.lab.load.resolver import HealthCheckers, ResolveError, Resolver, route53_client
from migrate.errors import LabError, UsageError
from migrate.lab.player_logs import INTERVAL_S, IntervalLogWriter
from migrate.lab.topology import GEOGRAPHIES, REGIONS, SOURCE_REGION, LabTopology

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class LoadConfig:
    """Knobs of a run (all recorded in the report's `config`)."""

    duration_s: float
    rate: float  # target player requests (arrivals) per second, all geographies together
    seed: int = 1
    players: int = 120  # players sampled from the seeded table, split 60/25/15
    max_in_flight: int = 200  # requests running at once before arrivals are dropped
    timeout_s: float = 5.0  # per HTTP exchange
    health_interval_s: float = 1.0  # how often the lab's health checkers probe
    follow_wrong_region: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"duration_s": self.duration_s, "rate": self.rate, "seed": self.seed, "players": self.players,
                "max_in_flight": self.max_in_flight, "timeout_s": self.timeout_s,
                "health_interval_s": self.health_interval_s, "follow_wrong_region": self.follow_wrong_region,
                "geography_mix": GEO_MIX, "request_mix": REQUEST_MIX}


def find_writer(topology: LabTopology) -> tuple[str, str]:
    """(region, DSN) of the PostgreSQL that is not in recovery (the writer moves at cutover)."""
    import psycopg

    order = [SOURCE_REGION] + [r for r in REGIONS if r != SOURCE_REGION]
    problems = []
    for region in order:
        if region not in topology.pg_ports:
            continue
        dsn = topology.pg(region).dsn()
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return region, dsn
        except psycopg.Error as exc:
            problems.append(f"{region}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    raise LabError("no writer PostgreSQL answers in the lab", hint="is the lab up? `migrate lab status`",
                   details={"problems": problems})


def home_writer_dsns(topology: LabTopology) -> dict[str, str]:
    """home → DSN of the home writers cutover promoted (running, out of recovery)."""
    import psycopg

    found = {}
    for region, port in topology.home_pg_ports.items():
        cluster = topology.home_pg(region)
        if not (cluster.exists() and cluster.is_running()):
            continue
        try:
            with psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=2) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    found[region] = cluster.dsn()
        except psycopg.Error:
            continue
    return found


def _redis_alive(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class _Signals:
    """SIGINT/SIGTERM → stop early (main thread only; a SIGINT a shell told us to ignore stays ignored)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.reason: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                continue
            self._old[sig] = current
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.stop.is_set() and self.reason == "SIGINT":
            raise KeyboardInterrupt  # the second Ctrl-C: the operator really wants out
        if not self.stop.is_set():
            self.reason = signal.Signals(signum).name
        self.stop.set()

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


async def _drive(cfg: LoadConfig, resolver: Resolver, player: Player, sessions: dict[str, list[Session]],
                 metrics: Metrics, stop: threading.Event, progress: Progress | None) -> dict[str, Any]:
    """The open loop; returns request counts and timings."""
    loop = asyncio.get_running_loop()
    rng = random.Random(f"arrivals:{cfg.seed}")
    geos = [g for g in GEOGRAPHIES if sessions.get(g)]
    weights = [GEO_MIX[g] for g in geos]
    idle = {g: list(sessions[g]) for g in geos}
    in_flight: set[asyncio.Task] = set()
    counts = {"scheduled": 0, "started": 0, "dropped": 0}
    max_lag = 0.0
    done = asyncio.Event()

    async def one(s: Session, action: str) -> None:
        try:
            try:
                region = resolver.resolve(s.geography, s.player_id, refresh=False)
            except ResolveError:
                kind = {"matchmaking": "match_create" if s.ticket_id is None else "match_poll"}.get(action, action)
                metrics.record(s.geography, kind, 0.0, "dns_failure")
                return
            await player.act(s, region, action)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — a client bug shows up in the report, not as a lost task
            kind = {"matchmaking": "match_create" if s.ticket_id is None else "match_poll"}.get(action, action)
            metrics.record(s.geography, kind, 0.0, f"client_bug_{type(exc).__name__}")
        finally:
            idle[s.geography].append(s)

    async def refresher() -> None:
        while not done.is_set():
            if resolver.needs_refresh():
                await asyncio.to_thread(resolver.refresh)
            await asyncio.sleep(0.05)

    async def publisher() -> None:  # the players' interval logs, for the lab's gates
        if metrics.intervals is not None:
            metrics.intervals.publish()  # nothing recorded yet: the first interval starts with the load
        while not done.is_set():
            await asyncio.sleep(INTERVAL_S)
            if metrics.intervals is not None:
                metrics.intervals.publish()

    async def reporter() -> None:
        while not done.is_set():
            await asyncio.sleep(1.0)
            if progress is not None:
                elapsed = loop.time() - t0
                progress({"elapsed_s": elapsed, "duration_s": cfg.duration_s,
                          "finished": metrics.finished(), "failed": metrics.failed(),
                          "in_flight": len(in_flight), "dropped": counts["dropped"],
                          "rate": metrics.finished() / elapsed if elapsed > 0 else 0.0})

    t0 = loop.time()
    end = t0 + cfg.duration_s
    helpers = [asyncio.create_task(refresher()), asyncio.create_task(reporter()), asyncio.create_task(publisher())]
    next_at = t0
    try:
        while not stop.is_set():
            next_at += rng.expovariate(cfg.rate)
            if next_at >= end:
                break
            while not stop.is_set() and (now := loop.time()) < next_at:
                await asyncio.sleep(min(next_at - now, 0.2))
            if stop.is_set():
                break
            max_lag = max(max_lag, loop.time() - next_at)
            counts["scheduled"] += 1
            geo = rng.choices(geos, weights)[0]
            pool = idle[geo]
            if len(in_flight) >= cfg.max_in_flight or not pool:
                counts["dropped"] += 1
                continue
            i = rng.randrange(len(pool))
            pool[i], pool[-1] = pool[-1], pool[i]
            s = pool.pop()
            task = asyncio.create_task(one(s, player.choose()))
            counts["started"] += 1
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        while not stop.is_set() and loop.time() < end:  # the tail of the duration after the last arrival
            await asyncio.sleep(min(end - loop.time(), 0.2))
        load_elapsed = loop.time() - t0
        cut_off = 0
        if in_flight:  # let running requests finish (bounded by the request timeout)
            _, pending = await asyncio.wait(set(in_flight), timeout=cfg.timeout_s * 2 + 1)
            cut_off = len(pending)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
    finally:
        done.set()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await player.net.close()
    return {**counts, "in_flight_at_end": cut_off, "load_elapsed_s": load_elapsed,
            "max_start_lag_ms": round(max_lag * 1000, 3)}


def auto_players(rate: float) -> int:
    """Players for a rate: each acts about every 4 s (a game client's pace), at least 30, at most 5,000,
    so a player writes, reads back, scores several times in a run (the ledger and read-your-writes see
    sequences, not single writes)."""
    return max(30, min(5000, round(rate * 4)))


def run_load(topology: LabTopology, duration_s: float, rate: float, *, seed: int = 1, players: int | None = None,
             max_in_flight: int = 200, timeout_s: float = 5.0, health_interval_s: float = 1.0,
             follow_wrong_region: bool = True, stop: threading.Event | None = None,
             progress: Progress | None = None, on_start: Progress | None = None, command: str | None = None,
             notes: list[str] | None = None) -> LoadReport:
    """Play players against the lab for `duration_s` seconds at `rate` requests/s; check the ledger.

    A "request" is one player action from the mix; the logins it needs first and the retries a client
    makes (401, wrong_region) are extra HTTP requests, reported as `http_rate`.

    `stop` (or SIGINT/SIGTERM, handled from the first line when called in the main thread) ends the
    arrivals early; the report is still built and the ledger still checked. `on_start` is called once
    when the first arrival is due (players chosen, DNS read); `progress` about once a second after."""
    if duration_s <= 0 or rate <= 0:
        raise UsageError(f"duration and rate must be > 0 (got {duration_s:g} s, {rate:g} req/s)")
    players = auto_players(rate) if players is None else players
    if players < len(GEOGRAPHIES) or max_in_flight < 1 or timeout_s <= 0:
        raise UsageError("players ≥ 3, max_in_flight ≥ 1 and timeout > 0 are required")
    cfg = LoadConfig(duration_s, rate, seed, players, max_in_flight, timeout_s, health_interval_s,
                     follow_wrong_region)
    missing = [k for k in (f"{g}->{r}:api" for g in GEOGRAPHIES for r in REGIONS) if k not in topology.wan_ports]
    if missing or not topology.moto_port:
        raise LabError("this lab has no player links or no moto server",
                       hint="rebuild it: `migrate lab down && migrate lab up`", details={"missing_links": missing})
    stop = stop or threading.Event()
    with _Signals(stop) as signals:
        report = _run(topology, cfg, stop, progress, on_start, list(notes or []))
    report.stopped_early = (signals.reason or "stop requested") if stop.is_set() else None
    report.command = command or f"run_load(duration_s={duration_s:g}, rate={rate:g}, seed={seed})"
    return report


def _run(topology: LabTopology, cfg: LoadConfig, stop: threading.Event, progress: Progress | None,
         on_start: Progress | None, notes: list[str]) -> LoadReport:
    started_at = datetime.now(timezone.utc)
    run_id = uuid.uuid4().hex[:8]
    writer_region, writer_dsn = find_writer(topology)
    ids = load_players(writer_dsn, split_players(cfg.players), cfg.seed)
    empty = [g for g, found in ids.items() if not found]
    if empty:
        notes.append(f"no seeded players homed for {', '.join(empty)}: those geographies send nothing")
    if not any(ids.values()):
        raise LabError("the lab's players table has no players to play", hint="`migrate lab up --players N`")
    sessions = {g: [Session(pid, g) for pid in found] for g, found in ids.items()}

    checkers = HealthCheckers(lambda g, r: ("127.0.0.1", topology.player_port(g, r)),
                              interval_s=cfg.health_interval_s, timeout_s=min(2.0, cfg.timeout_s))
    resolver = Resolver(route53_client(topology.moto_endpoint), checkers, seed=cfg.seed)
    ledger = Ledger(run_id)
    intervals = IntervalLogWriter(topology.lab_dir, f"{os.getpid()}-{run_id}", GEOGRAPHIES)
    metrics = Metrics(intervals=intervals)
    net = Network(lambda g, r: topology.player_port(g, r), timeout_s=cfg.timeout_s,
                  max_connections=cfg.max_in_flight)
    player = Player(net, metrics, ledger, random.Random(f"players:{cfg.seed}"), ids,
                    follow_wrong_region=cfg.follow_wrong_region)
    try:
        try:
            resolver.refresh(force=True)
        except ResolveError as exc:
            raise LabError(f"cannot resolve the API name: {exc}",
                           hint="is moto up with the hosted zone? `migrate lab status`") from None
        checkers.start()
        if on_start is not None:
            on_start({"run_id": run_id, "players": {g: len(v) for g, v in ids.items()},
                      "records": [r.to_json() for r in resolver.records]})
        t0 = time.monotonic()
        counts = asyncio.run(_drive(cfg, resolver, player, sessions, metrics, stop, progress))
        elapsed = time.monotonic() - t0
        checkers.close()
        intervals.close()  # before the ledger check: the last interval reaches the gates as soon as it can
        ledger_result = _check_ledger(topology, ledger, notes)
    finally:
        checkers.close()
        intervals.close()
    if intervals.error:
        notes.append(f"players' interval logs stopped (the lab's gates estimate p95 instead): {intervals.error}")
    finished = metrics.finished()
    load_elapsed = counts.pop("load_elapsed_s")
    return LoadReport(
        command="", machine=_machine(),
        config={**cfg.to_json(), "lab_dir": str(topology.lab_dir), "moto_endpoint": topology.moto_endpoint,
                "run_id": run_id, "writer_region_at_start": writer_region,
                "interval_logs": str(intervals.path("<geography>")),
                "players_per_geography": {g: len(v) for g, v in ids.items()}},
        started_at=started_at.isoformat(timespec="seconds"),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        elapsed_s=round(elapsed, 3), stopped_early=None,
        requests={**counts, "finished": finished, "failed": metrics.failed()},
        achieved_rate=round(counts["started"] / load_elapsed, 3) if load_elapsed > 0 else 0.0,
        http_rate=round(finished / load_elapsed, 3) if load_elapsed > 0 else 0.0,
        per_geography=metrics.per_geography(), errors_by_kind=dict(metrics.errors_by_kind),
        errors_by_class=dict(metrics.errors_by_class), recovered=dict(metrics.recovered),
        routing={g: dict(c) for g, c in metrics.routed.items()},
        read_your_writes={"checked": metrics.ryw_checked, "stale": len(metrics.ryw_stale),
                          "examples": metrics.ryw_stale[:5]},
        ledger=ledger_result,
        resolver={"record_reads": resolver.stats.record_reads, "read_failures": resolver.stats.read_failures,
                  "last_read_error": resolver.stats.last_read_error,
                  "records": [r.to_json() for r in resolver.records],
                  "health_checks": checkers.snapshot(), "answers": resolver.stats.answers,
                  "notes": resolver.stats.notes},
        notes=notes)


def _check_ledger(topology: LabTopology, ledger: Ledger, notes: list[str]) -> dict[str, Any]:
    try:
        writer_region, dsn = find_writer(topology)
        profiles = writer_profiles(dsn, home_writers=home_writer_dsns(topology))
    except LabError as exc:
        notes.append(f"ledger: {exc.one_line()}; profile writes counted as unknown")
        profiles = None
    acked_regions = {s.region for s in ledger.scores.values() if s.region}
    urls = {r: topology.redis_url(r) for r in REGIONS
            if r in topology.redis_ports and (r in acked_regions or _redis_alive(topology.redis_url(r)))}
    scores = redis_scores(urls) if urls else None
    return ledger.check(profiles, scores)


def _machine() -> dict[str, Any]:
    try:
        from migrate.lab.machine import describe_machine

        return describe_machine()
    except Exception:  # noqa: BLE001 — a description is nice to have, never a reason to fail
        return {}


class LoadHandle:
    """A run started in a background thread (for phases and tests that need traffic meanwhile)."""

    def __init__(self, target: Callable[[threading.Event], LoadReport]) -> None:
        self._stop = threading.Event()
        self._report: LoadReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), name="load", daemon=True)
        self._thread.start()

    def _run(self, target) -> None:
        try:
            self._report = target(self._stop)
        except BaseException as exc:  # noqa: BLE001 — handed to the caller of wait()
            self._error = exc

    def stop(self) -> None:
        """End the arrivals now; wait() still returns the full report (ledger checked)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> LoadReport:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the load run is still going")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report


def start_load(topology: LabTopology, duration_s: float, rate: float, **kwargs: Any) -> LoadHandle:
    """run_load in a background thread; returns at once. Signals are left to the caller's thread."""
    return LoadHandle(lambda stop: run_load(topology, duration_s, rate, stop=stop, **kwargs))
