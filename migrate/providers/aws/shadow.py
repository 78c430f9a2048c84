"""ShadowMirror on AWS, for a source API that runs as many ECS tasks behind its ALB.

- The switch is an SSM parameter in the source region ("/game/<region>/api/shadow": under the API's SSM
  path, which its task role may already read), a String holding the same JSON document the lab writes
  to its file (migrate.providers.shadow.switch_document). Every source task polls it (SHADOW_PARAMETER),
  so starting and stopping never touches a task. The candidate and the second primary sample are the
  regions' ALBs (EcsRegionRuntime.api_endpoint), reached with Host and SNI set to the API's public name.
- The figures are the fleet's, from CloudWatch: each task prints its counters and latency values as EMF
  lines (SHADOW_METRICS=emf, app/shadow.py); the report sums them per route over [since, now] with
  GetMetricData (one period spanning the window, so a percentile is over the whole window, never an
  average of the tasks' percentiles). Sample diffs, loss and error kinds, and queue depth are not
  metrics: the report's note says where the tasks log them.
- "The source confirms" is a heartbeat: Game/Shadow Heartbeat per (Region, MirrorId), which a task
  prints while it mirrors; without one within `confirm_seconds`, start_mirror raises
  TransientProviderError (the switch stays written: a retry waits again).

Every AWS call goes through `clients.call`, so only ProviderError / TransientProviderError leave here."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.clients import AwsClients, ClientFactory, call
from migrate.providers.shadow import EndpointReport, IgnoreRules, MirrorReport, switch_document

WHERE = "aws shadow"
NAMESPACE = "Game/Shadow"
ROUTE_DIMENSIONS = ("Region", "MirrorId", "Route")
HEARTBEAT_DIMENSIONS = ("Region", "MirrorId")
HEARTBEAT = "Heartbeat"
# EMF metric (Count, deltas) → EndpointReport field.
COUNTERS = {"Eligible": "eligible", "Sampled": "sampled", "Mirrored": "mirrored", "Compared": "compared",
            "Mismatched": "mismatched", "Converged": "converged", "WithinStaleness": "within_staleness",
            "NotDiffed": "not_diffed", "CandidateErrors": "candidate_errors", "Lost": "lost"}
# EMF metric (Milliseconds, values) → EndpointReport.latency side.
LATENCIES = {"PrimaryLatency": "primary", "CandidateLatency": "candidate",
             "CandidateRoundTripLatency": "candidate_round_trip"}
LATENCY_STATS = {"n": "SampleCount", "p50": "p50", "p95": "p95"}
PARAMETER_NOT_FOUND = frozenset({"ParameterNotFound"})
MAX_QUERIES = 500  # GetMetricData's limit per call
HIGH_RESOLUTION_DAYS = 15  # after that CloudWatch keeps 5-minute, after 63 days hourly points only


class AwsShadowMirror:
    """ShadowMirror on SSM (the switch) and CloudWatch (the fleet's figures); see the module docstring."""

    def __init__(
        self,
        clients: ClientFactory | None = None,
        *,
        endpoint_url: str | None = None,
        api_url: Callable[[str], str | None] | Mapping[str, str] | None = None,
        api_host: str | None = "api.game.example",
        parameter_name: str = "/game/{region}/api/shadow",
        confirm_seconds: float = 300.0,
        poll_interval: float = 15.0,
        figures_ttl: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """
        clients: (service, region) -> boto3 client; None = AwsClients(endpoint_url=endpoint_url).
        api_url: region -> base URL of its API (EcsRegionRuntime.api_endpoint's url: https://<ALB DNS name>).
        api_host: Host and SNI of mirrored requests (the name the ALBs' certificate is for); None = the URL's.
        parameter_name: "{region}" template of the switch's SSM parameter (the source tasks' SHADOW_PARAMETER).
        confirm_seconds / poll_interval: how long and how often start_mirror waits for the tasks' heartbeat
            (EMF reaches CloudWatch within a minute or two).
        figures_ttl: a report's CloudWatch figures are reused this long (the observe step polls every second;
            the figures move every SHADOW_METRICS_SECONDS at best, and GetMetricData is billed per metric).
        sleep / clock: for tests; clock returns an aware UTC datetime.
        """
        self._clients = clients or AwsClients(endpoint_url=endpoint_url)
        self._api_url = api_url
        self.api_host = api_host
        self._parameter = parameter_name
        self.confirm_seconds = confirm_seconds
        self.poll_interval = poll_interval
        self.figures_ttl = figures_ttl
        self._figures: dict[tuple[str, str, bool], tuple[datetime, tuple[EndpointReport, ...]]] = {}
        self._sleep = sleep
        self._clock = clock or (lambda: datetime.now(UTC))

    def parameter(self, region: str) -> str:
        """The switch's SSM parameter name in `region` (pure)."""
        return self._parameter.format(region=region)

    # -- the switch -----------------------------------------------------------------------------
    def _read(self, source: str) -> tuple[dict[str, Any], str | None]:
        """(the switch document, why it is unusable); ({}, None) before the first start."""
        answer = call(self._clients("ssm", source), "get_parameter", source, absent=PARAMETER_NOT_FOUND,
                      Name=self.parameter(source))
        if answer is None:
            return {}, None
        try:
            doc = json.loads(answer["Parameter"]["Value"])
        except ValueError as exc:
            return {}, f"{self.parameter(source)} is not JSON: {exc}"
        return (doc, None) if isinstance(doc, dict) else ({}, f"{self.parameter(source)} is not a JSON object")

    def _write(self, source: str, doc: dict[str, Any]) -> None:
        # Compact JSON stays within a Standard parameter (4 KB); Intelligent-Tiering moves a larger one up.
        call(self._clients("ssm", source), "put_parameter", source, Name=self.parameter(source),
             Value=json.dumps(doc, sort_keys=True, separators=(",", ":")), Type="String", Overwrite=True,
             Tier="Intelligent-Tiering", Description="shadow-traffic switch, written by migrate")

    def _url(self, region: str) -> str:
        source = self._api_url
        url = source(region) if callable(source) else (source or {}).get(region)
        if not url:
            raise ProviderError(f"{region}'s API has no endpoint (no active ECS service behind its ALB)", where=WHERE,
                                hint=f"run stand-up-region for {region}; the source's service and ALB must "
                                     "carry Terraform's names (game-<short>-api), as the runtime adapter finds them")
        return url.rstrip("/")

    def start_mirror(self, source: str, target: str, geography: str, sample_rate: float, reads_only: bool,
                     ignore: IgnoreRules, *, mirror_id: str, recheck_seconds: float = 1.0) -> dict:
        if source == target:
            raise ProviderError(f"cannot mirror {source} to itself", where=WHERE)
        current, _ = self._read(source)
        if current.get("enabled") and current.get("mirror_id") != mirror_id and current.get("target") != target:
            raise ProviderError(f"{source} already mirrors {current.get('geography')} reads to "
                                f"{current.get('target')} (mirror {current.get('mirror_id')})", where=WHERE,
                                hint=f"roll back shadow-traffic for {current.get('target')} first: one "
                                     "mirror per source at a time")
        now = self._clock()
        # The same mirror id keeps its start, so its report keeps every figure since then.
        same = current.get("mirror_id") == mirror_id and _parse_time(current.get("started_at"))
        started = current["started_at"] if same else now.isoformat(timespec="seconds")
        extra = {"started_at": started, **({"api_host": self.api_host} if self.api_host else {})}
        doc = switch_document(source, target, geography, sample_rate, reads_only, ignore, mirror_id=mirror_id,
                              recheck_seconds=recheck_seconds, primary_url=self._url(source),
                              candidate_url=self._url(target), **extra)
        heard_since = datetime.fromisoformat(started)
        if current != doc:
            self._write(source, doc)
            heard_since = now  # a heartbeat from before this write may predate the tasks' reading it
        self._confirm(source, mirror_id, heard_since)
        return {"mirror_id": mirror_id, "switch": f"SSM parameter {self.parameter(source)} in {source}",
                "candidate_url": doc["candidate_url"], "geography": geography, "sample_rate": sample_rate,
                "since": started}

    def stop_mirror(self, source: str) -> None:
        current, error = self._read(source)
        if not current.get("enabled") and error is None:  # a garbled switch is overwritten: tasks keep their last
            return
        # Only the switch is written: a task that is down reads it when it starts.
        self._write(source, {"enabled": False, **{k: current.get(k) for k in (
            "mirror_id", "source", "target", "geography", "started_at")},
            "stopped_at": self._clock().isoformat(timespec="seconds")})

    def _confirm(self, source: str, mirror_id: str, since: datetime) -> None:
        deadline = self._clock() + timedelta(seconds=self.confirm_seconds)
        while not self._heartbeats(source, mirror_id, since, self._clock()):
            if self._clock() >= deadline:
                raise TransientProviderError(
                    f"no {NAMESPACE} {HEARTBEAT} from {source}'s tasks for mirror {mirror_id} within "
                    f"{self.confirm_seconds:g}s (the switch is written)", where=WHERE,
                    hint=f"the source's ECS tasks must run with SHADOW_PARAMETER={self.parameter(source)} and "
                         "SHADOW_METRICS=emf, may ssm:GetParameter it, and log through awslogs (see "
                         "runbooks/shadow-traffic.md, On AWS); their log names the problem; re-run to wait again")
            self._sleep(self.poll_interval)

    # -- the report -----------------------------------------------------------------------------
    def mirror_report(self, source: str) -> MirrorReport:
        doc, error = self._read(source)
        mirror_id = doc.get("mirror_id")
        if not mirror_id:
            return MirrorReport(source=source, available=True, enabled=False, mirror_id=None, config_error=error)
        since = _parse_time(doc.get("started_at")) or self._clock()
        until = _parse_time(doc.get("stopped_at")) if not doc.get("enabled") else None
        endpoints = self._cached_endpoints(source, mirror_id, since, until)
        return MirrorReport(
            source=source, available=True, enabled=bool(doc.get("enabled")), mirror_id=mirror_id,
            target=doc.get("target"), geography=doc.get("geography"), since=doc.get("started_at"),
            endpoints=endpoints, config_error=error,
            note=("the fleet's figures from CloudWatch (Game/Shadow); sample diffs, loss and candidate errors by "
                  "kind are not metrics: each source task logs its sample diffs (CloudWatch Logs Insights on its "
                  f"log group: filter MirrorId = '{mirror_id}' and ispresent(shadow_sample_diff))"))

    def _heartbeats(self, source: str, mirror_id: str, start: datetime, end: datetime) -> float:
        dims = {"Region": source, "MirrorId": mirror_id}
        got = self._metric_data(source, [_query("hb", HEARTBEAT, dims, "Sum")], start, end)
        return got.get("hb") or 0.0

    def _cached_endpoints(self, source: str, mirror_id: str, since: datetime,
                          until: datetime | None) -> tuple[EndpointReport, ...]:
        key, now = (source, mirror_id, until is None), self._clock()
        cached = self._figures.get(key)
        if cached is None or now - cached[0] >= timedelta(seconds=self.figures_ttl):
            cached = self._figures[key] = (now, self._endpoints(source, mirror_id, since, until or now))
        return cached[1]

    def _routes(self, source: str, mirror_id: str) -> list[str]:
        """The route templates the tasks reported for this mirror (CloudWatch lists metrics, not values)."""
        params: dict[str, Any] = {"Namespace": NAMESPACE, "MetricName": "Eligible", "Dimensions": [
            {"Name": "Region", "Value": source}, {"Name": "MirrorId", "Value": mirror_id}]}
        routes: set[str] = set()
        while True:
            answer = call(self._clients("cloudwatch", source), "list_metrics", source, **params) or {}
            for metric in answer.get("Metrics", []):
                dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                if set(dims) == set(ROUTE_DIMENSIONS):
                    routes.add(dims["Route"])
            if not answer.get("NextToken"):
                return sorted(routes)
            params["NextToken"] = answer["NextToken"]

    def _endpoints(self, source: str, mirror_id: str, start: datetime, end: datetime) -> tuple[EndpointReport, ...]:
        routes = self._routes(source, mirror_id)
        queries = []
        for i, route in enumerate(routes):
            dims = {"Region": source, "MirrorId": mirror_id, "Route": route}
            queries += [_query(f"r{i}_{metric.lower()}", metric, dims, "Sum") for metric in COUNTERS]
            queries += [_query(f"r{i}_{metric.lower()}_{key}", metric, dims, stat)
                        for metric in LATENCIES for key, stat in LATENCY_STATS.items()]
        got = self._metric_data(source, queries, start, end)
        return tuple(_endpoint(route, f"r{i}", got) for i, route in enumerate(routes))

    def _metric_data(self, region: str, queries: list[dict], start: datetime, end: datetime) -> dict[str, float | None]:
        """id → the value of each query's one datapoint over one period spanning [start, end]; None without one."""
        first, last, period = _span(start, end, self._clock())
        values: dict[str, float | None] = {q["Id"]: None for q in queries}
        for chunk in range(0, len(queries), MAX_QUERIES):
            params: dict[str, Any] = {"StartTime": first, "EndTime": last, "MetricDataQueries": [
                {**q, "MetricStat": {**q["MetricStat"], "Period": period}, "ReturnData": True}
                for q in queries[chunk:chunk + MAX_QUERIES]]}
            while True:
                answer = call(self._clients("cloudwatch", region), "get_metric_data", region, **params) or {}
                for result in answer.get("MetricDataResults", []):
                    if result.get("Values") and values.get(result["Id"]) is None:
                        values[result["Id"]] = float(result["Values"][0])
                if not answer.get("NextToken"):
                    break
                params["NextToken"] = answer["NextToken"]
        return values


def _query(qid: str, metric: str, dimensions: dict[str, str], stat: str) -> dict:
    return {"Id": qid, "MetricStat": {"Metric": {
        "Namespace": NAMESPACE, "MetricName": metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}, "Stat": stat}}


def _span(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime, int]:
    """(start, end, period) of one period covering [start, end], in the step CloudWatch allows for data that
    old. Starting early is harmless: every query names the mirror id."""
    step = 60 if now - start <= timedelta(days=HIGH_RESOLUTION_DAYS) else 3600
    first = datetime.fromtimestamp(math.floor(start.timestamp() / step) * step, UTC)
    period = max(step, math.ceil((end - first).total_seconds() / step) * step)
    return first, first + timedelta(seconds=period), period


def _endpoint(route: str, prefix: str, got: dict[str, float | None]) -> EndpointReport:
    counts = {field: int(got.get(f"{prefix}_{metric.lower()}") or 0) for metric, field in COUNTERS.items()}
    latency = {}
    for metric, side in LATENCIES.items():
        key = f"{prefix}_{metric.lower()}"
        latency[side] = {"count": int(got.get(f"{key}_n") or 0), "p50_ms": got.get(f"{key}_p50"),
                         "p95_ms": got.get(f"{key}_p95")}
    return EndpointReport(route=route, latency=latency, **counts)


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


def from_spec(spec: Any, env: Any, repo_root: Any = None, *, clients: ClientFactory | None = None,
              runtime: Any = None, **overrides: Any) -> AwsShadowMirror:
    """The adapter of an AWS environment: the spec's profile (or its moto endpoint_url); the regions' API
    URLs and public name from `runtime` (an EcsRegionRuntime) when given."""
    from migrate.providers.aws.clients import env_clients

    made, endpoint_url = (clients, getattr(env.aws, "endpoint_url", None)) if clients else env_clients(env)
    settings: dict[str, Any] = {"clients": made, "endpoint_url": endpoint_url}
    if runtime is not None:
        settings["api_url"] = lambda region: (e.url if (e := runtime.api_endpoint(region)) else None)
        settings["api_host"] = runtime.api_host
    settings.update(overrides)
    return AwsShadowMirror(**settings)
