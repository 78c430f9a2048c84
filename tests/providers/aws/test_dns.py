"""Route53Dns against a real moto server (the lab's peer and the tests' AWS): the zone is created here, as
`migrate lab up` would; the adapter adds only records and health checks. Stubber covers what moto does not
do like AWS (a reused caller reference of a deleted check, PENDING changes)."""

from __future__ import annotations

import pytest
from botocore.stub import ANY

from migrate.errors import ProviderError
from migrate.lab.aws_world import lab_ttl_seconds
from migrate.providers.factory import route_lab_api
from migrate.providers.aws.dns import Route53Dns, fqdn, from_spec
from migrate.providers.protocols import ApiEndpoint, Dns

from .conftest import FRANKFURT, LAB_PORTS, SOURCE, TOKYO, StubbedClients, lab_endpoint

TTL = lab_ttl_seconds()  # the lab's, as the test run sets it (tests/conftest.py)


@pytest.fixture
def lab_dns(moto, moto_clients, zone):
    """The adapter as the lab builds it (its conventions from migrate/lab/aws_world.py), on the shared clients."""
    return Route53Dns.for_lab(moto, clients=moto_clients, poll_interval=0)


def records(aws, zone_id):
    return [r for r in aws("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
            if r["Name"] == "api.game.example."]


def test_adapter_satisfies_the_protocol(lab_dns):
    dns: Dns = lab_dns
    assert isinstance(dns, Route53Dns)


def test_missing_zone_is_a_clear_error(moto, moto_clients):
    dns = Route53Dns(moto_clients, endpoint_url=moto)
    with pytest.raises(ProviderError, match="hosted zone game.example. not found"):
        dns.weights()


def test_health_check_is_idempotent_by_caller_reference(lab_dns, aws):
    first = lab_dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO))
    second = lab_dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO))
    assert first == second
    checks = aws("route53").list_health_checks()["HealthChecks"]
    assert len(checks) == 1
    (check,) = checks
    # The lab's convention (aws_world.ensure_health_check): HTTP on 127.0.0.1:<app port>/health.
    assert check["CallerReference"] == "lab-api-ap-northeast-1"
    config = check["HealthCheckConfig"]
    assert (config["Type"], config["IPAddress"], config["Port"], config["ResourcePath"]) == (
        "HTTP", "127.0.0.1", LAB_PORTS[TOKYO], "/health")
    assert config["FullyQualifiedDomainName"] == "ap-northeast-1.lb.game.example"
    assert lab_dns.health_check_id(TOKYO) == first
    assert lab_dns.health_check_id(FRANKFURT) is None


def test_health_check_follows_a_moved_endpoint(lab_dns, aws):
    check_id = lab_dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO))
    assert lab_dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO, port=18099)) == check_id
    config = aws("route53").get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"]
    assert config["Port"] == 18099


def test_delete_health_check_is_a_noop_when_absent(lab_dns, aws):
    lab_dns.delete_health_check(TOKYO)
    lab_dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO))
    lab_dns.delete_health_check(TOKYO)
    lab_dns.delete_health_check(TOKYO)
    assert aws("route53").list_health_checks()["HealthChecks"] == []
    assert lab_dns.health_check_id(TOKYO) is None


def test_set_weight_zero_then_ten_is_reflected_in_weights(lab_dns, aws, zone):
    check_id = lab_dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO))
    out = lab_dns.set_weight(TOKYO, 0, lab_endpoint(TOKYO))
    assert out["change_status"] == "INSYNC"
    assert out["set_identifier"] == "ap-northeast-1-weighted"
    assert lab_dns.weights() == {TOKYO: 0}
    lab_dns.set_weight(TOKYO, 10)  # no endpoint: shift-traffic keeps the record but for its weight
    assert lab_dns.weights() == {TOKYO: 10}
    (record,) = records(aws, zone)
    # Exactly the lab's record shape (aws_world.ensure_weighted_record).
    assert record["Type"] == "CNAME"
    assert record["TTL"] == TTL
    assert record["ResourceRecords"] == [{"Value": "ap-northeast-1.lb.game.example"}]
    assert record["HealthCheckId"] == check_id


