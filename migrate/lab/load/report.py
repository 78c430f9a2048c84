"""Latency histograms per geography × request type, error counts by kind, and the load report
(versioned JSON `migrate.load/v1` and a rich table).

Latencies are recorded in microseconds (HdrHistogram, 3 significant digits) and reported in ms.
A cell's `count` is every finished request (successes and errors); `errors` those that failed; the
percentiles are over the successful ones, so a burst of instant connection refusals cannot make a
region look fast.

Metrics also hands every finished request to the run's interval logs when it has them
(migrate.lab.player_logs), so the lab's gates see what players saw while they play."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from hdrh.histogram import HdrHistogram

from migrate.lab.player_logs import IntervalLogWriter
from migrate.lab.topology import GEOGRAPHIES

SCHEMA = "migrate.load/v1"
ALL = "all"
REQUEST_TYPES = ("login", "session_refresh", "profile_read", "profile_write", "score_submit", "leaderboard_regional",
                 "leaderboard_global", "match_create", "match_poll", "match_cancel")
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3  # 1 µs .. 1 h


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def _ms(us: float) -> float:
    return round(us / 1000.0, 3)


@dataclass
class Cell:
    """One geography × request type: a latency histogram of successes and an error count."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    errors: int = 0
    total_us: int = 0  # sum of the recorded values: the exact mean (hdrh's get_mean_value walks every
    #                    bucket in Python, ~0.15 s a cell, seconds of CPU per report)

    def record(self, latency_ms: float, error: str | None) -> None:
        if error is None:
            value = max(LOWEST_US, min(HIGHEST_US, int(latency_ms * 1000)))
            self.histogram.record_value(value)
            self.total_us += value
        else:
            self.errors += 1

    def summary(self) -> dict[str, Any]:
        h, ok = self.histogram, self.histogram.get_total_count()
        empty = ok == 0
        return {"count": ok + self.errors, "ok": ok, "errors": self.errors,
                "error_rate": round(self.errors / (ok + self.errors), 6) if ok + self.errors else 0.0,
                "p50_ms": None if empty else _ms(h.get_value_at_percentile(50)),
                "p95_ms": None if empty else _ms(h.get_value_at_percentile(95)),
                "p99_ms": None if empty else _ms(h.get_value_at_percentile(99)),
                "max_ms": None if empty else _ms(h.get_max_value()),
                "mean_ms": None if empty else _ms(self.total_us / ok),
                "hdr": None if empty else h.encode().decode("ascii")}


