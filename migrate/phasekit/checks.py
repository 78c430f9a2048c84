"""Checks and predicates more than one phase asks (each phase module keeps its own checks)."""

from __future__ import annotations

from migrate.errors import ProviderError
from migrate.phasekit.model import CheckResult, Target
from migrate.providers.protocols import ApiEndpoint, ReplicationLag


def lag_within_budget(target: Target, lag: ReplicationLag) -> bool:
    """Streaming, and within both budgets; a figure the provider cannot give (Aurora has no byte
    lag) is not held against it, but an unknown time lag never passes."""
    t = target.env.timings
    return (lag.state == "streaming" and lag.lag_seconds is not None
            and lag.lag_seconds <= t.lag_budget_seconds
            and (lag.lag_bytes is None or lag.lag_bytes <= t.lag_budget_bytes))


def geography_routing(t: Target) -> CheckResult:
    """The API name answers the region's geography with its own pool, and the pool holds the source's record."""
    geo, source = t.spec.regions[t.region].geography, t.spec.source_region
    dns = t.providers.dns
    front = dns.geography_front()
    pool = dns.pool(geo)
    routing = pool.routing()
    ok = front.get(geo) == pool.record_name and (source in routing.weights or source in routing.latency)
    return CheckResult("geography-routing", ok,
                       f"{geo} players → {front.get(geo) or 'no geolocation record'}; pool "
                       f"{'holds' if ok else 'lacks'} {source}'s record",
                       "run stand-up-region for the region: its geography-routing step scopes the API name "
                       "(runbooks/shift-traffic.md)")


def api_endpoints(t: Target, regions) -> dict[str, ApiEndpoint]:
    """region → where its API answers, for writing players' records to it; ProviderError naming a region
    whose API is not deployed (no record can send players there)."""
    runtime, out = t.providers.runtime, {}
    for region in regions:
        endpoint = runtime.api_endpoint(region)
        if endpoint is None:
            raise ProviderError(f"{region}'s API is not deployed: no endpoint to route players to",
                                hint=f"run stand-up-region for {region}" if region != t.spec.source_region
                                else "the source region's API must be up")
        out[region] = endpoint
    return out