def test_two_regions_coexist_and_deleting_one_keeps_the_other(lab_dns, aws, zone):
    # us-east-1 as `lab up` writes it, and a latency record of Tokyo's on another name: moto's DELETE
    # matches on SetIdentifier alone, so identifiers must be unique zone-wide.
    aws("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "api.game.example.", "Type": "CNAME", "SetIdentifier": "us-east-1-weighted", "Weight": 100,
            "TTL": 5, "ResourceRecords": [{"Value": "us-east-1.lb.game.example"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "latency.api.game.example.", "Type": "CNAME", "SetIdentifier": "ap-northeast-1-latency",
            "Region": TOKYO, "TTL": 5, "ResourceRecords": [{"Value": "ap-northeast-1.lb.game.example"}]}},
    ]})
    lab_dns.set_weight(TOKYO, 0, lab_endpoint(TOKYO))
    lab_dns.set_weight(FRANKFURT, 0, lab_endpoint(FRANKFURT))
    assert lab_dns.weights() == {SOURCE: 100, TOKYO: 0, FRANKFURT: 0}

    lab_dns.delete_weighted(TOKYO)
    lab_dns.delete_weighted(TOKYO)  # a no-op the second time
    assert lab_dns.weights() == {SOURCE: 100, FRANKFURT: 0}
    names = {(r["Name"], r.get("SetIdentifier")) for r in
             aws("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]}
    assert ("latency.api.game.example.", "ap-northeast-1-latency") in names


def test_set_weight_refuses_bad_weights_and_unknown_records(lab_dns):
    with pytest.raises(ProviderError, match="0..255"):
        lab_dns.set_weight(TOKYO, 256, lab_endpoint(TOKYO))
    with pytest.raises(ProviderError, match="no weighted record"):
        lab_dns.set_weight(TOKYO, 5)


def test_aws_style_aliases_the_alb_and_checks_https(moto, moto_clients, zone, aws):
    """On AWS the weighted record is an A ALIAS to the region's ALB, found by its DNS name in elbv2."""
    ec2 = aws("ec2", TOKYO)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24", AvailabilityZone=f"{TOKYO}{z}")["Subnet"]
               ["SubnetId"] for i, z in enumerate("ac")]
    lb = aws("elbv2", TOKYO).create_load_balancer(Name="game-apne1-api", Subnets=subnets)["LoadBalancers"][0]
    endpoint = ApiEndpoint(TOKYO, lb["DNSName"], 443, f"https://{lb['DNSName']}")
    dns = Route53Dns(moto_clients, endpoint_url=moto, poll_interval=0)

    check_id = dns.ensure_health_check(TOKYO, endpoint)
    (check,) = aws("route53").list_health_checks()["HealthChecks"]
    assert check["CallerReference"] == "migrate-ap-northeast-1"
    config = check["HealthCheckConfig"]
    assert (config["Type"], config["FullyQualifiedDomainName"], config["Port"]) == ("HTTPS", lb["DNSName"], 443)
    assert config.get("EnableSNI") is True

    dns.set_weight(TOKYO, 0, endpoint)
    (record,) = records(aws, zone)
    assert record["Type"] == "A"
    assert record["SetIdentifier"] == "ap-northeast-1-weighted"
    assert record["AliasTarget"]["HostedZoneId"] == lb["CanonicalHostedZoneId"]
    assert fqdn(record["AliasTarget"]["DNSName"]) == fqdn(lb["DNSName"])
    assert record["HealthCheckId"] == check_id
    assert dns.weights() == {TOKYO: 0}
    dns.delete_weighted(TOKYO)
    assert dns.weights() == {}


def test_a_record_made_by_terraform_lends_its_health_check(moto, moto_clients, zone, aws):
    """Terraform's health check has its own caller reference; the adapter adopts the one the region's record uses."""
    r53 = aws("route53")
    tf_check = r53.create_health_check(CallerReference="terraform-20270101", HealthCheckConfig={
        "Type": "HTTPS", "FullyQualifiedDomainName": "alb.example", "Port": 443, "ResourcePath": "/health"})
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": "api.game.example.", "Type": "CNAME", "SetIdentifier": "ap-northeast-1-weighted", "Weight": 0,
        "TTL": 60, "ResourceRecords": [{"Value": "alb.example"}], "HealthCheckId": tf_check["HealthCheck"]["Id"]}}]})
    dns = Route53Dns(moto_clients, endpoint_url=moto, poll_interval=0)
    endpoint = ApiEndpoint(TOKYO, "alb.example", 443, "https://alb.example")
    assert dns.ensure_health_check(TOKYO, endpoint) == tf_check["HealthCheck"]["Id"]
    assert len(r53.list_health_checks()["HealthChecks"]) == 1


