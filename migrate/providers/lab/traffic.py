"""TrafficMetrics in the lab: what the gates of shift-traffic measure, read from the lab's processes.

- Requests and errors per region: each region's app /metrics (Prometheus text, parsed with
  prometheus_client's parser), as deltas between the window's opening and now. Player routes only:
  /health and /metrics are what probes, health checkers and this adapter call. An error is a 5xx
  (4xx are the client's: 409 wrong_region is a redirect the client follows, 404 a finished ticket).
  A counter that went down means the app restarted: its current value is the delta (as Prometheus'
  rate() does), and the window says so in its notes.
- Reachability: probes GET /health through each player geography's WAN link to each region that
  serves that geography now, about once a second, on kept-alive connections as players use them.
  Two failures in a row make "<region> from <geography>" unreachable for the rest of the window.
- p95 per geography: the apps cannot tell which geography a request came from, so the players say:
  the load generator appends each geography's latency histogram every half second to HdrHistogram
  interval logs in the lab folder (migrate.lab.player_logs), and the window adds up the intervals that
  start inside it, every load run together. Samples = the players' successful requests; their failed
  ones are told in the notes only (the gate's error rate stays the apps' 5xx, as in AWS). Intervals
  that start before the window are left out even when they end inside it: they hold the previous
  weight's traffic.
- When no player logged a request of a geography in the window (no load running, or the window is
  shorter than an interval), its p95 falls back to an estimate, and says so in its `source` and the
  notes: the region's server-time histogram shifted by the measured
  round trip of the geography's link to it (the median of the probes; the topology's figure until a
  probe answered), mixed over the regions by the share of that geography's requests they serve —
  each geography has its own Route 53 pool: its weights split it, or under latency records it goes to
  its nearest serving region. A 409
  (wrong_region) is a hand-off, not an answer: the client follows it to the region serving the
  player's home (the lab's home routing), so it counts once, with both round trips, and the followed
  leg is taken out of the serving region's count. Samples = the requests the estimate is over.
- Replication lag: the lab global database's lag of the target's secondary, sampled about once a
  second; the window reports the largest sample.

Nothing here blocks a bake for long: probes and lag samples run on a small thread pool, `sample()`
only starts and harvests them."""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from migrate.errors import MigrateError
from migrate.lab.player_logs import read_range
from migrate.lab.topology import GEO_NEAREST, LabTopology, player_rtt_ms
from migrate.lab.world import HOME_ROUTING
from migrate.providers.traffic import (
    GeographyLatency,
    Measurements,
    RegionErrors,
    WindowPlan,
)

IGNORED_ROUTES = frozenset({"/health", "/metrics"})
REQUESTS = "app_http_requests"
LATENCY = "app_http_request_duration_seconds"
PLAYERS_SOURCE = "players (HdrHistogram interval logs of the load generator)"
SOURCE_LABEL = ("estimate (no player histograms in the window): app server-time histograms + measured link RTT, "
                "mixed by routing")


Buckets = tuple[tuple[float, float], ...]  # (upper bound in s, cumulative count), sorted; +inf last
REDIRECT_STATUS = "409"  # wrong_region: the client follows it to the region serving the player's home


def _minus(now: Buckets, before: Buckets) -> Buckets:
    earlier = dict(before)
    return tuple((le, max(0.0, count - earlier.get(le, 0.0))) for le, count in now)


@dataclass(frozen=True)
class Scrape:
    """Cumulative counters of one app at one moment (player routes only)."""

    requests: int  # every answer, hand-offs included
    errors: int  # 5xx
    buckets: Buckets  # server time of the requests it answered itself (not 409 hand-offs)
    redirects: int = 0  # 409 wrong_region hand-offs
    redirect_buckets: Buckets = ()  # their server time

    @property
    def served(self) -> int:
        return self.requests - self.redirects

    def minus(self, earlier: Scrape | None) -> tuple[Scrape, bool]:
        """The delta since `earlier`, and whether the counters were reset (the app restarted) meanwhile."""
        if earlier is None:
            return self, False
        if self.requests < earlier.requests:
            return self, True
        return Scrape(self.requests - earlier.requests, max(0, self.errors - earlier.errors),
                      _minus(self.buckets, earlier.buckets), max(0, self.redirects - earlier.redirects),
                      _minus(self.redirect_buckets, earlier.redirect_buckets)), False


