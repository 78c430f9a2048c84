"""AwsGlobalDatabase against a real moto server, and against botocore's Stubber where moto lacks a
behaviour or gets it wrong (remove_from_global_cluster outside us-east-1 is a no-op in moto; CloudWatch
answers and AWS errors are scripted)."""

from __future__ import annotations

import datetime as dt
import socket
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import ANY

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.clients import AwsClients, call, client_config, scrub
from migrate.providers.aws.global_database import AwsGlobalDatabase, version_num
from migrate.providers.protocols import ChunkChecksum, GlobalDatabase

from .conftest import SOURCE, TOKYO

PRIMARY_ARN = f"arn:aws:rds:{SOURCE}:123456789012:cluster:game-us-east-1"
TOKYO_ARN = f"arn:aws:rds:{TOKYO}:123456789012:cluster:game-ap-northeast-1"
TOKYO_READER = "game-ap-northeast-1.cluster-ro-abc.ap-northeast-1.rds.amazonaws.com"


def no_progress(done, total):
    pass


def no_checkpoint():
    pass


def members(aws) -> list[str]:
    (gc,) = [g for g in aws("rds").describe_global_clusters()["GlobalClusters"]
             if g["GlobalClusterIdentifier"] == "game-global"]
    return [m["DBClusterArn"] for m in gc["GlobalClusterMembers"]]


@pytest.fixture
def attached(make_db, primary):
    """Tokyo's secondary created in the global cluster through the adapter."""
    db = make_db()
    db.reserve_replication(TOKYO)
    outputs = db.create_secondary(TOKYO, no_progress, no_checkpoint)
    return db, outputs


# --- against moto --------------------------------------------------------------------------------

def test_adapter_satisfies_the_protocol(make_db):
    db: GlobalDatabase = make_db()
    assert isinstance(db, AwsGlobalDatabase)


def test_primary_facts_of_a_reachable_writer(make_db, primary):
    facts = make_db().primary_facts()
    assert facts.reachable
    assert (facts.server_version, facts.server_version_num) == ("15.4", 150004)
    assert facts.slots == () and facts.database_bytes == 0
    assert "not created yet" in facts.detail


def test_primary_facts_never_raise(make_db, moto):
    facts = make_db(primary_cluster_id="game-missing").primary_facts()
    assert not facts.reachable
    assert "game-missing" in facts.detail and "\n" not in facts.detail


def test_reserve_replication_creates_the_global_cluster_once(make_db, primary, aws):
    db = make_db()
    first = db.reserve_replication(TOKYO)
    second = db.reserve_replication(TOKYO)
    assert first == second
    assert first["global_cluster_arn"].endswith(":global-cluster:game-global")
    assert members(aws) == [primary["DBClusterArn"]]
    assert db.primary_facts().slots == (primary["DBClusterArn"],)


def test_reserve_replication_refuses_a_global_cluster_without_the_primary(make_db, primary, aws):
    aws("rds").create_global_cluster(GlobalClusterIdentifier="game-global", Engine="aurora-postgresql",
                                     EngineVersion="15.4")
    with pytest.raises(ProviderError, match="not one of its members"):
        make_db().reserve_replication(TOKYO)


def test_release_replication_keeps_the_shared_global_cluster(make_db, primary, aws):
    db = make_db()
    db.reserve_replication(TOKYO)
    db.release_replication(TOKYO)
    assert members(aws) == [primary["DBClusterArn"]]


def test_secondary_facts_before_creation(make_db, primary):
    facts = make_db().secondary_facts(TOKYO)
    assert (facts.exists, facts.running, facts.free_disk_bytes) == (False, False, None)
    assert facts.engine_version_num == 150004
    assert facts.slot_name == TOKYO_ARN


