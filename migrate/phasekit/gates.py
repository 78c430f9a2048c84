"""Gate evaluation: measured values + thresholds → Pass, Fail or Inconclusive, with the reasons.

Pure and provider-free (DESIGN §4): the phase measures through a provider, this module judges.

Rules, in the order they are applied:
- Fail when any threshold is broken on enough evidence: a region that should carry players could not
  be reached; a region's 5xx count exceeds `error_rate_max × max(requests, min_samples)` (so a few
  requests can fail the gate only with errors no amount of missing clean traffic could dilute); a
  geography's p95 is above its ceiling on at least `min_samples` requests; the replication lag is
  above its ceiling.
- Otherwise Inconclusive when anything needed is missing: a region that should carry players saw no
  request, a geography has fewer than `min_samples` requests or no p95, a geography has no ceiling,
  the replication lag is unknown (where a replica is in play: `Measurements.lag_judged`). No data is
  Inconclusive, never Pass.
- Otherwise Pass.
Fail wins over Inconclusive: a broken threshold is a failure even when another figure is missing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The measured values are value types of the provider layer (providers/traffic.py), so that adapters can
# build them without importing the engine; re-exported here for callers of evaluate().
from migrate.providers.traffic import GeographyLatency, Measurements, RegionErrors

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "GateResult", "GeographyLatency", "Measurements", "RegionErrors",
           "Thresholds", "evaluate", "summary"]

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)


@dataclass(frozen=True)
class Thresholds:
    """The SLO gates of the spec ([gates] in migration.toml)."""

    error_rate_max: float  # fraction of a region's requests that may fail (5xx, timeouts)
    p95_ms_max: Mapping[str, float]  # geography → p95 ceiling in ms
    replication_lag_seconds_max: float  # the largest replica lag tolerated
    min_samples: int  # requests a geography needs before its p95 can pass
    baseline_p95_ms: Mapping[str, float] = field(default_factory=dict)  # recorded before the programme
    baseline_slack_ms: float = 0.0  # how far over its baseline a geography's p95 may go

    @classmethod
    def from_spec(cls, gates: Any, baseline: Mapping[str, Any] | None = None) -> Thresholds:
        """From migrate.spec.Gates and the journal's recorded baseline (JournalState.baseline), if any."""
        return cls(float(gates.error_rate_max), dict(gates.p95_ms_max),
                   float(gates.replication_lag_seconds_max), int(gates.min_samples),
                   dict((baseline or {}).get("p95_ms", {})), float(getattr(gates, "baseline_slack_ms", 0.0)))

    def ceiling(self, geography: str) -> float | None:
        """The p95 a geography must stay under: its spec ceiling, lowered to baseline + slack once recorded."""
        ceilings = [c for c in (self.p95_ms_max.get(geography),
                                None if geography not in self.baseline_p95_ms
                                else self.baseline_p95_ms[geography] + self.baseline_slack_ms) if c is not None]
        return min(ceilings) if ceilings else None

    def to_json(self) -> dict[str, Any]:
        out = {"error_rate_max": self.error_rate_max, "p95_ms_max": dict(self.p95_ms_max),
               "replication_lag_seconds_max": self.replication_lag_seconds_max,
               "min_samples": self.min_samples}
        if self.baseline_p95_ms:
            out.update(baseline_p95_ms=dict(self.baseline_p95_ms), baseline_slack_ms=self.baseline_slack_ms)
        return out


def thresholds_for(target: Any) -> Thresholds:
    """The gates of `target`'s spec held to the journal's recorded baseline (when one is recorded)."""
    journal = getattr(target, "journal", None)
    return Thresholds.from_spec(target.spec.gates, getattr(journal, "baseline", None))


@dataclass(frozen=True)
class GateResult:
    """One evaluation: verdict, the measured values, the thresholds and why."""

    verdict: str  # pass, fail or inconclusive
    values: dict[str, Any]
    thresholds: dict[str, Any]
    reasons: tuple[str, ...]  # one short sentence per broken or missing figure; a summary on pass

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "values": self.values, "thresholds": self.thresholds,
                "reason": self.reason, "reasons": list(self.reasons)}


def _pct(x: float) -> str:
    return f"{x * 100:.2f} %"