def parse_metrics(text: str) -> Scrape:
    """Requests, 5xx, 409 hand-offs and the server-time histograms of player routes from /metrics text."""
    requests = errors = redirects = 0
    served: dict[float, float] = {}
    handed: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == REQUESTS:
            for sample in family.samples:
                if not sample.name.endswith("_total") or sample.labels.get("route") in IGNORED_ROUTES:
                    continue
                count, status = int(sample.value), sample.labels.get("status", "")
                requests += count
                errors += count if status.startswith("5") else 0
                redirects += count if status == REDIRECT_STATUS else 0
        elif family.name == LATENCY:
            for sample in family.samples:
                if not sample.name.endswith("_bucket") or sample.labels.get("route") in IGNORED_ROUTES:
                    continue
                into = handed if sample.labels.get("status") == REDIRECT_STATUS else served
                le = float(sample.labels["le"])
                into[le] = into.get(le, 0.0) + float(sample.value)
    return Scrape(requests, errors, tuple(sorted(served.items())), redirects, tuple(sorted(handed.items())))


def _cdf(buckets: tuple[tuple[float, float], ...], x: float) -> float:
    """P(server time ≤ x) from cumulative buckets, linear within a bucket (as histogram_quantile assumes)."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0 or x < 0:
        return 0.0
    lower, below = 0.0, 0.0
    for le, cumulative in buckets:
        if math.isinf(le):
            return 1.0 if x >= lower else below / total
        if x < le:
            span = le - lower
            inside = (x - lower) / span if span > 0 else 1.0
            return (below + (cumulative - below) * max(0.0, inside)) / total
        lower, below = le, cumulative
    return 1.0


def mixture_quantile(parts: list[tuple[float, tuple[tuple[float, float], ...], float]], q: float) -> float | None:
    """The q-quantile (seconds) of a mixture of shifted histograms: parts = (weight, buckets, shift in s)."""
    parts = [(w, b, s) for w, b, s in parts if w > 0 and b and b[-1][1] > 0]
    if not parts:
        return None
    total = sum(w for w, _, _ in parts)
    finite = [le for _, b, _ in parts for le, _ in b if not math.isinf(le)]
    hi = (max(finite) if finite else 1.0) + max(s for _, _, s in parts) + 1.0
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(w * _cdf(b, mid - s) for w, b, s in parts) / total >= q:
            hi = mid
        else:
            lo = mid
    return hi


def server_p95_ms(buckets: tuple[tuple[float, float], ...]) -> float | None:
    value = mixture_quantile([(1.0, buckets, 0.0)], 0.95)
    return None if value is None else value * 1000


@dataclass
class _Link:
    """Probe state of one (geography, region) link in a window."""

    ok: int = 0
    failed: int = 0
    streak: int = 0  # consecutive failures
    rtts_ms: list[float] = field(default_factory=list)
    last_error: str | None = None
    unreachable: str | None = None  # set (sticky) after `failures_to_unreachable` failures in a row


class LabMetricsWindow:
    """One gate window in the lab (see the module docstring)."""

    def __init__(self, metrics: LabTrafficMetrics, plan: WindowPlan) -> None:
        self.m, self.plan = metrics, plan
        self.opened = time.monotonic()
        self.opened_at = time.time()  # wall clock: the players' interval logs are stamped with it
        self.baseline: dict[str, Scrape | None] = {r: metrics.scrape(r) for r in plan.regions}
        self.links: dict[tuple[str, str], _Link] = {pair: _Link() for pair in self._pairs()}
        self.lags: list[float] = []
        self.lag_states: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=max(2, len(self.links) + 1), thread_name_prefix="gate")
        self._client = httpx.Client(timeout=metrics.probe_timeout)
        self._probes: dict[tuple[str, str], Future] = {}
        self._lag: Future | None = None
        self._next_probe = 0.0
        self._next_lag = 0.0
        self._lock = threading.Lock()
        self._closed = False

    def _route(self, geography: str) -> dict[str, float]:
        """region → share of `geography`'s players it serves now (by the routing of that geography's pool)."""
        routing = self.plan.route_of(geography)
        serving = [r for r in routing.serving() if r in self.plan.regions]
        if not serving:
            return {}
        if routing.mode == "latency":
            best = min(serving, key=lambda r: (self.m.rtt_ms(geography, r), r))
            return {best: 1.0}
        shares = {r: routing.share(r) for r in serving}
        total = sum(shares.values())
        return {r: s / total for r, s in shares.items() if s > 0} if total > 0 else {r: 1 / len(serving) for r in serving}

    def _pairs(self) -> list[tuple[str, str]]:
        return [(g, r) for g in self.plan.geographies for r in self._route(g)]

    # --- sampling ---------------------------------------------------------------------------
    def sample(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            self._harvest()
            if now >= self._next_probe and not self._probes:
                self._next_probe = now + self.m.probe_every
                for pair in self.links:
                    self._probes[pair] = self._pool.submit(self._probe, *pair)
            if self.plan.lag_region and self.m.global_database is not None and self._lag is None \
                    and now >= self._next_lag:
                self._next_lag = now + self.m.lag_every
                self._lag = self._pool.submit(self.m.global_database.replication_lag, self.plan.lag_region)

    def _probe(self, geography: str, region: str) -> tuple[bool, float | None, str | None]:
        url = f"{self.m.topology.player_url(geography, region)}/health"
        start = time.perf_counter()
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            return False, None, type(exc).__name__
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code >= 500:
            return False, None, f"HTTP {response.status_code}"
        return True, elapsed, None

    def _harvest(self) -> None:
        for pair, future in list(self._probes.items()):
            if not future.done():
                continue
            del self._probes[pair]
            try:
                ok, rtt, error = future.result()
            except Exception as exc:  # noqa: BLE001 — a probe bug counts as a failed probe, never crashes the bake
                ok, rtt, error = False, None, f"{type(exc).__name__}"
            link = self.links[pair]
            if ok:
                link.ok, link.streak = link.ok + 1, 0
                link.rtts_ms.append(rtt)
            else:
                link.failed, link.streak, link.last_error = link.failed + 1, link.streak + 1, error
                if link.streak >= self.m.failures_to_unreachable and link.unreachable is None:
                    link.unreachable = f"{link.streak} probes of /health failed in a row ({error})"
        if self._lag is not None and self._lag.done():
            future, self._lag = self._lag, None
            try:
                lag = future.result()
            except MigrateError as exc:
                self.lag_states.append(f"error: {exc.one_line()}")
                return
            except Exception as exc:  # noqa: BLE001
                self.lag_states.append(f"error: {type(exc).__name__}")
                return
            self.lag_states.append(lag.state)
            if lag.lag_seconds is not None and lag.state in ("streaming", "catchup"):
                self.lags.append(float(lag.lag_seconds))

    # --- results ----------------------------------------------------------------------------
    def measurements(self) -> Measurements:
        with self._lock:
            self._harvest()
            notes: list[str] = []
            deltas: dict[str, Scrape | None] = {}
            regions: list[RegionErrors] = []
            for region in self.plan.regions:
                required = region in self.plan.serving
                now = self.m.scrape(region)
                if now is None:
                    deltas[region] = None
                    regions.append(RegionErrors(region, None, None, required))
                    notes.append(f"{region}'s /metrics did not answer")
                    continue
                delta, reset = now.minus(self.baseline.get(region))
                if reset or self.baseline.get(region) is None:
                    notes.append(f"{region}'s counters start inside the window (its app (re)started): "
                                 "counted from zero")
                deltas[region] = delta
                regions.append(RegionErrors(region, delta.requests, delta.errors, required,
                                            server_p95_ms(delta.buckets)))
            geographies = [self._latency(g, deltas, notes) for g in self.plan.geographies]
            unreachable = {f"{r} from {g}": link.unreachable for (g, r), link in sorted(self.links.items())
                           if link.unreachable}
            probes = sum(link.ok + link.failed for link in self.links.values())
            failed = sum(link.failed for link in self.links.values())
            if failed:
                notes.append(f"{failed} of {probes} probes failed")
            lag = max(self.lags) if self.lags else None
            if lag is None and self.lag_states:
                notes.append(f"replication lag unknown: {', '.join(sorted(set(self.lag_states)))}")
            return Measurements(tuple(regions), tuple(geographies), lag, self.plan.lag_region, unreachable,
                                time.monotonic() - self.opened, tuple(dict.fromkeys(notes)),
                                lag_judged=self.plan.lag_region is not None)

    def _fraction(self, geography: str, region: str) -> float:
        """The share of `region`'s requests that come from `geography`'s players."""
        mine = self.plan.mix.get(geography, 0.0) * self._route(geography).get(region, 0.0)
        every = sum(self.plan.mix.get(g, 0.0) * self._route(g).get(region, 0.0) for g in self.plan.geographies)
        return mine / every if every > 0 else 0.0

    def _link_ms(self, geography: str, region: str, notes: list[str]) -> float:
        link = self.links.get((geography, region))
        if link and link.rtts_ms:
            return statistics.median(link.rtts_ms)
        nominal = self.m.rtt_ms(geography, region)
        notes.append(f"{geography}→{region}: no probe answered, nominal RTT {nominal:.0f} ms used")
        return nominal

    def _latency(self, geography: str, deltas: dict[str, Scrape | None], notes: list[str]) -> GeographyLatency:
        """The players' own p95 when their interval logs hold requests of the window, else the estimate."""
        players = read_range(self.m.topology.lab_dir, geography, self.opened_at, time.time())
        notes.extend(players.problems)
        if players.errors:
            notes.append(f"{geography} players: {players.errors} failed requests in the window (timeouts and "
                         "refused connections too; the error-rate gate counts the apps' 5xx)")
        if players.samples:
            return GeographyLatency(geography, players.samples, players.p95_ms, PLAYERS_SOURCE)
        notes.append(f"{geography}: no player latency logged in the window, its p95 is estimated from the apps")
        return self._geography(geography, deltas, notes)

    def _geography(self, geography: str, deltas: dict[str, Scrape | None], notes: list[str]) -> GeographyLatency:
        """The estimate (see the module docstring): server time shifted by link RTTs, mixed by routing."""
        home = self.m.serving_region_of_home(geography)
        parts, samples = [], 0.0
        for region in self._route(geography):
            delta = deltas.get(region)
            if delta is None or delta.requests <= 0:
                continue
            fraction = self._fraction(geography, region)
            served = delta.served * fraction
            if region == home:
                # Legs of hand-offs made elsewhere land here: they are already counted with their hand-off.
                followed = sum((deltas[r].redirects if deltas.get(r) else 0) * self._fraction(geography, r)
                               for r in self._route(geography) if r != region)
                served = max(0.0, served - followed)
            shift = self._link_ms(geography, region, notes)
            parts.append((served, delta.buckets, shift / 1000))
            handed = delta.redirects * fraction
            if handed > 0:
                extra = self._link_ms(geography, home, notes) if home and home != region else 0.0
                parts.append((handed, delta.redirect_buckets, (shift + extra) / 1000))
            samples += served + handed
        p95 = mixture_quantile(parts, 0.95)
        return GeographyLatency(geography, round(samples), None if p95 is None else p95 * 1000, SOURCE_LABEL)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