def test_create_secondary_joins_the_global_cluster(make_db, primary, aws):
    db = make_db()
    db.reserve_replication(TOKYO)
    ticks, polls = [], []
    outputs = db.create_secondary(TOKYO, lambda done, total: ticks.append((done, total)),
                                  lambda: polls.append(1))
    assert outputs["cluster_arn"] == TOKYO_ARN
    assert outputs["reader_endpoint"].startswith("game-ap-northeast-1.cluster-ro-")
    assert outputs["engine_version"] == "15.4"
    assert TOKYO_ARN in members(aws)
    assert polls and ticks[-1] == (2, 2)  # moto is "available" by the first poll; see the Stubber test
    cluster = aws("rds", TOKYO).describe_db_clusters(DBClusterIdentifier="game-ap-northeast-1")["DBClusters"][0]
    assert (cluster["Engine"], cluster["EngineVersion"]) == ("aurora-postgresql", "15.4")
    instance = aws("rds", TOKYO).describe_db_instances(
        DBInstanceIdentifier="game-ap-northeast-1-reader-1")["DBInstances"][0]
    assert instance["DBInstanceClass"] == "db.r6g.large"
    facts = db.secondary_facts(TOKYO)
    assert (facts.exists, facts.running, facts.slot_name) == (True, True, TOKYO_ARN)
    assert facts.slot_name in db.primary_facts().slots


def test_create_secondary_twice_is_a_no_op(moto, make_db, primary, aws):
    clients = AwsClients(endpoint_url=moto)
    creates = []
    clients("rds", TOKYO).meta.events.register(
        "before-call.rds.*", lambda model, **kw: creates.append(model.name) if model.name.startswith("Create") else None)
    db = make_db(client_factory=clients)
    db.reserve_replication(TOKYO)
    first = db.create_secondary(TOKYO, no_progress, no_checkpoint)
    second = db.create_secondary(TOKYO, no_progress, no_checkpoint)
    assert first == second
    assert creates == ["CreateDBCluster", "CreateDBInstance"]
    assert members(aws).count(TOKYO_ARN) == 1


def test_create_secondary_needs_the_global_cluster(make_db, primary):
    with pytest.raises(ProviderError, match="does not exist") as err:
        make_db().create_secondary(TOKYO, no_progress, no_checkpoint)
    assert err.value.hint


def test_create_secondary_refuses_an_engine_version_other_than_expected(make_db, primary, aws):
    db = make_db(engine_version="15.5")
    db.reserve_replication(TOKYO)
    assert db.secondary_facts(TOKYO).engine_version_num == 150005  # preflight sees the mismatch first
    with pytest.raises(ProviderError, match="expected to run 15.5"):
        db.create_secondary(TOKYO, no_progress, no_checkpoint)
    assert not db.secondary_facts(TOKYO).exists


def test_create_secondary_refuses_the_writer_region(make_db, primary):
    db = make_db()
    db.reserve_replication(SOURCE)
    with pytest.raises(ProviderError, match="holds the writer"):
        db.create_secondary(SOURCE, no_progress, no_checkpoint)


def test_start_secondary_returns_the_reader_endpoint(attached):
    db, created = attached
    started = db.start_secondary(TOKYO)
    assert started["reader_endpoint"] == created["reader_endpoint"]


def test_start_secondary_without_a_secondary_is_a_clear_error(make_db, primary):
    db = make_db()
    db.reserve_replication(TOKYO)
    with pytest.raises(ProviderError, match="no secondary cluster game-ap-northeast-1"):
        db.start_secondary(TOKYO)


def test_reads_are_routed_through_ssm(attached, aws):
    db, created = attached
    assert db.reader_endpoint(TOKYO) is None
    assert db.route_reads_to_secondary(TOKYO) == created["reader_endpoint"]
    assert db.reader_endpoint(TOKYO) == created["reader_endpoint"]
    stored = aws("ssm", TOKYO).get_parameter(Name="/migrate/ap-northeast-1/db/reader-endpoint")["Parameter"]
    assert stored["Value"] == created["reader_endpoint"]
    assert db.reader_endpoint(SOURCE) is None  # the parameter lives in the region's own SSM

    writer = db.route_reads_to_writer(TOKYO)
    global_endpoint = aws("rds").describe_global_clusters()["GlobalClusters"][0]["Endpoint"]
    assert writer == global_endpoint and db.reader_endpoint(TOKYO) == writer
    assert db.route_reads_to_writer(TOKYO) == writer  # idempotent


