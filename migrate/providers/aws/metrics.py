"""TrafficMetrics on AWS: CloudWatch GetMetricData for what shift-traffic's gates read.

- Per region, from the region's ALB (AWS/ApplicationELB, dimension LoadBalancer = the ALB's ARN suffix,
  the ALB found by name "game-<short>-api" as Terraform names it): RequestCount, HTTPCode_Target_5XX_Count
  + HTTPCode_ELB_5XX_Count (a dead target shows as ELB 502/503, so a region that lost its tasks counts its
  failures), TargetResponseTime p95 (server side; shown, not gated).
- Per player geography, from the players' own telemetry: the game client publishes its request latency
  (ms) as the custom metric Game/Players RequestLatency with dimension Geography (one region collects it,
  `telemetry_region`); the gate reads its p95 and SampleCount. ALB metrics cannot tell where a player is.
- Replication lag: AWS/RDS AuroraGlobalDBReplicationLag (ms, the Maximum) of the target's secondary
  cluster ("game-<region>"), published in that region.
- Reachability: the Route 53 health check of every region that should carry players; a check most of
  whose checkers report failure makes the region unreachable (what would take it out of DNS).

One GetMetricData call per region per evaluation, over one period spanning the window (a whole number of
minutes: ALB and RDS metrics have one-minute resolution), so a percentile is over the whole window, never an
average of percentiles. A missing datapoint is never read as a good figure: an ALB that served nothing
publishes no RequestCount (zero requests: a region that should carry players saw none), a silent telemetry
pipeline gives no p95, a missing lag datapoint is an unknown lag — each Inconclusive at the gate. Every call goes through `clients.call`: only project errors leave."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from migrate.providers.aws.clients import AwsClients, ClientFactory, call
from migrate.providers.aws.runtime import short_region
from migrate.providers.traffic import (
    GeographyLatency,
    Measurements,
    RegionErrors,
    WindowPlan,
)

ALB_NAMESPACE = "AWS/ApplicationELB"
RDS_NAMESPACE = "AWS/RDS"
LAG_METRIC = "AuroraGlobalDBReplicationLag"
LB_NOT_FOUND = frozenset({"LoadBalancerNotFound"})
HEALTH_CHECK_GONE = frozenset({"NoSuchHealthCheck"})
UNHEALTHY_SHARE = 0.82  # Route 53 calls a check healthy while more than 18 % of its checkers say so


def _minute_floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ident(text: str) -> str:
    """A GetMetricData query id: lower case letter first, then letters, digits and underscores."""
    return "q_" + "".join(c if c.isalnum() else "_" for c in text.lower())


class CloudWatchMetricsWindow:
    """One gate window: its start time; every evaluation asks CloudWatch for [start, now]."""

    def __init__(self, metrics: CloudWatchTrafficMetrics, plan: WindowPlan) -> None:
        self.m, self.plan = metrics, plan
        self.started = metrics.now()

    def sample(self) -> None:
        """Nothing to do: CloudWatch keeps the samples."""

    def measurements(self) -> Measurements:
        end = self.m.now()
        notes: list[str] = []
        regions = []
        for region in self.plan.regions:
            figures = self.m.alb_figures(region, self.started, end)
            if figures is None:
                notes.append(f"{region}: no load balancer named {self.m.load_balancer_name(region)}")
                regions.append(RegionErrors(region, None, None, region in self.plan.serving))
                continue
            requests, errors, p95 = figures
            regions.append(RegionErrors(region, requests, errors, region in self.plan.serving, p95))
        geographies = self.m.player_latency(self.plan.geographies, self.started, end)
        lag = self.m.max_lag_seconds(self.plan.lag_region, self.started, end) if self.plan.lag_region else None
        unreachable = self.m.unhealthy(self.plan.serving)
        window = (end - self.started).total_seconds()
        if window < 60:
            notes.append(f"window of {window:.0f} s: CloudWatch has one-minute resolution")
        return Measurements(tuple(regions), tuple(geographies), lag, self.plan.lag_region, unreachable, window,
                            tuple(notes), lag_judged=self.plan.lag_region is not None)

    def close(self) -> None:
        pass


class CloudWatchTrafficMetrics:
    """TrafficMetrics on CloudWatch and Route 53 (see the module docstring)."""

    def __init__(
        self,
        clients: ClientFactory | None = None,
        *,
        endpoint_url: str | None = None,
        load_balancer_name: str = "game-{short}-api",
        secondary_cluster_id: str = "game-{region}",
        telemetry_namespace: str = "Game/Players",
        telemetry_metric: str = "RequestLatency",
        telemetry_region: str = "us-east-1",
        health_check_id: Callable[[str], str | None] | Mapping[str, str] | None = None,
        recent_seconds: float = 900.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """
        clients: (service, region) -> boto3 client; None = AwsClients(endpoint_url=endpoint_url).
        load_balancer_name / secondary_cluster_id: "{region}"/"{short}" templates (Terraform's names).
        telemetry_*: where the players' latency metric lives (namespace, metric name in ms, collecting region).
        health_check_id: region -> its Route 53 health check id (e.g. Route53Dns.health_check_id); None = no
            reachability check.
        recent_seconds: the look-back of recent_errors (the error-budget preflight).
        clock: returns an aware UTC datetime (tests).
        """
        self._clients = clients or AwsClients(endpoint_url=endpoint_url)
        self.endpoint_url = endpoint_url
        self._lb_name = load_balancer_name
        self._cluster = secondary_cluster_id
        self.telemetry_namespace = telemetry_namespace
        self.telemetry_metric = telemetry_metric
        self.telemetry_region = telemetry_region
        self._health_check_id = health_check_id
        self.recent_seconds = recent_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lb_dimension: dict[str, str | None] = {}

    # ----------------------------------------------------------------- names

    def now(self) -> datetime:
        return self._clock()

    def load_balancer_name(self, region: str) -> str:
        return self._lb_name.format(region=region, short=short_region(region))

    def cluster_id(self, region: str) -> str:
        return self._cluster.format(region=region, short=short_region(region))

    def load_balancer_dimension(self, region: str) -> str | None:
        """The ALB's CloudWatch dimension ("app/<name>/<id>", its ARN suffix), or None without an ALB; cached."""
        if region not in self._lb_dimension:
            answer = call(self._clients("elbv2", region), "describe_load_balancers", region, absent=LB_NOT_FOUND,
                          Names=[self.load_balancer_name(region)])
            found = (answer or {}).get("LoadBalancers", [])
            arn = found[0]["LoadBalancerArn"] if found else None
            self._lb_dimension[region] = arn.split(":loadbalancer/", 1)[1] if arn else None
        return self._lb_dimension[region]

    # ---------------------------------------------------------------- queries

    def _span(self, start: datetime, end: datetime) -> tuple[datetime, datetime, int]:
        """(start, end, period) covering [start, end] with one period of whole minutes."""
        first = _minute_floor(start)
        period = max(60, math.ceil((end - first).total_seconds() / 60.0) * 60)
        return first, first + timedelta(seconds=period), period

    def _get(self, region: str, queries: list[dict], start: datetime, end: datetime) -> dict[str, float | None]:
        """id → the value of the one datapoint of each query over [start, end], None when there is none."""
        first, last, period = self._span(start, end)
        for q in queries:
            q["MetricStat"]["Period"] = period
            q["ReturnData"] = True
        values: dict[str, float | None] = {q["Id"]: None for q in queries}
        params: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": first, "EndTime": last,
                                  "ScanBy": "TimestampDescending"}
        while True:
            answer = call(self._clients("cloudwatch", region), "get_metric_data", region, **params) or {}
            for result in answer.get("MetricDataResults", []):
                points = result.get("Values") or []
                if points and values.get(result["Id"]) is None:
                    values[result["Id"]] = float(points[0])
            token = answer.get("NextToken")
            if not token:
                return values
            params["NextToken"] = token

    @staticmethod
    def _query(qid: str, namespace: str, metric: str, dimensions: dict[str, str], stat: str) -> dict:
        return {"Id": qid, "MetricStat": {"Metric": {
            "Namespace": namespace, "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}, "Stat": stat}}

    def alb_figures(self, region: str, start: datetime, end: datetime) -> tuple[int | None, int | None, float | None] | None:
        """(requests, 5xx, TargetResponseTime p95 in ms) of the region's ALB over [start, end]; None without an
        ALB. Requests None: no datapoint (no traffic reported)."""
        lb = self.load_balancer_dimension(region)
        if lb is None:
            return None
        dims = {"LoadBalancer": lb}
        got = self._get(region, [
            self._query("requests", ALB_NAMESPACE, "RequestCount", dims, "Sum"),
            self._query("target5xx", ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", dims, "Sum"),
            self._query("elb5xx", ALB_NAMESPACE, "HTTPCode_ELB_5XX_Count", dims, "Sum"),
            self._query("p95", ALB_NAMESPACE, "TargetResponseTime", dims, "p95"),
        ], start, end)
        requests = got["requests"]
        if requests is None:
            # No datapoint: the ALB served nothing (CloudWatch publishes no zero) — zero requests, not unknown.
            return 0, 0, None
        errors = int((got["target5xx"] or 0) + (got["elb5xx"] or 0))
        p95 = None if got["p95"] is None else got["p95"] * 1000
        return int(requests), errors, p95

    def player_latency(self, geographies: tuple[str, ...], start: datetime, end: datetime) -> list[GeographyLatency]:
        """p95 (ms) and sample count of the players' RequestLatency per geography over [start, end]."""
        queries = []
        for geo in geographies:
            dims = {"Geography": geo}
            queries.append(self._query(_ident(f"{geo}_p95"), self.telemetry_namespace, self.telemetry_metric,
                                       dims, "p95"))
            queries.append(self._query(_ident(f"{geo}_n"), self.telemetry_namespace, self.telemetry_metric,
                                       dims, "SampleCount"))
        got = self._get(self.telemetry_region, queries, start, end) if queries else {}
        source = f"players ({self.telemetry_namespace} {self.telemetry_metric})"
        out = []
        for geo in geographies:
            n, p95 = got.get(_ident(f"{geo}_n")), got.get(_ident(f"{geo}_p95"))
            out.append(GeographyLatency(geo, int(n or 0), p95, source))
        return out

    def players_latency(self, geographies: tuple[str, ...], start: float, end: float) -> list[GeographyLatency]:
        return self.player_latency(geographies, datetime.fromtimestamp(start, UTC),
                                   datetime.fromtimestamp(end, UTC))

    def max_lag_seconds(self, region: str, start: datetime, end: datetime) -> float | None:
        """The largest AuroraGlobalDBReplicationLag (in s) of the region's secondary over [start, end]."""
        got = self._get(region, [self._query("lag", RDS_NAMESPACE, LAG_METRIC,
                                             {"DBClusterIdentifier": self.cluster_id(region)}, "Maximum")],
                        start, end)
        return None if got["lag"] is None else got["lag"] / 1000.0

    def unhealthy(self, regions: tuple[str, ...]) -> dict[str, str]:
        """"<region> from Route 53 checkers" → why, for each region whose health check is failing."""
        out: dict[str, str] = {}
        if self._health_check_id is None:
            return out
        for region in regions:
            source = self._health_check_id
            check = source(region) if callable(source) else source.get(region)
            if not check:
                continue
            answer = call(self._clients("route53", "us-east-1"), "get_health_check_status", "us-east-1",
                          absent=HEALTH_CHECK_GONE, HealthCheckId=check)
            observations = (answer or {}).get("HealthCheckObservations", [])
            if not observations:
                continue
            failing = [o for o in observations
                       if not str(o.get("StatusReport", {}).get("Status", "")).startswith("Success")]
            if len(failing) / len(observations) >= UNHEALTHY_SHARE:
                out[f"{region} from Route 53 checkers"] = (f"{len(failing)} of {len(observations)} checkers report "
                                                          f"failure ({failing[0]['StatusReport'].get('Status', '')})")
        return out

    # --------------------------------------------------------------- protocol

    def open_window(self, plan: WindowPlan) -> CloudWatchMetricsWindow:
        return CloudWatchMetricsWindow(self, plan)

    def recent_errors(self, region: str) -> RegionErrors:
        end = self.now()
        figures = self.alb_figures(region, end - timedelta(seconds=self.recent_seconds), end)
        if figures is None:
            return RegionErrors(region, None, None)
        requests, errors, p95 = figures
        return RegionErrors(region, requests, errors, True, p95)


def from_spec(spec: Any, env: Any, repo_root: Any = None, *, clients: ClientFactory | None = None,
              dns: Any = None, **overrides: Any) -> CloudWatchTrafficMetrics:
    """The adapter of an AWS environment: the spec's profile (or its moto endpoint_url); reachability from
    `dns`'s health checks when given; the players' telemetry collected in the source region."""
    from migrate.providers.aws.clients import env_clients

    made, endpoint_url = (clients, getattr(env.aws, "endpoint_url", None)) if clients else env_clients(env)
    settings: dict[str, Any] = {"clients": made, "endpoint_url": endpoint_url,
                                "telemetry_region": getattr(spec, "source_region", "us-east-1")}
    if dns is not None:
        settings["health_check_id"] = dns.health_check_id
    settings.update(overrides)
    return CloudWatchTrafficMetrics(**settings)
