"""AwsShadowMirror: the switch in SSM and the fleet's figures in CloudWatch, against a real moto server;
the figures are put exactly as CloudWatch extracts them from the app's own EMF lines (app/shadow.py
EmfEmitter), so the app and the adapter cannot drift apart. moto answers any pNN statistic of
GetMetricData with a 500, so against moto the percentile queries are left out (and read as no data),
and Stubber pins them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from app.shadow import EmfEmitter, ShadowConfig, ShadowReport
from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.shadow import (
    COUNTERS,
    HEARTBEAT,
    HEARTBEAT_DIMENSIONS,
    LATENCIES,
    NAMESPACE,
    ROUTE_DIMENSIONS,
    AwsShadowMirror,
    from_spec,
)
from migrate.providers.shadow import IgnoreRules, ShadowMirror, switch_document

from .conftest import SOURCE, TOKYO, StubbedClients

PARAMETER = "/game/us-east-1/api/shadow"
URLS = {SOURCE: "https://game-use1-api-1.us-east-1.elb.amazonaws.com",
        TOKYO: "https://game-apne1-api-2.ap-northeast-1.elb.amazonaws.com/"}
IGNORE = IgnoreRules(("server_time",))
PLAYERS, BOARD = "/v1/players/{player_id}", "/v1/leaderboard/regional"


class NoPercentiles:
    """A moto CloudWatch client that leaves pNN queries out of GetMetricData (moto answers them with a 500)."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_metric_data(self, MetricDataQueries, **params):  # noqa: N803 (boto3's parameter name)
        kept = [q for q in MetricDataQueries if not q["MetricStat"]["Stat"].startswith("p")]
        return self._client.get_metric_data(MetricDataQueries=kept, **params)


@pytest.fixture
def make(moto, moto_clients, aws):
    """The adapter against moto; while it waits for a heartbeat, the tasks of mirror "apne1-1" print one."""
    def clients(service, region):
        client = moto_clients(service, region)
        return NoPercentiles(client) if service == "cloudwatch" else client

    def build(**overrides) -> AwsShadowMirror:
        settings = dict(api_url=URLS, confirm_seconds=60, poll_interval=5, figures_ttl=0,
                        sleep=lambda _s: heartbeat(aws, "apne1-1"))
        settings.update(overrides)
        return AwsShadowMirror(clients, **settings)

    return build


def put_emf(cw, doc: dict) -> None:
    """Put one EMF document's metrics as CloudWatch Logs extracts them (each directive × dimension set)."""
    if "_aws" not in doc:
        return  # a plain log line (a sample diff): no metric
    at = datetime.fromtimestamp(doc["_aws"]["Timestamp"] / 1000, UTC)
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for dimensions in directive["Dimensions"]:
            data = []
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                data.append({"MetricName": metric["Name"], "Unit": metric["Unit"], "Timestamp": at,
                             "Dimensions": [{"Name": d, "Value": doc[d]} for d in dimensions],
                             ("Values" if isinstance(value, list) else "Value"): value})
            cw.put_metric_data(Namespace=directive["Namespace"], MetricData=data)


def task_report(mirror_id: str, players: dict, board: dict | None = None) -> ShadowReport:
    """One source task's report for `mirror_id` with these counters (EndpointStats attribute → value)."""
    doc = switch_document(SOURCE, TOKYO, "apac", 1.0, True, IGNORE, mirror_id=mirror_id, recheck_seconds=1.0,
                          primary_url="http://p", candidate_url="http://c")
    report = ShadowReport(ShadowConfig.parse(doc))
    for route, counters in ((PLAYERS, players), (BOARD, board or {})):
        if counters:
            stats = report.endpoint(route)
            for name, value in counters.items():
                setattr(stats, name, value)
    return report


def heartbeat(aws, mirror_id: str) -> None:
    """What a task that picked the switch up prints (its heartbeat line), put as CloudWatch extracts it."""
    report = task_report(mirror_id, {})
    for doc in EmfEmitter(SOURCE).documents(report.config, report):
        put_emf(aws("cloudwatch", SOURCE), doc)