def test_route_reads_to_a_missing_secondary_is_refused(make_db, primary):
    db = make_db()
    db.reserve_replication(TOKYO)
    with pytest.raises(ProviderError, match="no secondary cluster"):
        db.route_reads_to_secondary(TOKYO)
    assert db.reader_endpoint(TOKYO) is None


def test_delete_secondary_is_idempotent(attached, aws):
    db, _ = attached
    db.delete_secondary(TOKYO)
    assert not db.secondary_facts(TOKYO).exists
    assert aws("rds", TOKYO).describe_db_instances()["DBInstances"] == []
    db.delete_secondary(TOKYO)  # nothing left: no-op
    assert db.replication_lag(TOKYO).state == "absent"
    db.stop_secondary(TOKYO)  # absent: no-op too


def test_delete_and_detach_are_refused_while_reads_use_the_secondary(attached):
    db, _ = attached
    db.route_reads_to_secondary(TOKYO)
    with pytest.raises(ProviderError, match="readers still use"):
        db.delete_secondary(TOKYO)
    with pytest.raises(ProviderError, match="readers still use"):
        db.stop_secondary(TOKYO)
    assert db.secondary_facts(TOKYO).exists
    db.route_reads_to_writer(TOKYO)
    db.delete_secondary(TOKYO)
    assert not db.secondary_facts(TOKYO).exists


def test_replication_lag_without_datapoints_is_unknown_not_zero(attached):
    db, _ = attached
    lag = db.replication_lag(TOKYO)
    assert lag.state == "streaming"
    assert lag.lag_seconds is None and lag.lag_bytes is None


def test_replication_lag_reads_cloudwatch(attached, aws):
    db, _ = attached
    now = dt.datetime.now(dt.timezone.utc)
    aws("cloudwatch", TOKYO).put_metric_data(Namespace="AWS/RDS", MetricData=[{
        "MetricName": "AuroraGlobalDBReplicationLag", "Value": 850.0, "Unit": "Milliseconds",
        "Timestamp": now - dt.timedelta(seconds=30),
        "Dimensions": [{"Name": "DBClusterIdentifier", "Value": "game-ap-northeast-1"}]}])
    assert db.replication_lag(TOKYO).lag_seconds == pytest.approx(0.85)


def test_replication_lag_of_an_absent_secondary(make_db, primary):
    lag = make_db().replication_lag(TOKYO)
    assert (lag.state, lag.lag_seconds, lag.lag_bytes) == ("absent", None, None)


def test_describing_a_missing_cluster_is_a_one_line_provider_error(moto):
    rds = AwsClients(endpoint_url=moto)("rds", TOKYO)
    with pytest.raises(ProviderError) as err:
        call(rds, "describe_db_clusters", TOKYO, DBClusterIdentifier="game-missing")
    exc = err.value
    assert not isinstance(exc, TransientProviderError)
    assert exc.code == "PROVIDER" and exc.details["aws_code"] == "DBClusterNotFoundFault"
    assert exc.details["region"] == TOKYO and exc.details["http_status"] == 404
    assert exc.one_line() == (f"aws: rds DescribeDBClusters in {TOKYO} failed: "
                              "DBClusterNotFoundFault: DBCluster game-missing not found.")
    assert "testing" not in exc.one_line()  # the (fake) credentials never reach a message
    assert call(rds, "describe_db_clusters", TOKYO, absent={"DBClusterNotFoundFault"},
                DBClusterIdentifier="game-missing") is None


def test_a_missing_primary_is_named_in_one_line(make_db, moto):
    with pytest.raises(ProviderError) as err:
        make_db(primary_cluster_id="game-missing").reserve_replication(TOKYO)
    assert err.value.one_line() == f"aws: primary cluster game-missing not found in {SOURCE}"
    assert err.value.hint