class Metrics:
    """Everything the players measure. Used from one event loop thread (no locking)."""

    def __init__(self, geographies: Iterable[str] = GEOGRAPHIES, intervals: IntervalLogWriter | None = None) -> None:
        """intervals: where every finished request also goes, for the lab's gates (see migrate.lab.player_logs)."""
        self.geographies = tuple(geographies)
        self.intervals = intervals
        self.cells: dict[tuple[str, str], Cell] = {}
        self.errors_by_kind: Counter[str] = Counter()
        self.errors_by_class: Counter[str] = Counter()
        self.recovered: Counter[str] = Counter()  # answers a client handled and retried (not errors)
        self.routed: dict[str, Counter[str]] = {g: Counter() for g in self.geographies}  # geo → region → requests
        self.ryw_checked = 0
        self.ryw_stale: list[dict[str, Any]] = []

    def cell(self, geography: str, request_type: str) -> Cell:
        key = (geography, request_type)
        if key not in self.cells:
            self.cells[key] = Cell()
        return self.cells[key]

    def record(self, geography: str, request_type: str, latency_ms: float, error: str | None = None,
               region: str | None = None) -> None:
        """One finished request (error: its kind, e.g. 'timeout', 'http_503_database_unavailable')."""
        self.cell(geography, request_type).record(latency_ms, error)
        self.cell(geography, ALL).record(latency_ms, error)
        if self.intervals is not None:
            self.intervals.record(geography, latency_ms, error is not None)
        if region is not None:
            self.routed.setdefault(geography, Counter())[region] += 1
        if error is not None:
            self.errors_by_kind[error] += 1
            self.errors_by_class[error_class(error)] += 1

    def finished(self) -> int:
        return sum(c.histogram.get_total_count() + c.errors for (g, t), c in self.cells.items() if t == ALL)

    def failed(self) -> int:
        return sum(c.errors for (g, t), c in self.cells.items() if t == ALL)

    def per_geography(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for geo in self.geographies:
            row = {ALL: self.cell(geo, ALL).summary()}
            for kind in REQUEST_TYPES:
                if (geo, kind) in self.cells:
                    row[kind] = self.cells[(geo, kind)].summary()
            out[geo] = row
        return out


def error_class(kind: str) -> str:
    """Coarse class of an error kind: 4xx, 5xx, timeout, connection, dns, other."""
    if kind.startswith("http_4"):
        return "4xx"
    if kind.startswith("http_5"):
        return "5xx"
    if kind == "timeout":
        return "timeout"
    if kind.startswith("connection"):
        return "connection"
    if kind.startswith("dns"):
        return "dns"
    return "other"


@dataclass
class LoadReport:
    """The outcome of one load run; `to_json()` is the versioned document written to --out."""

    command: str
    machine: dict[str, Any]
    config: dict[str, Any]
    started_at: str
    finished_at: str
    elapsed_s: float
    stopped_early: str | None  # why the run ended before its duration (signal, stop()), else None
    requests: dict[str, Any]  # arrivals scheduled/started/dropped; HTTP finished/failed; in_flight_at_end
    achieved_rate: float  # player requests started per second (what the target rate counts)
    http_rate: float  # HTTP requests finished per second (actions plus the logins they needed, retries)
    per_geography: dict[str, dict[str, dict[str, Any]]]
    errors_by_kind: dict[str, int]
    errors_by_class: dict[str, int]
    recovered: dict[str, int]
    routing: dict[str, dict[str, int]]  # geography → region → requests sent there
    read_your_writes: dict[str, Any]
    ledger: dict[str, Any]
    resolver: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": self.command, "machine": self.machine, "config": self.config,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "elapsed_s": self.elapsed_s, "stopped_early": self.stopped_early,
                "requests": self.requests, "achieved_rate": self.achieved_rate, "http_rate": self.http_rate,
                "per_geography": self.per_geography, "errors_by_kind": self.errors_by_kind,
                "errors_by_class": self.errors_by_class, "recovered": self.recovered,
                "routing": self.routing, "read_your_writes": self.read_your_writes,
                "ledger": self.ledger, "resolver": self.resolver, "notes": self.notes}

    @property
    def lost(self) -> int:
        return int(self.ledger.get("lost", 0))


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(report: LoadReport | dict[str, Any], console) -> None:
    """Print the latency table, errors and the ledger verdict on a rich console."""
    from rich.table import Table

    doc = report.to_json() if isinstance(report, LoadReport) else report
    cfg, req = doc["config"], doc["requests"]
    title = (f"load · {doc['elapsed_s']:.1f} s · {cfg['rate']:g} req/s target, {doc['achieved_rate']:.1f} achieved "
             f"({doc['http_rate']:.1f} HTTP req/s with logins and retries)")
    if doc.get("stopped_early"):
        title += f" · stopped early ({doc['stopped_early']})"
    table = Table(title=title, title_justify="left", caption="latency in ms, over successful requests",
                  caption_justify="left")
    table.add_column("geo", no_wrap=True)
    table.add_column("request", no_wrap=True)
    for col in ("count", "errors", "p50", "p95", "p99", "max"):
        table.add_column(col, justify="right", no_wrap=True)
    for geo, rows in doc["per_geography"].items():
        for i, (kind, s) in enumerate(rows.items()):
            table.add_row(geo if i == 0 else "", kind, _fmt(s["count"]), _fmt(s["errors"]), _fmt(s["p50_ms"]),
                          _fmt(s["p95_ms"]), _fmt(s["p99_ms"]), _fmt(s["max_ms"]),
                          style="bold" if kind == ALL else None)
        table.add_section()
    console.print(table)
    routing = "; ".join(f"{geo} → " + ", ".join(f"{r} {n:,}" for r, n in sorted(regions.items(), key=lambda kv: -kv[1]))
                        for geo, regions in doc["routing"].items() if regions)
    if routing:
        console.print(f"routed: {routing}")
    console.print(f"requests: {req['finished']:,} finished, {req['failed']:,} failed, "
                  f"{req['dropped']:,} dropped by the generator (concurrency cap), "
                  f"{req.get('in_flight_at_end', 0):,} cut off at the end")
    if doc["errors_by_kind"]:
        console.print("errors: " + ", ".join(f"{k} {v:,}" for k, v in
                                             sorted(doc["errors_by_kind"].items(), key=lambda kv: -kv[1])))
    if doc["recovered"]:
        console.print("recovered (client retried): " + ", ".join(f"{k} {v:,}" for k, v in doc["recovered"].items()))
    ryw = doc["read_your_writes"]
    console.print(f"read-your-writes: {ryw['checked']:,} checked, {ryw['stale']:,} stale")
    led = doc["ledger"]
    verdict = "[green]nothing lost[/]" if led["lost"] == 0 else f"[red]{led['lost']:,} LOST[/]"
    line = (f"ledger: {led['acknowledged']:,} acknowledged writes → {led['checked']:,} checked: "
            f"{led['found']:,} found, {led['unknown']:,} unknown, {verdict}")
    if led.get("unacknowledged"):
        line += f" ({led['unacknowledged']:,} writes without an answer, counted as unknown, never lost)"
    console.print(line)
    for example in led.get("examples", [])[:5]:
        console.print(f"  lost: {example}")
    for note in doc.get("notes", []):
        console.print(f"[dim]note:[/] {note}")
