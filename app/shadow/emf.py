"""The fleet's figures (SHADOW_METRICS=emf): counters and latencies as CloudWatch Embedded Metric Format
lines on stdout, shipped by the awslogs driver."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.shadow.config import ShadowConfig
from app.shadow.report import EndpointStats, ShadowReport

if TYPE_CHECKING:  # the mirror hands itself to emit(); it imports this module for EmfEmitter
    from app.shadow.mirror import Mirror

log = logging.getLogger("app.shadow")

# --- the fleet's figures: CloudWatch Embedded Metric Format --------------------------------------

EMF_NAMESPACE = "Game/Shadow"
EMF_ROUTE_DIMENSIONS = ["Region", "MirrorId", "Route"]
EMF_HEARTBEAT_DIMENSIONS = ["Region", "MirrorId"]
EMF_VALUES_MAX = 100  # EMF takes at most 100 values of one metric per line


def _stdout_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _emf(timestamp_ms: int, dimensions: list[str], metrics: dict[str, tuple[str, Any]],
         properties: dict[str, Any]) -> dict[str, Any]:
    """One EMF document: `metrics` is name → (unit, value or list of values)."""
    directive = {"Namespace": EMF_NAMESPACE, "Dimensions": [dimensions],
                 "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()]}
    return {"_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}, **properties,
            **{name: value for name, (_, value) in metrics.items()}}


class EmfEmitter:
    """Prints one task's mirror figures as CloudWatch EMF lines (see the module doc): per route the
    counters since the last print and the latency values, a Heartbeat while mirroring, and each new
    sample diff as a plain JSON line."""

    def __init__(self, region: str, interval: float = 10.0, write: Callable[[str], None] = _stdout_line,
                 clock: Callable[[], float] = time.time) -> None:
        self.region = region
        self.interval = interval
        self._write = write
        self._clock = clock
        self._report: ShadowReport | None = None
        self._sent: dict[str, dict[str, int]] = {}  # route → counters already printed (this report)
        self._diffs: dict[str, int] = {}  # route → sample diffs already printed

    async def run(self, mirror: Mirror) -> None:
        """Print every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.emit(mirror)
            except Exception:  # a bug here must not end the printing for the life of the task
                log.exception("shadow: printing the EMF lines failed")

    def emit(self, mirror: Mirror) -> None:
        """Print what is due now, one JSON document per line (each well under the 16 KiB at which
        the container log drivers split a line)."""
        for doc in self.documents(mirror.active(), mirror.report):
            self._write(json.dumps(doc, separators=(",", ":"), default=str))

    def documents(self, config: ShadowConfig | None, report: ShadowReport | None) -> list[dict[str, Any]]:
        """The documents due now; what they carry is not carried again."""
        if report is None:
            return []
        if report is not self._report:  # a new mirror id: its counters start at zero
            self._report, self._sent, self._diffs = report, {}, {}
        now = int(self._clock() * 1000)
        base = {"Region": self.region, "MirrorId": report.config.mirror_id, "Target": report.config.target,
                "Geography": report.config.geography}
        docs = []
        if config is not None and config.mirror_id == report.config.mirror_id:
            docs.append(_emf(now, EMF_HEARTBEAT_DIMENSIONS, {"Heartbeat": ("Count", 1)}, base))
        for route, stats in sorted(report.endpoints.items()):
            props = {**base, "Route": route}
            docs += [_emf(now, EMF_ROUTE_DIMENSIONS, metrics, props) for metrics in self._route_lines(route, stats)]
            docs += [{**props, "shadow_sample_diff": diff} for diff in stats.sample_diffs[self._diffs.get(route, 0):]]
            self._diffs[route] = len(stats.sample_diffs)
        return docs

    def _route_lines(self, route: str, stats: EndpointStats) -> list[dict[str, tuple[str, Any]]]:
        """The metrics of one route's lines: the counters' deltas (all of them, when any moved) in the
        first, the latency values EMF_VALUES_MAX per line."""
        counts, sent = stats.counts(), self._sent.get(route, {})
        self._sent[route] = counts
        delta = {name: value - sent.get(name, 0) for name, value in counts.items()}
        lines: list[dict[str, tuple[str, Any]]] = []
        if any(delta.values()):
            lines.append({name: ("Count", value) for name, value in delta.items()})
        for name, latency in stats.latencies().items():
            values = latency.take_recent()
            for i in range(0, len(values), EMF_VALUES_MAX):
                if i // EMF_VALUES_MAX == len(lines):
                    lines.append({})
                lines[i // EMF_VALUES_MAX][name] = ("Milliseconds", values[i:i + EMF_VALUES_MAX])
        return lines