def test_account_check_refuses_another_account(make_db, primary):
    with pytest.raises(ProviderError, match="not 000000000000"):
        make_db(expected_account_id="000000000000").reserve_replication(TOKYO)
    assert make_db(expected_account_id="123456789012").reserve_replication(TOKYO)["global_cluster_id"]


def test_unreachable_endpoint_is_transient():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    db = AwsGlobalDatabase(global_cluster_id="game-global", primary_cluster_id="game-us-east-1",
                           endpoint_url=f"http://127.0.0.1:{port}", session=session)
    with pytest.raises(TransientProviderError, match="EndpointConnectionError"):
        db.secondary_facts(TOKYO)
    assert not db.primary_facts().reachable


def test_from_spec_names_and_account(moto, primary, aws):
    spec = SimpleNamespace(source_region=SOURCE, writer_region=SOURCE)
    settings = SimpleNamespace(profile="game-migrate", account_id="123456789012", endpoint_url=moto)
    db = AwsGlobalDatabase.from_spec(spec, settings, poll_interval=0, sleep=lambda _s: None)
    assert (db.global_cluster_id, db.primary_cluster_id) == ("game-global", "game-us-east-1")
    assert db.secondary_cluster_name(TOKYO) == "game-ap-northeast-1"
    db.reserve_replication(TOKYO)
    assert members(aws) == [primary["DBClusterArn"]]


def test_from_spec_with_an_unknown_profile_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    spec = SimpleNamespace(source_region=SOURCE, writer_region=SOURCE)
    with pytest.raises(ProviderError, match="profile 'nope' is not usable: ProfileNotFound"):
        AwsGlobalDatabase.from_spec(spec, SimpleNamespace(profile="nope", account_id="123456789012",
                                                          endpoint_url=None))


def test_retries_are_off_against_moto_and_standard_on_aws():
    assert client_config("http://127.0.0.1:5000").retries == {"max_attempts": 1}
    assert client_config(None).retries["mode"] == "standard"


def test_data_verification_without_credentials_is_an_honest_error(make_db, primary):
    with pytest.raises(ProviderError, match="needs database credentials"):
        make_db().key_range("players")
    with pytest.raises(ProviderError, match="MIGRATE_AWS_DB_DSN_TEMPLATE"):
        make_db().checksum_chunk(TOKYO, "players", 0, 10)


def test_data_verification_is_delegated_with_endpoints(attached, make_db):
    _, created = attached
    calls = []

    class Recorder:
        def key_range(self, writer_endpoint, table):
            calls.append(("range", writer_endpoint, table))
            return (1, 11)

        def checksum_chunk(self, writer_endpoint, reader_endpoint, table, lo, hi):
            calls.append(("chunk", writer_endpoint, reader_endpoint, table, lo, hi))
            return ChunkChecksum(table, lo, hi, "0/0", 10, 10, "d", "d")

    db = make_db(sql_checksummer=Recorder())
    assert db.key_range("players") == (1, 11)
    assert db.checksum_chunk(TOKYO, "players", 1, 11).matches
    writer = calls[0][1]
    assert ".global." in writer
    assert calls[1] == ("chunk", writer, created["reader_endpoint"], "players", 1, 11)


# --- with Stubber: what moto lacks or gets wrong -------------------------------------------------

def _cluster(arn=TOKYO_ARN, status="available"):
    cluster_id = arn.rsplit(":", 1)[1]
    return {"DBClusterIdentifier": cluster_id, "DBClusterArn": arn, "Status": status,
            "Engine": "aurora-postgresql", "EngineVersion": "15.4", "ReaderEndpoint": TOKYO_READER,
            "Endpoint": TOKYO_READER.replace("cluster-ro-", "cluster-"),
            "DBClusterMembers": [{"DBInstanceIdentifier": f"{cluster_id}-reader-1", "IsClusterWriter": False}]}