def evaluate(m: Measurements, t: Thresholds, *, partial: bool = False) -> GateResult:
    """Judge `m` against `t` (see the module docstring for the rules). `partial`: a window still filling
    (a bake's interim checks) is held to the spec's p95_ms_max only, the disaster bound; "no worse than
    the baseline" is a comparison of two p95s that only the whole window can make (its first seconds
    after a change hold the change's own transients: resolvers switching, pools opening)."""
    failures: list[str] = []
    missing: list[str] = []

    for what, why in sorted(m.unreachable.items()):
        failures.append(f"{what} unreachable: {why}")

    for r in m.regions:
        if r.requests is None or r.errors is None:
            if r.required:
                missing.append(f"{r.region}: request and error counts unknown")
            continue
        if r.requests == 0:
            if r.required:
                missing.append(f"{r.region}: no request in the window")
            continue
        if r.errors > t.error_rate_max * max(r.requests, t.min_samples):
            failures.append(f"{r.region}: {r.errors} of {r.requests} requests failed "
                            f"({_pct(r.errors / r.requests)} > {_pct(t.error_rate_max)})")

    for g in m.geographies:
        ceiling = t.p95_ms_max.get(g.geography) if partial else t.ceiling(g.geography)
        if ceiling is None:
            missing.append(f"{g.geography}: no p95 ceiling in the spec")
        elif g.p95_ms is None or g.samples <= 0:
            missing.append(f"{g.geography}: no latency data")
        elif g.samples < t.min_samples:
            missing.append(f"{g.geography}: {g.samples} requests < min_samples {t.min_samples}")
        elif g.p95_ms > ceiling:
            base = t.baseline_p95_ms.get(g.geography)
            why = (f", worse than before: baseline {base:.0f} ms + {t.baseline_slack_ms:g}"
                   if base is not None and ceiling < t.p95_ms_max.get(g.geography, float("inf")) else "")
            failures.append(f"{g.geography}: p95 {g.p95_ms:.0f} ms > {ceiling:.0f} ms{why} "
                            f"({g.samples} requests)")

    lag = m.replication_lag_seconds
    lag_name = f"{m.lag_region} replication lag" if m.lag_region else "replication lag"
    if not m.lag_judged:
        pass  # no replica in play (a region not attached yet, a schema change): nothing lags
    elif lag is None or (isinstance(lag, float) and math.isnan(lag)):
        missing.append(f"{lag_name} unknown")
    elif lag > t.replication_lag_seconds_max:
        failures.append(f"{lag_name} {lag:.2f} s > {t.replication_lag_seconds_max:g} s")

    values = {
        "window_seconds": round(m.window_seconds, 3),
        "regions": {r.region: {"requests": r.requests, "errors": r.errors,
                               "error_rate": None if r.error_rate is None else round(r.error_rate, 6),
                               "server_p95_ms": None if r.p95_ms is None else round(r.p95_ms, 1)}
                    for r in m.regions},
        "geographies": {g.geography: {"samples": g.samples,
                                      "p95_ms": None if g.p95_ms is None else round(g.p95_ms, 1),
                                      "source": g.source}
                        for g in m.geographies},
        "replication_lag_seconds": None if lag is None else round(lag, 3),
        "lag_region": m.lag_region,
        "unreachable": dict(m.unreachable),
        "errors": sum(r.errors or 0 for r in m.regions),
    }
    if m.notes:
        values["notes"] = list(m.notes)
    if failures:
        return GateResult(FAIL, values, t.to_json(), tuple(failures))
    if missing:
        return GateResult(INCONCLUSIVE, values, t.to_json(), tuple(missing))
    return GateResult(PASS, values, t.to_json(), (summary(values),))


def summary(values: Mapping[str, Any]) -> str:
    """One line of the measured values, for progress notes and pass reasons."""
    parts = []
    regions = values.get("regions") or {}
    if regions:
        parts.append("errors " + ", ".join(
            f"{r} {v['errors']}/{v['requests']}" if v.get("requests") is not None else f"{r} ?"
            for r, v in regions.items()))
    geos = values.get("geographies") or {}
    if geos:
        parts.append("p95 " + ", ".join(
            f"{g} {v['p95_ms']:.0f} ms" if v.get("p95_ms") is not None else f"{g} –"
            for g, v in geos.items()))
    lag = values.get("replication_lag_seconds")
    parts.append(f"lag {lag:.2f} s" if lag is not None else "lag –")
    return "; ".join(parts)
