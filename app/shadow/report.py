"""What one mirror (one mirror_id) measured, per route template: comparisons and outcomes, noise,
sample diffs, candidate errors, latencies and the mirror's own loss."""

from __future__ import annotations

import random
from collections import Counter, OrderedDict, deque
from datetime import UTC, datetime
from typing import Any

from hdrh.histogram import HdrHistogram

from app.shadow.config import ShadowConfig
from app.shadow.diff import ABSENT, FieldPath, same

HISTORY_KEYS = 2048  # request keys whose recent primary answers are kept (staleness_seconds > 0 only)
HISTORY_PER_KEY = 64
RECENT_MAX = 1000  # latency values kept per route and side between two EMF prints

# --- the report --------------------------------------------------------------------------------

def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Latency:
    """A latency histogram in microseconds (1 µs .. 10 min, 3 significant digits), and the values
    recorded since the last EMF print (a uniform sample of RECENT_MAX beyond that many)."""

    def __init__(self) -> None:
        self.h = HdrHistogram(1, 600_000_000, 3)
        self.recent: list[float] = []
        self._since = 0

    def record(self, ms: float) -> None:
        self.h.record_value(max(1, min(int(ms * 1000), 600_000_000)))
        self._since += 1
        if len(self.recent) < RECENT_MAX:
            self.recent.append(round(ms, 3))
        else:  # reservoir sampling: bounded memory and log volume, still an unbiased sample
            slot = random.randrange(self._since)
            if slot < RECENT_MAX:
                self.recent[slot] = round(ms, 3)

    def take_recent(self) -> list[float]:
        """The values since the last call."""
        values, self.recent, self._since = self.recent, [], 0
        return values

    def summary(self) -> dict[str, Any]:
        n = self.h.get_total_count()
        if not n:
            return {"count": 0, "p50_ms": None, "p95_ms": None}
        return {"count": n, "p50_ms": round(self.h.get_value_at_percentile(50) / 1000, 3),
                "p95_ms": round(self.h.get_value_at_percentile(95) / 1000, 3)}


class EndpointStats:
    """Counters of one route template (see the module doc for what each means)."""

    def __init__(self) -> None:
        self.eligible = 0  # requests of the geography with a mirrored method
        self.sampled = 0  # of those, chosen by the sample
        self.mirrored = 0  # sent to the candidate
        self.compared = 0  # three-way diffs made
        self.matched = 0
        self.within_staleness = 0
        self.converged = 0
        self.mismatched = 0
        self.not_diffed = 0  # answered by both sides, endpoint not diffed (diff: false)
        self.candidate_errors: Counter[str] = Counter()
        self.loss: Counter[str] = Counter()
        self.noisy_fields: Counter[str] = Counter()  # field shape → answers where the primaries differed
        self.mismatched_fields: Counter[str] = Counter()  # field shape → answers it really differed in
        self.sample_diffs: list[dict[str, Any]] = []
        self.primary_ms = _Latency()  # the live answer's server time
        self.candidate_ms = _Latency()  # the candidate's server time (Server-Timing)
        self.candidate_round_trip_ms = _Latency()  # the candidate as the mirror saw it (with the WAN)

    def counts(self) -> dict[str, int]:
        """The EMF counters (cumulative): metric name → value."""
        return {"Eligible": self.eligible, "Sampled": self.sampled, "Mirrored": self.mirrored,
                "Compared": self.compared, "Mismatched": self.mismatched, "Converged": self.converged,
                "WithinStaleness": self.within_staleness, "NotDiffed": self.not_diffed,
                "CandidateErrors": sum(self.candidate_errors.values()), "Lost": sum(self.loss.values())}

    def latencies(self) -> dict[str, _Latency]:
        """The EMF latency metrics (milliseconds): metric name → histogram."""
        return {"PrimaryLatency": self.primary_ms, "CandidateLatency": self.candidate_ms,
                "CandidateRoundTripLatency": self.candidate_round_trip_ms}

    def to_json(self) -> dict[str, Any]:
        errors = sum(self.candidate_errors.values())
        return {
            "eligible": self.eligible, "sampled": self.sampled, "mirrored": self.mirrored,
            "compared": self.compared, "matched": self.matched, "within_staleness": self.within_staleness,
            "converged": self.converged, "mismatched": self.mismatched, "not_diffed": self.not_diffed,
            "mismatch_rate": round(self.mismatched / self.compared, 6) if self.compared else None,
            "candidate_errors": errors, "candidate_errors_by_kind": dict(self.candidate_errors),
            "candidate_error_rate": round(errors / self.mirrored, 6) if self.mirrored else None,
            "loss": dict(self.loss), "lost": sum(self.loss.values()),
            "mismatched_fields": dict(self.mismatched_fields.most_common(10)),
            "noisy_fields": dict(self.noisy_fields.most_common(10)),
            "sample_diffs": list(self.sample_diffs),
            "latency": {"primary": self.primary_ms.summary(), "candidate": self.candidate_ms.summary(),
                        "candidate_round_trip": self.candidate_round_trip_ms.summary()},
        }


class ShadowReport:
    """Everything one mirror (one mirror_id) measured."""

    def __init__(self, config: ShadowConfig) -> None:
        self.config = config
        self.since = now_iso()
        self.endpoints: dict[str, EndpointStats] = {}
        self.history: OrderedDict[str, deque] = OrderedDict()

    def endpoint(self, route: str) -> EndpointStats:
        stats = self.endpoints.get(route)
        if stats is None:
            stats = self.endpoints[route] = EndpointStats()
        return stats

    def remember(self, key: str, at: float, fields: dict[FieldPath, Any], keep_seconds: float) -> None:
        """Keep a primary answer to `key` for the staleness check."""
        entries = self.history.get(key)
        if entries is None:
            entries = self.history[key] = deque(maxlen=HISTORY_PER_KEY)
            while len(self.history) > HISTORY_KEYS:
                self.history.popitem(last=False)
        else:
            self.history.move_to_end(key)
        entries.append((at, fields))
        while entries and entries[0][0] < at - keep_seconds - 1:
            entries.popleft()

    def seen_recently(self, key: str, path: FieldPath, value: Any, now: float, seconds: float) -> bool:
        """True when the primary answered `value` at `path` to `key` within the last `seconds`."""
        if seconds <= 0:
            return False
        return any(at >= now - seconds and same(fields.get(path, ABSENT), value)
                   for at, fields in self.history.get(key, ()))

    def to_json(self) -> dict[str, Any]:
        per = {route: stats.to_json() for route, stats in sorted(self.endpoints.items())}
        total = {k: sum(e[k] for e in per.values())
                 for k in ("eligible", "sampled", "mirrored", "compared", "matched", "within_staleness",
                           "converged", "mismatched", "not_diffed", "candidate_errors", "lost")}
        total["mismatch_rate"] = round(total["mismatched"] / total["compared"], 6) if total["compared"] else None
        total["candidate_error_rate"] = (round(total["candidate_errors"] / total["mirrored"], 6)
                                         if total["mirrored"] else None)
        loss: Counter[str] = Counter()
        for stats in self.endpoints.values():
            loss.update(stats.loss)
        total["loss"] = dict(loss)
        return {"mirror_id": self.config.mirror_id, "since": self.since, "updated_at": now_iso(),
                "config": self.config.public(), "totals": total, "endpoints": per}