def _global(*member_arns):
    return {"GlobalClusters": [{
        "GlobalClusterIdentifier": "game-global", "Status": "available",
        "GlobalClusterArn": "arn:aws:rds::123456789012:global-cluster:game-global",
        "GlobalClusterMembers": [{"DBClusterArn": arn, "IsWriter": arn == PRIMARY_ARN} for arn in member_arns]}]}


def _expect_secondary_and_no_reader_parameter(clients):
    clients.stub("rds", TOKYO).add_response(
        "describe_db_clusters", {"DBClusters": [_cluster()]}, {"DBClusterIdentifier": "game-ap-northeast-1"})
    clients.stub("ssm", TOKYO).add_client_error(
        "get_parameter", "ParameterNotFound", http_status_code=400,
        expected_params={"Name": "/migrate/ap-northeast-1/db/reader-endpoint"})


def test_stop_secondary_detaches_in_the_secondary_region(stubbed):
    # moto ignores remove_from_global_cluster outside us-east-1, so the request itself is checked here.
    clients, db = stubbed
    _expect_secondary_and_no_reader_parameter(clients)
    clients.stub("rds", SOURCE).add_response(
        "describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN), {"GlobalClusterIdentifier": "game-global"})
    clients.stub("rds", TOKYO).add_response(
        "remove_from_global_cluster", {"GlobalCluster": _global(PRIMARY_ARN)["GlobalClusters"][0]},
        {"GlobalClusterIdentifier": "game-global", "DbClusterIdentifier": TOKYO_ARN})
    db.stop_secondary(TOKYO)


def test_stop_secondary_of_a_detached_cluster_is_a_no_op(stubbed):
    clients, db = stubbed
    _expect_secondary_and_no_reader_parameter(clients)
    clients.stub("rds", SOURCE).add_response(
        "describe_global_clusters", _global(PRIMARY_ARN), {"GlobalClusterIdentifier": "game-global"})
    db.stop_secondary(TOKYO)  # no remove_from_global_cluster queued: Stubber would fail on one


def test_stop_secondary_tolerates_a_detach_that_raced_ahead(stubbed):
    clients, db = stubbed
    _expect_secondary_and_no_reader_parameter(clients)
    clients.stub("rds", SOURCE).add_response(
        "describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN), {"GlobalClusterIdentifier": "game-global"})
    clients.stub("rds", TOKYO).add_client_error(
        "remove_from_global_cluster", "DBClusterNotFoundFault", http_status_code=404)
    db.stop_secondary(TOKYO)


def test_create_secondary_polls_until_available_with_checkpoints(stubbed):
    # moto turns "creating" into "available" on the first read, so the polling is scripted here.
    clients, db = stubbed
    rds, src = clients.stub("rds", TOKYO), clients.stub("rds", SOURCE)
    src.add_response("describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN))
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster(status="creating")]})
    instance = {"DBInstanceIdentifier": "game-ap-northeast-1-reader-1", "DBInstanceStatus": "creating"}
    rds.add_response("describe_db_instances", {"DBInstances": [instance]})  # exists: not created again
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster(status="creating")]})
    rds.add_response("describe_db_instances", {"DBInstances": [instance]})
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster(status="available")]})
    rds.add_response("describe_db_instances", {"DBInstances": [instance]})
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster(status="available")]})
    rds.add_response("describe_db_instances", {"DBInstances": [{**instance, "DBInstanceStatus": "available"}]})
    ticks, polls = [], []
    outputs = db.create_secondary(TOKYO, lambda done, total: ticks.append((done, total)), lambda: polls.append(1))
    assert ticks == [(0, 2), (1, 2), (2, 2)] and len(polls) == 3
    assert outputs["reader_endpoint"] == TOKYO_READER


