"""CloudWatchTrafficMetrics: the ALB lookup and the replication-lag query against a real moto server; the
percentile queries (moto answers any pNN statistic of GetMetricData with a 500) and Route 53 health-check
status with Stubber, which also pins the exact queries: one period spanning the window, the ALB's ARN
suffix as dimension, 5xx from both the targets and the load balancer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from migrate.phasekit.gates import Thresholds, evaluate
from migrate.providers.aws.metrics import CloudWatchTrafficMetrics, from_spec
from migrate.providers.traffic import Routing, TrafficMetrics, WindowPlan

from .conftest import SOURCE, TOKYO, StubbedClients

T0 = datetime(2027, 4, 1, 10, 0, 20, tzinfo=UTC)
MIX = {"apac": 0.6, "na": 0.25, "eu": 0.15}
LB_ARN = "arn:aws:elasticloadbalancing:{region}:123456789012:loadbalancer/app/game-{short}-api/50dc6c495c0c9188"
THRESHOLDS = Thresholds(0.005, {"apac": 250, "na": 250, "eu": 300}, 5, 100)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def plan(weights=None) -> WindowPlan:
    routing = Routing(weights or {SOURCE: 75, TOKYO: 25}, (), 60)
    return WindowPlan((SOURCE, TOKYO), routing.serving(), routing, ("apac", "na", "eu"), MIX, TOKYO)


def make_alb(aws, region: str, name: str, cidr: str) -> dict:
    ec2 = aws("ec2", region)
    vpc = ec2.create_vpc(CidrBlock=f"{cidr}.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr}.{i}.0/24", AvailabilityZone=f"{region}{z}")
               ["Subnet"]["SubnetId"] for i, z in enumerate("ac")]
    return aws("elbv2", region).create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]


# --- against moto -------------------------------------------------------------------------------
def test_the_adapter_is_a_traffic_metrics(moto, moto_clients):
    metrics: TrafficMetrics = CloudWatchTrafficMetrics(moto_clients, endpoint_url=moto)
    assert metrics.load_balancer_name(TOKYO) == "game-apne1-api"
    assert metrics.cluster_id(TOKYO) == "game-ap-northeast-1"


def test_the_albs_dimension_is_its_arn_suffix(moto, moto_clients, aws):
    lb = make_alb(aws, TOKYO, "game-apne1-api", "10.1")
    metrics = CloudWatchTrafficMetrics(moto_clients, endpoint_url=moto)
    assert metrics.load_balancer_dimension(TOKYO) == lb["LoadBalancerArn"].split(":loadbalancer/")[1]
    assert metrics.load_balancer_dimension(TOKYO).startswith("app/game-apne1-api/")
    assert metrics.load_balancer_dimension(SOURCE) is None  # no ALB there
    assert metrics.recent_errors(SOURCE).requests is None


def test_replication_lag_is_the_largest_datapoint_of_the_window_in_seconds(moto, moto_clients, aws):
    now = datetime.now(UTC)
    cw = aws("cloudwatch", TOKYO)
    for minutes_ago, ms in ((4, 120.0), (3, 900.0), (1, 300.0), (30, 9000.0)):
        cw.put_metric_data(Namespace="AWS/RDS", MetricData=[{
            "MetricName": "AuroraGlobalDBReplicationLag", "Value": ms, "Unit": "Milliseconds",
            "Timestamp": now - timedelta(minutes=minutes_ago),
            "Dimensions": [{"Name": "DBClusterIdentifier", "Value": "game-ap-northeast-1"}]}])
    metrics = CloudWatchTrafficMetrics(moto_clients, endpoint_url=moto)
    # the 9 s spike 30 minutes ago is outside the window
    assert metrics.max_lag_seconds(TOKYO, now - timedelta(minutes=5), now) == pytest.approx(0.9)
    assert metrics.max_lag_seconds("eu-central-1", now - timedelta(minutes=5), now) is None  # unknown, not 0


# --- with Stubber -------------------------------------------------------------------------------
def _query(qid, namespace, metric, dims, stat, period):
    return {"Id": qid, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric,
                   "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]},
        "Stat": stat, "Period": period}}


def _results(values: dict) -> dict:
    return {"MetricDataResults": [
        {"Id": qid, "Label": qid, "StatusCode": "Complete",
         "Timestamps": [] if value is None else [T0.replace(second=0)],
         "Values": [] if value is None else [value]} for qid, value in values.items()]}


def _script_alb(clients, region, short, values, period, start, end):
    clients.stub("elbv2", region).add_response(
        "describe_load_balancers",
        {"LoadBalancers": [{"LoadBalancerArn": LB_ARN.format(region=region, short=short),
                            "LoadBalancerName": f"game-{short}-api"}]},
        {"Names": [f"game-{short}-api"]})
    dims = {"LoadBalancer": f"app/game-{short}-api/50dc6c495c0c9188"}
    ns = "AWS/ApplicationELB"
    clients.stub("cloudwatch", region).add_response("get_metric_data", _results(values), {
        "MetricDataQueries": [_query("requests", ns, "RequestCount", dims, "Sum", period),
                              _query("target5xx", ns, "HTTPCode_Target_5XX_Count", dims, "Sum", period),
                              _query("elb5xx", ns, "HTTPCode_ELB_5XX_Count", dims, "Sum", period),
                              _query("p95", ns, "TargetResponseTime", dims, "p95", period)],
        "StartTime": start, "EndTime": end, "ScanBy": "TimestampDescending"})


def _script_players(clients, values, period, start, end):
    queries = []
    for geo in ("apac", "na", "eu"):
        dims = {"Geography": geo}
        queries += [_query(f"q_{geo}_p95", "Game/Players", "RequestLatency", dims, "p95", period),
                    _query(f"q_{geo}_n", "Game/Players", "RequestLatency", dims, "SampleCount", period)]
    clients.stub("cloudwatch", SOURCE).add_response("get_metric_data", _results(values), {
        "MetricDataQueries": queries, "StartTime": start, "EndTime": end, "ScanBy": "TimestampDescending"})


def _script_lag(clients, value_ms, period, start, end):
    clients.stub("cloudwatch", TOKYO).add_response("get_metric_data", _results({"lag": value_ms}), {
        "MetricDataQueries": [_query("lag", "AWS/RDS", "AuroraGlobalDBReplicationLag",
                                     {"DBClusterIdentifier": "game-ap-northeast-1"}, "Maximum", period)],
        "StartTime": start, "EndTime": end, "ScanBy": "TimestampDescending"})


def _health(clients, check_id, statuses):
    clients.stub("route53", "us-east-1").add_response("get_health_check_status", {"HealthCheckObservations": [
        {"Region": "us-east-1", "IPAddress": f"15.177.0.{i}",
         "StatusReport": {"Status": status, "CheckedTime": T0}} for i, status in enumerate(statuses)]},
        {"HealthCheckId": check_id})


def test_a_window_reads_albs_players_and_lag_over_one_period_and_passes():
    clients = StubbedClients()
    clock = Clock(T0)
    metrics = CloudWatchTrafficMetrics(clients, clock=clock, health_check_id={SOURCE: "hc-1", TOKYO: "hc-2"})
    window = metrics.open_window(plan())
    clock.t = T0 + timedelta(minutes=29, seconds=10)  # a 30-minute bake less the TTL
    start, period = T0.replace(second=0), 30 * 60
    end = start + timedelta(seconds=period)
    _script_alb(clients, SOURCE, "use1", {"requests": 90000.0, "target5xx": 12.0, "elb5xx": 3.0, "p95": 0.041},
                period, start, end)
    _script_alb(clients, TOKYO, "apne1", {"requests": 30000.0, "target5xx": 4.0, "elb5xx": None, "p95": 0.29},
                period, start, end)
    _script_players(clients, {"q_apac_p95": 212.0, "q_apac_n": 70000.0, "q_na_p95": 230.0, "q_na_n": 30000.0,
                              "q_eu_p95": 280.0, "q_eu_n": 18000.0}, period, start, end)
    _script_lag(clients, 850.0, period, start, end)
    # serving regions in name order: Tokyo's check first
    _health(clients, "hc-2", ["Success: HTTP Status Code 200, OK"] * 7 + ["Failure: Connection timed out."])
    _health(clients, "hc-1", ["Success: HTTP Status Code 200, OK"] * 8)

    m = window.measurements()
    clients.assert_done()
    regions = {r.region: r for r in m.regions}
    assert (regions[SOURCE].requests, regions[SOURCE].errors) == (90000, 15)  # target + ELB 5xx
    assert (regions[TOKYO].requests, regions[TOKYO].errors) == (30000, 4)
    assert regions[TOKYO].p95_ms == pytest.approx(290.0)
    geos = {g.geography: g for g in m.geographies}
    assert (geos["apac"].samples, geos["apac"].p95_ms) == (70000, 212.0)
    assert geos["apac"].source.startswith("players")
    assert m.replication_lag_seconds == pytest.approx(0.85) and m.lag_region == TOKYO
    assert m.unreachable == {}  # one checker of eight failing does not take a region out of DNS
    assert m.window_seconds == pytest.approx(29 * 60 + 10)
    assert evaluate(m, THRESHOLDS).verdict == "pass"


def test_no_datapoints_are_no_data_never_a_pass():
    clients = StubbedClients()
    clock = Clock(T0)
    metrics = CloudWatchTrafficMetrics(clients, clock=clock)
    window = metrics.open_window(plan())
    clock.t = T0 + timedelta(seconds=90)
    start, period = T0.replace(second=0), 120
    end = start + timedelta(seconds=period)
    nothing = {"requests": None, "target5xx": None, "elb5xx": None, "p95": None}
    _script_alb(clients, SOURCE, "use1", nothing, period, start, end)
    _script_alb(clients, TOKYO, "apne1", nothing, period, start, end)
    _script_players(clients, {f"q_{g}_{s}": None for g in ("apac", "na", "eu") for s in ("p95", "n")},
                    period, start, end)
    _script_lag(clients, None, period, start, end)
    m = window.measurements()
    clients.assert_done()
    assert [(r.requests, r.errors) for r in m.regions] == [(0, 0), (0, 0)]
    assert all(g.samples == 0 and g.p95_ms is None for g in m.geographies)
    assert m.replication_lag_seconds is None
    result = evaluate(m, THRESHOLDS)
    assert result.verdict == "inconclusive"
    assert "us-east-1: no request in the window" in result.reasons


def test_a_region_whose_checkers_fail_is_unreachable_and_the_gate_fails():
    clients = StubbedClients()
    metrics = CloudWatchTrafficMetrics(clients, health_check_id=lambda region: f"hc-{region}")
    _health(clients, f"hc-{TOKYO}", ["Failure: HTTP Status Code 503, Service Unavailable"] * 7
            + ["Success: HTTP Status Code 200, OK"])
    assert metrics.unhealthy((TOKYO,)) == {
        f"{TOKYO} from Route 53 checkers": "7 of 8 checkers report failure "
                                          "(Failure: HTTP Status Code 503, Service Unavailable)"}
    clients.assert_done()


def test_recent_errors_look_back_fifteen_minutes():
    clients = StubbedClients()
    metrics = CloudWatchTrafficMetrics(clients, clock=Clock(T0))
    start = (T0 - timedelta(minutes=15)).replace(second=0)
    period = 16 * 60
    _script_alb(clients, SOURCE, "use1", {"requests": 5000.0, "target5xx": 1.0, "elb5xx": 0.0, "p95": 0.04},
                period, start, start + timedelta(seconds=period))
    recent = metrics.recent_errors(SOURCE)
    clients.assert_done()
    assert (recent.requests, recent.errors, recent.error_rate) == (5000, 1, 0.0002)


def test_from_spec_takes_reachability_from_the_dns_adapter(moto):
    env = SimpleNamespace(kind="aws", aws=SimpleNamespace(endpoint_url=moto, profile="p", account_id="0" * 12))
    dns = SimpleNamespace(health_check_id=lambda region: f"hc-{region}")
    metrics = from_spec(SimpleNamespace(source_region=SOURCE), env, None, dns=dns)
    assert metrics.telemetry_region == SOURCE and metrics.endpoint_url == moto