def test_from_spec_for_the_lab(moto, zone):
    env = type("Env", (), {"kind": "lab"})()
    topology = type("Topology", (), {"moto_endpoint": moto})()
    dns = from_spec(None, env, None, topology=topology, poll_interval=0)
    assert (dns.ttl, dns.record_style, dns.record_name) == (TTL, "cname", "api.game.example.")
    dns.set_weight(TOKYO, 0, lab_endpoint(TOKYO))
    assert dns.weights() == {TOKYO: 0}
    with pytest.raises(ProviderError, match="topology"):
        from_spec(None, env, None)


# --- Stubber: what moto does not do like AWS ---------------------------------------------------------

ZONES = {"HostedZones": [{"Id": "/hostedzone/Z1", "Name": "game.example.", "CallerReference": "x",
                          "Config": {"PrivateZone": False}}],
         "IsTruncated": False, "MaxItems": "100"}
NO_RECORDS = {"ResourceRecordSets": [], "IsTruncated": False, "MaxItems": "100"}
NO_CHECKS = {"HealthChecks": [], "IsTruncated": False, "Marker": "", "MaxItems": "100"}


def _check(check_id: str, reference: str) -> dict:
    return {"Id": check_id, "CallerReference": reference, "HealthCheckVersion": 1,
            "HealthCheckConfig": {"Type": "HTTPS", "FullyQualifiedDomainName": "alb.example", "Port": 443,
                                  "ResourcePath": "/health", "RequestInterval": 10, "FailureThreshold": 3,
                                  "EnableSNI": True}}


def test_a_deleted_checks_reference_is_not_reused():
    """AWS refuses a deleted check's caller reference for days "regardless of the settings": a rollback and a
    new apply must still get a check, under a suffixed reference that is found again afterwards."""
    clients = StubbedClients()
    r53 = clients.stub("route53", "us-east-1")
    dns = Route53Dns(clients, poll_interval=0)
    endpoint = ApiEndpoint(TOKYO, "alb.example", 443, "https://alb.example")
    r53.add_response("list_health_checks", NO_CHECKS)
    r53.add_response("list_hosted_zones_by_name", ZONES, {"DNSName": "game.example."})
    r53.add_response("list_resource_record_sets", NO_RECORDS,
                     {"HostedZoneId": "/hostedzone/Z1", "StartRecordName": "api.game.example."})
    r53.add_client_error("create_health_check", "HealthCheckAlreadyExists", http_status_code=409,
                         expected_params={"CallerReference": "migrate-ap-northeast-1", "HealthCheckConfig": ANY})
    r53.add_response("create_health_check", {"HealthCheck": _check("hc-2", "migrate-ap-northeast-1-1700000000"),
                                             "Location": "https://route53/hc-2"},
                     {"CallerReference": ANY, "HealthCheckConfig": ANY})
    assert dns.ensure_health_check(TOKYO, endpoint) == "hc-2"
    r53.add_response("list_health_checks", {**NO_CHECKS, "HealthChecks": [
        _check("hc-1", "someone-else"), _check("hc-2", "migrate-ap-northeast-1-1700000000")]})
    assert dns.health_check_id(TOKYO) == "hc-2"
    clients.assert_done()


def test_set_weight_waits_for_insync():
    clients = StubbedClients()
    r53 = clients.stub("route53", "us-east-1")
    sleeps: list[float] = []
    dns = Route53Dns(clients, poll_interval=1.5, sleep=sleeps.append)
    record = {"Name": "api.game.example.", "Type": "A", "SetIdentifier": "ap-northeast-1-weighted", "Weight": 0,
              "AliasTarget": {"HostedZoneId": "Z14GRHDCWA56QT", "DNSName": "alb.example.", "EvaluateTargetHealth": True}}
    r53.add_response("list_hosted_zones_by_name", ZONES, {"DNSName": "game.example."})
    r53.add_response("list_resource_record_sets", {**NO_RECORDS, "ResourceRecordSets": [record]}, None)
    r53.add_response("list_health_checks", NO_CHECKS)
    r53.add_response("list_resource_record_sets", {**NO_RECORDS, "ResourceRecordSets": [record]}, None)
    pending = {"Id": "/change/C1", "Status": "PENDING", "SubmittedAt": "2027-01-01T00:00:00Z"}
    r53.add_response("change_resource_record_sets", {"ChangeInfo": pending},
                     {"HostedZoneId": "/hostedzone/Z1", "ChangeBatch": {"Comment": ANY, "Changes": [
                         {"Action": "UPSERT", "ResourceRecordSet": {**record, "Weight": 25}}]}})
    r53.add_response("get_change", {"ChangeInfo": pending}, {"Id": "/change/C1"})
    r53.add_response("get_change", {"ChangeInfo": {**pending, "Status": "INSYNC"}}, {"Id": "/change/C1"})
    out = dns.set_weight(TOKYO, 25)
    assert out["change_status"] == "INSYNC"
    assert sleeps == [1.5, 1.5]
    clients.assert_done()