def test_create_secondary_stops_on_a_failed_reader(stubbed):
    clients, db = stubbed
    rds, src = clients.stub("rds", TOKYO), clients.stub("rds", SOURCE)
    src.add_response("describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN))
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster()]})
    instance = {"DBInstanceIdentifier": "game-ap-northeast-1-reader-1", "DBInstanceStatus": "incompatible-parameters"}
    rds.add_response("describe_db_instances", {"DBInstances": [instance]})
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster()]})
    rds.add_response("describe_db_instances", {"DBInstances": [instance]})
    with pytest.raises(ProviderError, match="cannot serve reads.*incompatible-parameters"):
        db.create_secondary(TOKYO, no_progress, no_checkpoint)


def test_create_secondary_refuses_a_detached_leftover(stubbed):
    clients, db = stubbed
    clients.stub("rds", SOURCE).add_response("describe_global_clusters", _global(PRIMARY_ARN))
    clients.stub("rds", TOKYO).add_response("describe_db_clusters", {"DBClusters": [_cluster()]})
    with pytest.raises(ProviderError, match="not a member") as err:
        db.create_secondary(TOKYO, no_progress, no_checkpoint)
    assert "cannot rejoin" in err.value.hint


def test_replication_lag_uses_the_newest_cloudwatch_datapoint(stubbed):
    clients, db = stubbed
    clients.stub("rds", TOKYO).add_response(
        "describe_db_clusters", {"DBClusters": [_cluster()]}, {"DBClusterIdentifier": "game-ap-northeast-1"})
    clients.stub("rds", SOURCE).add_response(
        "describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN), {"GlobalClusterIdentifier": "game-global"})
    now = dt.datetime.now(dt.timezone.utc)
    clients.stub("cloudwatch", TOKYO).add_response(
        "get_metric_data",
        {"MetricDataResults": [{"Id": "lag", "StatusCode": "Complete",
                                "Timestamps": [now - dt.timedelta(minutes=2), now - dt.timedelta(minutes=1)],
                                "Values": [4000.0, 1234.0]}]},
        {"MetricDataQueries": [{"Id": "lag", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/RDS", "MetricName": "AuroraGlobalDBReplicationLag",
                       "Dimensions": [{"Name": "DBClusterIdentifier", "Value": "game-ap-northeast-1"}]},
            "Period": 60, "Stat": "Maximum"}}],
         "StartTime": ANY, "EndTime": ANY, "ScanBy": "TimestampDescending"})
    lag = db.replication_lag(TOKYO)
    assert (lag.state, lag.lag_seconds, lag.lag_bytes) == ("streaming", pytest.approx(1.234), None)


def test_replication_lag_of_a_detached_cluster_is_stopped(stubbed):
    clients, db = stubbed
    clients.stub("rds", TOKYO).add_response("describe_db_clusters", {"DBClusters": [_cluster()]})
    clients.stub("rds", SOURCE).add_response("describe_global_clusters", _global(PRIMARY_ARN))
    assert db.replication_lag(TOKYO).state == "stopped"


@pytest.mark.parametrize(("code", "status", "transient"), [
    ("Throttling", 400, True),
    ("RequestLimitExceeded", 400, True),
    ("InternalFailure", 500, True),
    ("SomethingNew", 503, True),
    ("AccessDenied", 403, False),
    ("InvalidParameterValue", 400, False),
])
def test_aws_errors_are_translated_at_the_edge(stubbed, code, status, transient):
    clients, db = stubbed
    clients.stub("rds", TOKYO).add_client_error(
        "describe_db_clusters", code, f"{code} happened\nsecond line AKIAABCDEFGHIJKLMNOP", http_status_code=status)
    with pytest.raises(ProviderError) as err:
        db.secondary_facts(TOKYO)
    exc = err.value
    assert isinstance(exc, TransientProviderError) is transient
    line = exc.one_line()
    assert line == f"aws: rds DescribeDBClusters in {TOKYO} failed: {code}: {code} happened"
    assert exc.details["aws_code"] == code and exc.details["http_status"] == status


def test_primary_facts_under_throttling_report_unreachable(stubbed):
    clients, db = stubbed
    clients.stub("rds", SOURCE).add_client_error("describe_global_clusters", "Throttling", "Rate exceeded")
    facts = db.primary_facts()
    assert not facts.reachable and "Throttling" in facts.detail


