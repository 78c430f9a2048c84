"""What the shadow-traffic phase may ask of the world: start and stop mirroring a geography's reads
from the source region's API to a candidate region, and read what the mirror measured.

The mirror itself runs inside the source region's app (app/shadow.py); an adapter only switches it
and reads its report. The switch is one JSON document (`switch_document`), whichever adapter carries
it: the lab writes it to a watched file, the AWS adapter to an SSM parameter the source's tasks poll.
Adapters raise only project errors (ProviderError, TransientProviderError)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


# The switch's fixed settings. The geography header: the lab's load generator sets it per geography
# link; on AWS the game client sends it (it tags its own telemetry with the same geography).
GEO_HEADER = "x-player-geo"
READ_METHODS = ["GET", "HEAD"]
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MIRROR_TIMEOUT_SECONDS = 2.0  # per mirrored request; the candidate is one WAN round trip away
WORKERS = 16
QUEUE_MAX = 1000


@dataclass(frozen=True)
class EndpointRule:
    """How the answers of one route template are compared."""

    route: str  # the route template as the app declares it, e.g. "/v1/players/{player_id}"
    diff: bool = True  # False: mirrored for latency and errors only
    ignore_fields: tuple[str, ...] = ()  # field patterns this route's diff ignores
    staleness_seconds: float = 0.0  # the candidate may answer what the primary answered this recently
    keyed_lists: tuple[tuple[str, dict[str, Any]], ...] = ()  # (list field, its rule): compared per key


@dataclass(frozen=True)
class IgnoreRules:
    """Field-level rules of the diff (migration.toml [shadow])."""

    fields: tuple[str, ...] = ()  # patterns ignored on every route ("server_time", "entries.*.at")
    endpoints: tuple[EndpointRule, ...] = ()  # per route template

    def to_json(self) -> dict[str, Any]:
        return {"ignore_fields": list(self.fields),
                "endpoints": {e.route: {"diff": e.diff, "ignore_fields": list(e.ignore_fields),
                                        "staleness_seconds": e.staleness_seconds,
                                        "keyed_lists": dict(e.keyed_lists)}
                              for e in self.endpoints}}


def switch_document(source: str, target: str, geography: str, sample_rate: float, reads_only: bool,
                    ignore: IgnoreRules, *, mirror_id: str, recheck_seconds: float, primary_url: str,
                    candidate_url: str, **extra: Any) -> dict[str, Any]:
    """The JSON switch that turns the source app's mirror on (app/shadow.py ShadowConfig.parse reads
    it); `extra` adds adapter-specific keys (e.g. api_host, started_at)."""
    return {"enabled": True, "mirror_id": mirror_id, "source": source, "target": target,
            "geography": geography, "geo_header": GEO_HEADER, "sample_rate": sample_rate,
            "methods": READ_METHODS if reads_only else ALL_METHODS,
            "primary_url": primary_url, "candidate_url": candidate_url,
            "timeout_seconds": MIRROR_TIMEOUT_SECONDS, "workers": WORKERS, "queue_max": QUEUE_MAX,
            "recheck_seconds": recheck_seconds, **ignore.to_json(), **extra}


@dataclass(frozen=True)
class EndpointReport:
    """What the mirror measured for one route template (see app/shadow.py for the exact meanings)."""

    route: str
    eligible: int  # the geography's requests with a mirrored method
    sampled: int  # of those, chosen by the player sample
    mirrored: int  # sent to the candidate
    compared: int  # three-way diffs made
    mismatched: int  # real mismatches (survived noise cancelling, staleness and the recheck)
    converged: int  # differed once, agreed on the recheck (lag)
    within_staleness: int  # differed only by what the primary answered within the route's bound
    not_diffed: int  # answered, route not diffed by rule
    candidate_errors: int  # candidate 5xx, timeouts, connection failures
    lost: int  # sampled but not compared for the mirror's own reasons
    loss: dict[str, int] = field(default_factory=dict)  # reason → count
    candidate_errors_by_kind: dict[str, int] = field(default_factory=dict)
    mismatched_fields: dict[str, int] = field(default_factory=dict)  # field shape → count
    noisy_fields: dict[str, int] = field(default_factory=dict)  # cancelled fields → count
    sample_diffs: tuple[dict[str, Any], ...] = ()  # a few differing answers, values clipped
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)  # side → {count, p50_ms, p95_ms}

    @property
    def mismatch_rate(self) -> float | None:
        return self.mismatched / self.compared if self.compared else None

    @property
    def candidate_error_rate(self) -> float | None:
        return self.candidate_errors / self.mirrored if self.mirrored else None

    def summary(self) -> dict[str, Any]:
        """The journal-sized view: counts, rates, latency, loss and at most two sample diffs (empty
        parts left out)."""
        full = {"compared": self.compared, "mismatched": self.mismatched,
                "mismatch_rate": _round(self.mismatch_rate), "converged": self.converged,
                "within_staleness": self.within_staleness, "not_diffed": self.not_diffed,
                "mirrored": self.mirrored, "candidate_errors": self.candidate_errors,
                "candidate_error_rate": _round(self.candidate_error_rate),
                "candidate_errors_by_kind": dict(self.candidate_errors_by_kind),
                "lost": self.lost, "loss": dict(self.loss),
                "latency": {side: {k: v for k, v in values.items() if k in ("p50_ms", "p95_ms", "count")}
                            for side, values in self.latency.items()},
                "mismatched_fields": dict(self.mismatched_fields), "noisy_fields": dict(self.noisy_fields),
                "sample_diffs": list(self.sample_diffs[:2])}
        return {k: v for k, v in full.items() if v not in ({}, [], None)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass(frozen=True)
class MirrorReport:
    """The mirror's state and report as the source app holds it."""

    source: str
    available: bool  # the source app can mirror at all (it has a shadow switch to watch)
    enabled: bool  # mirroring now
    mirror_id: str | None  # the mirror this report belongs to (None: no report yet)
    target: str | None = None  # the candidate region of that mirror
    geography: str | None = None
    since: str | None = None  # when that mirror started (ISO 8601)
    endpoints: tuple[EndpointReport, ...] = ()
    queue_depth: int = 0
    config_error: str | None = None  # the app could not read the shadow file
    note: str | None = None  # what this adapter's report cannot show, and where to find it instead

    def _sum(self, name: str) -> int:
        return sum(getattr(e, name) for e in self.endpoints)

    @property
    def compared(self) -> int:
        return self._sum("compared")

    @property
    def mismatched(self) -> int:
        return self._sum("mismatched")

    @property
    def mirrored(self) -> int:
        return self._sum("mirrored")

    @property
    def candidate_errors(self) -> int:
        return self._sum("candidate_errors")

    @property
    def lost(self) -> int:
        return self._sum("lost")

    @property
    def eligible(self) -> int:
        return self._sum("eligible")

    @property
    def sampled(self) -> int:
        return self._sum("sampled")

    @property
    def mismatch_rate(self) -> float | None:
        """Real mismatches over compared answers; None without comparisons."""
        return self.mismatched / self.compared if self.compared else None

    @property
    def candidate_error_rate(self) -> float | None:
        """Candidate failures over mirrored requests; None when nothing was mirrored."""
        return self.candidate_errors / self.mirrored if self.mirrored else None

    def totals(self) -> dict[str, Any]:
        return {"eligible": self.eligible, "sampled": self.sampled, "mirrored": self.mirrored,
                "compared": self.compared, "mismatched": self.mismatched,
                "mismatch_rate": _round(self.mismatch_rate), "candidate_errors": self.candidate_errors,
                "candidate_error_rate": _round(self.candidate_error_rate), "lost": self.lost,
                "queue_depth": self.queue_depth}

    def summary(self) -> dict[str, Any]:
        """Totals and per-endpoint summaries, small enough to journal."""
        out = {"mirror_id": self.mirror_id, "source": self.source, "target": self.target,
               "geography": self.geography, "since": self.since, "enabled": self.enabled,
               "totals": self.totals(), "endpoints": {e.route: e.summary() for e in self.endpoints}}
        return {**out, "note": self.note} if self.note else out


class ShadowMirror(Protocol):
    """Mirroring a geography's reads from the source region's API to a candidate region."""

    def start_mirror(self, source: str, target: str, geography: str, sample_rate: float, reads_only: bool,
                     ignore: IgnoreRules, *, mirror_id: str, recheck_seconds: float = 1.0) -> dict:
        """Make the source mirror `geography`'s sampled reads to `target`; idempotent for the same
        mirror_id (its report is kept), a new mirror_id starts a fresh report; returns once the source
        confirms; outputs to journal."""

    def stop_mirror(self, source: str) -> None:
        """Stop mirroring (the last report stays readable); a no-op when not mirroring; never fails
        because the source app is down (it reads the switch when it starts)."""

    def mirror_report(self, source: str) -> MirrorReport:
        """The source's mirror state and report; read-only; TransientProviderError when the source
        does not answer."""