def switch(aws) -> tuple[dict, int]:
    p = aws("ssm", SOURCE).get_parameter(Name=PARAMETER)["Parameter"]
    assert p["Type"] == "String"
    return json.loads(p["Value"]), p["Version"]


def start(mirror: ShadowMirror, mirror_id: str = "apne1-1", target: str = TOKYO) -> dict:
    return mirror.start_mirror(SOURCE, target, "apac", 0.05, True, IGNORE, mirror_id=mirror_id, recheck_seconds=1.0)


# --- the switch ------------------------------------------------------------------------------------

def test_before_any_start_the_source_can_mirror_and_does_not(make):
    report = make().mirror_report(SOURCE)
    assert (report.available, report.enabled, report.mirror_id) == (True, False, None)


def test_start_writes_the_switch_once_and_returns_when_the_tasks_heartbeat(make, aws):
    out = start(make())
    doc, version = switch(aws)
    assert doc == switch_document(SOURCE, TOKYO, "apac", 0.05, True, IGNORE, mirror_id="apne1-1", recheck_seconds=1.0,
                                  primary_url=URLS[SOURCE], candidate_url=URLS[TOKYO].rstrip("/"),
                                  api_host="api.game.example", started_at=out["since"])
    assert ShadowConfig.parse(doc).candidate_url == URLS[TOKYO].rstrip("/")  # the app takes it as it is
    assert out["switch"] == f"SSM parameter {PARAMETER} in {SOURCE}" and out["mirror_id"] == "apne1-1"
    # Idempotent: the same mirror id again neither rewrites the switch nor waits (its heartbeat is there).
    again = make(sleep=lambda _s: pytest.fail("waited for a heartbeat that is already there"))
    assert start(again)["since"] == out["since"]
    assert switch(aws)[1] == version
    report = again.mirror_report(SOURCE)
    assert (report.enabled, report.mirror_id, report.target, report.geography) == (True, "apne1-1", TOKYO, "apac")


def test_stop_writes_the_switch_off_keeps_the_mirror_id_and_is_a_no_op_when_off(make, aws):
    mirror = make()
    mirror.stop_mirror(SOURCE)  # never started: nothing written
    with pytest.raises(aws("ssm").exceptions.ParameterNotFound):
        aws("ssm").get_parameter(Name=PARAMETER)
    start(mirror)
    mirror.stop_mirror(SOURCE)
    doc, version = switch(aws)
    assert doc["enabled"] is False and doc["mirror_id"] == "apne1-1" and doc["stopped_at"]
    assert not ShadowConfig.parse(doc).enabled
    mirror.stop_mirror(SOURCE)
    assert switch(aws)[1] == version
    report = mirror.mirror_report(SOURCE)
    assert not report.enabled and report.mirror_id == "apne1-1"  # the last report stays readable
    assert start(mirror)["since"] == doc["started_at"]  # the same mirror again: its report goes on
    aws("ssm").put_parameter(Name=PARAMETER, Value="{garbled", Type="String", Overwrite=True)
    assert f"{PARAMETER} is not JSON" in mirror.mirror_report(SOURCE).config_error
    mirror.stop_mirror(SOURCE)  # the tasks keep their last good switch: a garbled one is overwritten
    assert switch(aws)[0]["enabled"] is False


def test_a_second_region_is_refused_while_one_is_mirrored(make, aws):
    start(make())
    with pytest.raises(ProviderError, match="already mirrors apac reads to ap-northeast-1") as caught:
        start(make(), mirror_id="euc1-1", target="eu-central-1")
    assert "roll back shadow-traffic for ap-northeast-1" in caught.value.hint