def test_delete_secondary_waits_for_instances_then_deletes_the_cluster(stubbed):
    # Real AWS refuses to delete a cluster while its instances are being deleted; the adapter polls.
    clients, db = stubbed
    rds, ssm, src = clients.stub("rds", TOKYO), clients.stub("ssm", TOKYO), clients.stub("rds", SOURCE)
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster()]})
    ssm.add_client_error("get_parameter", "ParameterNotFound")
    src.add_response("describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN))
    rds.add_response("remove_from_global_cluster", {"GlobalCluster": _global(PRIMARY_ARN)["GlobalClusters"][0]},
                     {"GlobalClusterIdentifier": "game-global", "DbClusterIdentifier": TOKYO_ARN})
    instance = {"DBInstanceIdentifier": "game-ap-northeast-1-reader-1", "DBInstanceStatus": "available"}
    rds.add_response("describe_db_instances", {"DBInstances": [instance]})
    rds.add_response("delete_db_instance", {"DBInstance": {**instance, "DBInstanceStatus": "deleting"}},
                     {"DBInstanceIdentifier": "game-ap-northeast-1-reader-1"})
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster()]})
    # second poll: the instance is still deleting, so the cluster is not asked to go yet
    rds.add_response("describe_db_instances", {"DBInstances": [{**instance, "DBInstanceStatus": "deleting"}]})
    rds.add_response("describe_db_clusters", {"DBClusters": [_cluster()]})
    # third poll: instance gone → delete the cluster without a final snapshot
    rds.add_client_error("describe_db_instances", "DBInstanceNotFound", http_status_code=404)
    rds.add_response("delete_db_cluster", {"DBCluster": _cluster(status="deleting")},
                     {"DBClusterIdentifier": "game-ap-northeast-1", "SkipFinalSnapshot": True})
    rds.add_client_error("describe_db_clusters", "DBClusterNotFoundFault", http_status_code=404)
    db.delete_secondary(TOKYO)


def test_messages_are_scrubbed_to_one_line():
    text = "Signature mismatch for AKIAABCDEFGHIJKLMNOP Credential=AKIA/2026/us-east-1\nCanonical request: secret"
    assert scrub(text) == "Signature mismatch for <redacted> Credential=<redacted>"


def test_version_numbers_follow_postgresql():
    assert version_num("15.4") == 150004
    assert version_num("15.20") == 150020
    assert version_num("9.6.22") == 90622
    assert version_num("") == 0


# --- losing the origin: failover (data loss allowed) and the switchover back; moto has neither --------

FRANKFURT_ARN = "arn:aws:rds:eu-central-1:123456789012:cluster:game-eu-central-1"


def _global_writing(writer_arn, *member_arns):
    answer = _global(*member_arns)
    for member in answer["GlobalClusters"][0]["GlobalClusterMembers"]:
        member["IsWriter"] = member["DBClusterArn"] == writer_arn
    return answer


def _frankfurt():
    cluster = _cluster(FRANKFURT_ARN)
    return {"DBClusters": [cluster]}


