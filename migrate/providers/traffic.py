"""What shift-traffic asks of the world beyond protocols.py: Route 53 routing past one weighted record
(the weighted set as a whole, latency records, the swap between the two) and the metrics its gates
read. Optional abilities, so they are Protocols of their own (DESIGN §8.1); the value types are plain
data that adapters build and engine/gates.py judges.

Every method raises only project errors (ProviderError, TransientProviderError for retryable ones)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from migrate.providers.protocols import ApiEndpoint


# --- routing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Routing:
    """How the API name routes players now, as Route 53 holds it."""

    weights: Mapping[str, int]  # region → weight of its weighted record ("<region>-weighted")
    latency: tuple[str, ...]  # regions with a latency record ("<region>-latency"), sorted
    ttl_seconds: int  # how long a resolver may keep an answer: a change reaches players this much later
    health_checks: Mapping[str, str | None] = field(default_factory=dict)  # region → health check of its record

    @property
    def mode(self) -> str:
        """"latency" when latency records exist (players' resolvers prefer them), "weighted", or "none"."""
        if self.latency:
            return "latency"
        return "weighted" if self.weights else "none"

    def serving(self) -> tuple[str, ...]:
        """Regions that receive players: the latency regions, else weighted regions with weight > 0
        (every weighted region when all weights are 0, as Route 53 answers then)."""
        if self.latency:
            return tuple(self.latency)
        positive = tuple(sorted(r for r, w in self.weights.items() if w > 0))
        return positive or tuple(sorted(self.weights))

    def share(self, region: str) -> float:
        """The share of resolutions `region` gets from the weighted set (0 in latency mode)."""
        if self.latency:
            return 0.0
        total = sum(self.weights.values())
        if total == 0:
            return 1.0 / len(self.weights) if region in self.weights else 0.0
        return self.weights.get(region, 0) / total

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "weights": dict(sorted(self.weights.items())), "latency": list(self.latency),
                "ttl_seconds": self.ttl_seconds, "health_checks": dict(sorted(self.health_checks.items()))}


class TrafficDns(Protocol):
    """Route 53 abilities shift-traffic needs on top of protocols.Dns (same adapter, same record names); each
    acts on the name the adapter is bound to: one geography's pool (protocols.Dns.pool)."""

    def record_ttl(self) -> int:
        """Seconds a resolver keeps an answer of the API name (lab 5, AWS 60 for ALIAS to an ALB); pure."""

    def routing(self) -> Routing:
        """The weighted and latency records of the API name now; read-only."""

    def set_weights(self, weights: Mapping[str, int]) -> dict:
        """UPSERT the listed regions' existing weighted records with these weights (0..255) in ONE change batch
        (so the split changes at once), then wait INSYNC; returns the change info."""

    def use_latency_routing(self, endpoints: Mapping[str, ApiEndpoint]) -> dict:
        """ONE change batch: a latency record per listed region (SetIdentifier "<region>-latency", its health
        check) and every weighted record of the API name deleted (Route 53 refuses mixed routing policies on one
        name); wait INSYNC. Idempotent. Returns {"latency": [...], "removed_weights": {...}, change info}."""

    def use_weighted_routing(self, weights: Mapping[str, int], endpoints: Mapping[str, ApiEndpoint]) -> dict:
        """ONE change batch: a weighted record per listed region with that weight (created from its endpoint when
        absent, health check attached) and every latency record of the API name deleted; wait INSYNC. Idempotent."""

    def remove_latency(self, region: str) -> None:
        """Delete `region`'s latency record (others stay); a no-op when absent."""


# --- measurements -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegionErrors:
    """Requests a region served in a window and how many of them failed (5xx)."""

    region: str
    requests: int | None  # None: unknown (the region's metrics could not be read)
    errors: int | None  # None: unknown
    required: bool = True  # True: the region should carry players now, so no request is "no data"
    p95_ms: float | None = None  # server-side p95 (app histogram / ALB TargetResponseTime); shown, not gated

    @property
    def error_rate(self) -> float | None:
        """errors / requests; None without requests."""
        if not self.requests or self.errors is None:
            return None
        return self.errors / self.requests


@dataclass(frozen=True)
class GeographyLatency:
    """The p95 players of one geography saw in a window, and over how many requests."""

    geography: str
    samples: int  # requests the p95 is over (0: none)
    p95_ms: float | None  # None: no data
    source: str = ""  # where the figure comes from, e.g. "players (CloudWatch)", "app histograms + link RTT"


@dataclass(frozen=True)
class Measurements:
    """Everything one gate evaluation looks at, measured over one window."""

    regions: tuple[RegionErrors, ...]
    geographies: tuple[GeographyLatency, ...]
    replication_lag_seconds: float | None  # the largest sample in the window; None: unknown
    lag_region: str | None = None  # whose replica the lag is of
    unreachable: Mapping[str, str] = field(default_factory=dict)  # "<region> from <geography>" → why
    window_seconds: float = 0.0  # how long the window measured
    notes: tuple[str, ...] = ()  # context for the operator (counter resets, estimates)
    lag_judged: bool = True  # False: the change has no replica in play (a window planned with no lag_region)


@dataclass(frozen=True)
class WindowPlan:
    """What a metrics window should watch."""

    regions: tuple[str, ...]  # every region with an API: requests and errors are counted for each
    serving: tuple[str, ...]  # regions that should carry players now (probed; no request there is "no data")
    routing: Routing  # how the shifted geography's pool routes its players now
    geographies: tuple[str, ...]  # player geographies to report a p95 for
    mix: Mapping[str, float]  # geography → share of players (the spec's traffic_mix)
    lag_region: str | None  # whose replication lag to sample (the target's secondary); None: no replica in play, not judged
    routes: Mapping[str, Routing] = field(default_factory=dict)  # geography → its pool's routing (absent: `routing`)

    def route_of(self, geography: str) -> Routing:
        """How `geography`'s players are routed now (lab: which links to probe, how to mix latencies)."""
        return self.routes.get(geography, self.routing)


class MetricsWindow(Protocol):
    """One gate window, opened when a traffic weight has reached players."""

    def sample(self) -> None:
        """Take interim samples (probes, replication lag) without blocking for more than a fraction of a second;
        call it at every poll of the bake."""

    def measurements(self) -> Measurements:
        """Everything measured from the window's opening until now; may be called again (interim checks)."""

    def close(self) -> None:
        """Release what the window holds (threads, connections); idempotent."""


class TrafficMetrics(Protocol):
    """Per-region error rates, per-geography p95 and replication lag, as the gates need them
    (AWS: CloudWatch; lab: the apps' /metrics, probes through the WAN links, the lab's PostgreSQL)."""

    def open_window(self, plan: WindowPlan) -> MetricsWindow:
        """Start measuring now (baseline counters, start time); cheap."""

    def players_latency(self, geographies: tuple[str, ...], start: float, end: float) -> list[GeographyLatency]:
        """Each geography's p95 as its players measured it over the past [start, end] (epoch seconds); read-only."""

    def recent_errors(self, region: str) -> RegionErrors:
        """The region's requests and 5xx over its recent past (AWS: the last 15 minutes; lab: since its app
        started), for the error-budget preflight; read-only."""