def test_no_heartbeat_within_the_bound_is_a_transient_error_naming_the_setup(make, aws):
    now = [datetime.now(UTC)]

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    mirror = make(confirm_seconds=60, poll_interval=15, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(TransientProviderError, match="no Game/Shadow Heartbeat") as caught:
        start(mirror)
    assert f"SHADOW_PARAMETER={PARAMETER}" in caught.value.hint and "SHADOW_METRICS=emf" in caught.value.hint
    assert switch(aws)[0]["enabled"] is True  # written: a retry waits again


def test_a_source_without_an_api_endpoint_is_named(make):
    with pytest.raises(ProviderError, match="ap-northeast-1's API has no endpoint"):
        start(make(api_url={SOURCE: URLS[SOURCE]}))


# --- the report: the fleet's EMF, summed -----------------------------------------------------------

def test_the_report_sums_every_tasks_emf_per_route(make, aws):
    mirror = make()
    start(mirror)
    cw = aws("cloudwatch", SOURCE)
    task_a = task_report("apne1-1", {"eligible": 100, "sampled": 10, "mirrored": 10, "compared": 9,
                                     "mismatched": 1, "converged": 2, "within_staleness": 1})
    task_b = task_report("apne1-1", {"eligible": 50, "sampled": 5, "mirrored": 5, "compared": 4,
                                     "not_diffed": 1}, board={"eligible": 20, "sampled": 2, "mirrored": 2})
    task_b.endpoint(PLAYERS).candidate_errors["timeout"] += 1
    task_b.endpoint(PLAYERS).loss["queue_full"] += 3
    for ms in (12.0, 14.0, 80.0):
        task_a.endpoint(PLAYERS).candidate_round_trip_ms.record(ms)
    task_b.endpoint(PLAYERS).candidate_round_trip_ms.record(150.0)
    for task in (task_a, task_b):
        emf = EmfEmitter(SOURCE)
        for doc in emf.documents(task.config, task):
            put_emf(cw, doc)
        task.endpoint(PLAYERS).eligible += 1  # a second interval: only the delta is printed …
        for doc in emf.documents(task.config, task):
            put_emf(cw, doc)
    other = task_report("apne1-0", {"eligible": 999, "compared": 999, "mismatched": 999})  # … another mirror's
    for doc in EmfEmitter(SOURCE).documents(other.config, other):
        put_emf(cw, doc)

    report = mirror.mirror_report(SOURCE)
    board, players = report.endpoints  # sorted by route
    assert (players.route, board.route) == (PLAYERS, BOARD)
    assert (players.eligible, players.sampled, players.mirrored, players.compared) == (152, 15, 15, 13)
    assert (players.mismatched, players.converged, players.within_staleness, players.not_diffed) == (1, 2, 1, 1)
    assert (players.candidate_errors, players.lost) == (1, 3)
    assert (board.eligible, board.mirrored, board.compared) == (20, 2, 0)
    assert players.latency["candidate_round_trip"]["count"] == 4  # percentiles: see the Stubber test
    assert report.compared == 13 and report.mismatch_rate == pytest.approx(1 / 13)
    assert players.sample_diffs == () and "shadow_sample_diff" in report.note
    assert report.summary()["note"] == report.note


def test_the_apps_emf_lines_declare_exactly_what_the_report_reads():
    report = task_report("m", {"eligible": 1})
    stats = report.endpoint(PLAYERS)
    for latency in stats.latencies().values():
        latency.record(1.0)
    beat, line = EmfEmitter(SOURCE).documents(report.config, report)
    (beat_directive,) = beat["_aws"]["CloudWatchMetrics"]
    assert beat_directive["Namespace"] == NAMESPACE
    assert beat_directive["Dimensions"] == [list(HEARTBEAT_DIMENSIONS)]
    assert beat_directive["Metrics"] == [{"Name": HEARTBEAT, "Unit": "Count"}]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE and directive["Dimensions"] == [list(ROUTE_DIMENSIONS)]
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {**{name: "Count" for name in COUNTERS}, **{name: "Milliseconds" for name in LATENCIES}}


def test_latency_percentiles_are_over_the_whole_window_of_every_task():
    """Stubber: one period spanning [since, now], p50/p95 and SampleCount per latency metric per route."""
    started = datetime(2027, 4, 1, 10, 0, 20, tzinfo=UTC)
    now = started + timedelta(minutes=42)
    clients = StubbedClients()
    doc = {"enabled": True, "mirror_id": "apne1-1", "target": TOKYO, "geography": "apac",
           "started_at": started.isoformat()}
    for _ in range(2):
        clients.stub("ssm", SOURCE).add_response("get_parameter", {"Parameter": {"Value": json.dumps(doc)}},
                                                {"Name": PARAMETER})
    dims = [{"Name": "Region", "Value": SOURCE}, {"Name": "MirrorId", "Value": "apne1-1"}]
    cw = clients.stub("cloudwatch", SOURCE)
    cw.add_response("list_metrics", {"Metrics": [
        {"Namespace": NAMESPACE, "MetricName": "Eligible", "Dimensions": [*dims, {"Name": "Route", "Value": PLAYERS}]},
        {"Namespace": NAMESPACE, "MetricName": "Eligible", "Dimensions": dims}]},  # a heartbeat-shaped one: no route
        {"Namespace": NAMESPACE, "MetricName": "Eligible", "Dimensions": dims})
    route_dims = [*dims, {"Name": "Route", "Value": PLAYERS}]
    start, period = datetime(2027, 4, 1, 10, 0, tzinfo=UTC), 43 * 60

    def q(qid, metric, stat):
        return {"Id": qid, "ReturnData": True, "MetricStat": {"Metric": {
            "Namespace": NAMESPACE, "MetricName": metric, "Dimensions": route_dims}, "Stat": stat, "Period": period}}

    queries = [q(f"r0_{m.lower()}", m, "Sum") for m in COUNTERS]
    queries += [q(f"r0_{m.lower()}_{k}", m, s) for m in LATENCIES for k, s in (("n", "SampleCount"), ("p50", "p50"),
                                                                              ("p95", "p95"))]
    answers = {"r0_compared": 400.0, "r0_candidateroundtriplatency_n": 400.0,
               "r0_candidateroundtriplatency_p50": 151.5, "r0_candidateroundtriplatency_p95": 190.25,
               "r0_primarylatency_p95": 7.5}
    cw.add_response("get_metric_data", {"MetricDataResults": [
        {"Id": q_["Id"], "StatusCode": "Complete", "Values": [answers[q_["Id"]]] if q_["Id"] in answers else []}
        for q_ in queries]}, {"MetricDataQueries": queries, "StartTime": start,
                              "EndTime": start + timedelta(seconds=period)})
    mirror = AwsShadowMirror(clients, api_url=URLS, clock=lambda: now)  # figures_ttl 30 s by default
    report = mirror.mirror_report(SOURCE)
    (players,) = report.endpoints
    assert players.compared == 400 and players.mismatched == 0
    assert players.latency["candidate_round_trip"] == {"count": 400, "p50_ms": 151.5, "p95_ms": 190.25}
    assert players.latency["primary"] == {"count": 0, "p50_ms": None, "p95_ms": 7.5}
    assert mirror.mirror_report(SOURCE) is not None  # within figures_ttl: SSM read again, CloudWatch not
    clients.assert_done()


def test_from_spec_takes_the_apis_from_the_runtime(moto):
    endpoints = {TOKYO: SimpleNamespace(url=URLS[TOKYO])}
    runtime = SimpleNamespace(api_endpoint=endpoints.get, api_host="api.game.example")
    env = SimpleNamespace(kind="aws", aws=SimpleNamespace(endpoint_url=moto, profile=None))
    mirror = from_spec(SimpleNamespace(), env, runtime=runtime)
    assert mirror._url(TOKYO) == URLS[TOKYO].rstrip("/") and mirror.api_host == "api.game.example"
    with pytest.raises(ProviderError, match="us-east-1's API has no endpoint"):
        mirror._url(SOURCE)
    assert mirror.parameter(SOURCE) == PARAMETER