def test_fail_over_origin_asks_the_target_region_with_data_loss_allowed_and_waits_until_it_writes(stubbed):
    clients, db = stubbed
    src, fra = clients.stub("rds", SOURCE), clients.stub("rds", "eu-central-1")
    src.add_response("describe_global_clusters", _global_writing(PRIMARY_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    fra.add_response("describe_db_clusters", _frankfurt(), {"DBClusterIdentifier": "game-eu-central-1"})
    fra.add_response("failover_global_cluster", {}, {"GlobalClusterIdentifier": "game-global",
                                                     "TargetDbClusterIdentifier": FRANKFURT_ARN,
                                                     "AllowDataLoss": True})
    src.add_response("describe_global_clusters", _global_writing(PRIMARY_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    src.add_response("describe_global_clusters", _global_writing(FRANKFURT_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    polls, ticks = [], []
    moved = db.fail_over_origin("eu-central-1", lambda d, t: ticks.append((d, t)), lambda: polls.append(1))
    assert moved == {"writer_region": "eu-central-1", "writer_cluster": FRANKFURT_ARN,
                     "operation": "failover_global_cluster", "data_loss_allowed": True}
    assert len(polls) == 2 and ticks == [(0, 1)]


def test_fail_over_origin_to_the_region_that_writes_already_only_confirms(stubbed):
    clients, db = stubbed
    src, fra = clients.stub("rds", SOURCE), clients.stub("rds", "eu-central-1")
    src.add_response("describe_global_clusters", _global_writing(FRANKFURT_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    fra.add_response("describe_db_clusters", _frankfurt())
    src.add_response("describe_global_clusters", _global_writing(FRANKFURT_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    assert db.fail_over_origin("eu-central-1", no_progress, no_checkpoint)["writer_region"] == "eu-central-1"
    # no failover_global_cluster queued: Stubber would fail on one


def test_switch_over_origin_moves_the_writer_back_without_data_loss(stubbed):
    clients, db = stubbed
    src = clients.stub("rds", SOURCE)
    src.add_response("describe_global_clusters", _global_writing(FRANKFURT_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    src.add_response("describe_db_clusters", {"DBClusters": [_cluster(PRIMARY_ARN)]},
                     {"DBClusterIdentifier": "game-us-east-1"})
    src.add_response("switchover_global_cluster", {}, {"GlobalClusterIdentifier": "game-global",
                                                       "TargetDbClusterIdentifier": PRIMARY_ARN})
    src.add_response("describe_global_clusters", _global_writing(PRIMARY_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    moved = db.switch_over_origin(SOURCE, no_progress, no_checkpoint)
    assert moved["writer_region"] == SOURCE and moved["data_loss_allowed"] is False


def test_fail_over_origin_to_a_region_without_a_member_is_refused_before_any_change(stubbed):
    clients, db = stubbed
    src, tok = clients.stub("rds", SOURCE), clients.stub("rds", TOKYO)
    src.add_response("describe_global_clusters", _global_writing(PRIMARY_ARN, PRIMARY_ARN))
    tok.add_client_error("describe_db_clusters", "DBClusterNotFoundFault", http_status_code=404)
    with pytest.raises(ProviderError, match="no member cluster game-ap-northeast-1"):
        db.fail_over_origin(TOKYO, no_progress, no_checkpoint)


def test_the_global_cluster_is_read_from_another_region_when_the_source_regions_api_does_not_answer():
    # evacuating us-east-1: its RDS API may be gone with it, and the failover is asked of the others
    from .conftest import StubbedClients

    clients = StubbedClients()
    db = AwsGlobalDatabase(global_cluster_id="game-global", primary_cluster_id="game-us-east-1",
                           source_region=SOURCE, client_factory=clients, poll_interval=0, wait_timeout=5,
                           sleep=lambda _s: None, fallback_regions=(TOKYO, "eu-central-1"))
    clients.stub("rds", SOURCE).add_client_error("describe_global_clusters", "InternalFailure", http_status_code=503)
    clients.stub("rds", TOKYO).add_client_error("describe_global_clusters", "ServiceUnavailable",
                                                http_status_code=503)
    clients.stub("rds", "eu-central-1").add_response(
        "describe_global_clusters", _global_writing(FRANKFURT_ARN, PRIMARY_ARN, FRANKFURT_ARN))
    assert db.origin_region() == "eu-central-1"
    clients.assert_done()


def test_from_spec_asks_every_other_region_of_the_spec_when_the_source_does_not_answer():
    spec = SimpleNamespace(source_region=SOURCE, regions={SOURCE: None, TOKYO: None, "eu-central-1": None})
    aws = SimpleNamespace(endpoint_url="http://127.0.0.1:1", account_id=None, profile="x")
    assert AwsGlobalDatabase.from_spec(spec, aws).fallback_regions == (TOKYO, "eu-central-1")