class LabTrafficMetrics:
    """TrafficMetrics on the lab's processes (see the module docstring)."""

    def __init__(self, topology: LabTopology, global_database: Any = None, *, probe_timeout: float = 2.0,
                 probe_every: float = 1.0, lag_every: float = 1.0, failures_to_unreachable: int = 2,
                 scrape_timeout: float = 1.0) -> None:
        """global_database: the lab's GlobalDatabase (replication lag); probe_*: reachability and RTT probes
        through the player links; failures_to_unreachable: failed probes in a row that make a link unreachable."""
        self.topology = topology
        self.global_database = global_database
        self.probe_timeout = probe_timeout
        self.probe_every = probe_every
        self.lag_every = lag_every
        self.failures_to_unreachable = failures_to_unreachable
        self.scrape_timeout = scrape_timeout

    def serving_region_of_home(self, geography: str) -> str:
        """Where a `geography` player's 409 wrong_region sends them: the region serving their home region
        (the lab's home routing file, which cutover changes; before it, us-east-1 serves every home)."""
        home = GEO_NEAREST[geography]
        routing = dict(HOME_ROUTING)
        try:
            routing.update(json.loads(self.topology.home_routing_file.read_text()))
        except (OSError, ValueError):
            pass
        return routing.get(home, home)

    def rtt_ms(self, geography: str, region: str) -> float:
        """The nominal round trip of a player link (DESIGN §2), before any probe measured it."""
        return player_rtt_ms(geography, region)

    def scrape(self, region: str) -> Scrape | None:
        """The app's counters now; None when its /metrics does not answer (not deployed, killed, hung)."""
        if region not in self.topology.app_ports:
            return None
        try:
            response = httpx.get(f"{self.topology.internal_url(region)}/metrics", timeout=self.scrape_timeout)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return parse_metrics(response.text)

    def open_window(self, plan: WindowPlan) -> LabMetricsWindow:
        return LabMetricsWindow(self, plan)

    def players_latency(self, geographies: tuple[str, ...], start: float, end: float) -> list[GeographyLatency]:
        """From the players' own interval logs (no estimate: a geography nobody played in has no figure)."""
        out = []
        for geography in geographies:
            players = read_range(self.topology.lab_dir, geography, start, end)
            out.append(GeographyLatency(geography, players.samples, players.p95_ms if players.samples else None,
                                        PLAYERS_SOURCE))
        return out

    def recent_errors(self, region: str) -> RegionErrors:
        """Since the region's app started (the lab keeps no history of its own)."""
        now = self.scrape(region)
        if now is None:
            return RegionErrors(region, None, None)
        return RegionErrors(region, now.requests, now.errors, True, server_p95_ms(now.buckets))