def test_throttling_is_transient():
    from migrate.errors import TransientProviderError

    clients = StubbedClients()
    r53 = clients.stub("route53", "us-east-1")
    r53.add_client_error("list_hosted_zones_by_name", "Throttling", http_status_code=400)
    with pytest.raises(TransientProviderError, match="route53 ListHostedZonesByName"):
        Route53Dns(clients).weights()


def test_matches_the_labs_own_records(moto, moto_clients):
    """Contract with migrate/lab/aws_world.py: the lab builds us-east-1's world (through this adapter), routed per
    geography; the adapter adds Tokyo's record to the APAC pool and its check, and the lab's own readers
    (api_records, region_of_record, find_health_check) see them as the lab's."""
    from types import SimpleNamespace

    from migrate.lab import aws_world
    from migrate.providers.aws.object_store import S3ObjectStore

    port = int(moto.rsplit(":", 1)[1])
    topology = SimpleNamespace(moto_port=port, moto_endpoint=moto, app_ports=dict(LAB_PORTS))
    aws_world.ensure_source_world(topology, route_lab_api)
    dns = Route53Dns.for_lab(moto, clients=moto_clients, poll_interval=0)
    assert dns.geography_front() == {g: aws_world.pool_name(g) for g in ("apac", "eu", "na")}
    assert dns.weights() == {}  # the API name itself holds only the geolocation records
    apac = dns.pool("apac")
    check_id = dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO))
    apac.set_weight(TOKYO, 0, lab_endpoint(TOKYO))
    assert apac.weights() == {SOURCE: 100, TOKYO: 0}
    assert dns.pool("eu").weights() == dns.pool("na").weights() == {SOURCE: 100}
    assert dns.health_check_id(SOURCE) is not None  # the lab's check of us-east-1, found by its reference

    lab = aws_world.lab_aws_clients(topology)
    zone = aws_world.find_zone_id(lab)
    in_apac = {r["LabRegion"]: r for r in aws_world.api_records(lab, zone) if r["Name"] == aws_world.pool_name("apac")}
    assert in_apac[TOKYO]["HealthCheckId"] == check_id == aws_world.find_health_check(lab, TOKYO)["Id"]
    ours, theirs = in_apac[TOKYO], in_apac[SOURCE]
    assert {k: v for k, v in ours.items() if k not in ("SetIdentifier", "Weight", "ResourceRecords", "HealthCheckId",
                                                       "LabRegion")} == \
           {k: v for k, v in theirs.items() if k not in ("SetIdentifier", "Weight", "ResourceRecords", "HealthCheckId",
                                                         "LabRegion")}
    assert ours["ResourceRecords"] == [{"Value": aws_world.lb_name(TOKYO)}]
    assert ours["SetIdentifier"] == aws_world.set_identifier(TOKYO, geography="apac") == "ap-northeast-1-apac-weighted"
    ours_check = aws_world.find_health_check(lab, TOKYO)["HealthCheckConfig"]
    theirs_check = aws_world.find_health_check(lab, SOURCE)["HealthCheckConfig"]
    assert {k: v for k, v in ours_check.items() if k not in ("Port", "FullyQualifiedDomainName")} == \
           {k: v for k, v in theirs_check.items() if k not in ("Port", "FullyQualifiedDomainName")}

    store = S3ObjectStore.for_lab(moto, clients=moto_clients)
    store.ensure_bucket(TOKYO)
    assert store.ensure_replication(SOURCE, TOKYO)["objects_copied"] == len(aws_world.ASSETS)
    assert store.replication_regions(SOURCE) == [TOKYO]

    apac.delete_weighted(TOKYO)
    dns.delete_health_check(TOKYO)
    assert {r["LabRegion"] for r in aws_world.api_records(lab, zone)} == {SOURCE, None}  # None: geolocation
