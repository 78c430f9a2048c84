"""Route53Dns's shift-traffic abilities (TrafficDns) against a real moto server: the weighted set moved in one
batch, the swap to latency records with health checks and back, in the lab's style (CNAME) and AWS's (ALIAS
to the ALB). Stubber pins what moto cannot show: both policies change in ONE change batch, and a PENDING
change is waited for."""

from __future__ import annotations

import pytest
from botocore.stub import ANY

from migrate.errors import ProviderError
from migrate.lab.aws_world import lab_ttl_seconds
from migrate.providers.aws.dns import Route53Dns
from migrate.providers.protocols import ApiEndpoint
from migrate.providers.traffic import TrafficDns

from .conftest import FRANKFURT, LAB_PORTS, SOURCE, TOKYO, StubbedClients, lab_endpoint

TTL = lab_ttl_seconds()  # the lab's, as the test run sets it (tests/conftest.py)


@pytest.fixture
def lab_dns(moto, moto_clients, zone):
    dns = Route53Dns.for_lab(moto, clients=moto_clients, poll_interval=0)
    for region in (SOURCE, TOKYO):  # stand-up-region's end state for both regions, us-east-1 with all weight
        dns.ensure_health_check(region, lab_endpoint(region))
        dns.set_weight(region, 100 if region == SOURCE else 0, lab_endpoint(region))
    return dns


def api_records(aws, zone):
    return {r["SetIdentifier"]: r for r in aws("route53").list_resource_record_sets(HostedZoneId=zone)
            ["ResourceRecordSets"] if r["Name"] == "api.game.example."}


def test_the_adapter_has_the_traffic_abilities(lab_dns):
    dns: TrafficDns = lab_dns
    assert dns.record_ttl() == TTL
    routing = dns.routing()
    assert (routing.weights, routing.latency, routing.ttl_seconds) == ({SOURCE: 100, TOKYO: 0}, (), TTL)
    assert routing.health_checks == {r: lab_dns.health_check_id(r) for r in (SOURCE, TOKYO)}
    assert dns.routing().mode == "weighted" and dns.routing().serving() == (SOURCE,)


def test_set_weights_moves_the_split_in_one_batch(lab_dns, aws, zone):
    out = lab_dns.set_weights({TOKYO: 25, SOURCE: 75})
    assert out["weights"] == {SOURCE: 75, TOKYO: 25} and out["change_status"] == "INSYNC"
    assert lab_dns.weights() == {SOURCE: 75, TOKYO: 25}
    record = api_records(aws, zone)["ap-northeast-1-weighted"]
    assert record["HealthCheckId"] == lab_dns.health_check_id(TOKYO)  # kept as stand-up made it
    assert lab_dns.routing().share(TOKYO) == 0.25


def test_set_weights_refuses_bad_weights_and_missing_records(lab_dns):
    with pytest.raises(ProviderError, match="0..255"):
        lab_dns.set_weights({TOKYO: 300})
    with pytest.raises(ProviderError, match="eu-central-1 has no weighted record"):
        lab_dns.set_weights({FRANKFURT: 10, SOURCE: 90})
    assert lab_dns.weights() == {SOURCE: 100, TOKYO: 0}  # nothing half applied


def test_swap_to_latency_records_with_health_checks_and_back(lab_dns, aws, zone):
    lab_dns.set_weights({TOKYO: 50, SOURCE: 50})
    endpoints = {r: lab_endpoint(r) for r in (SOURCE, TOKYO)}
    out = lab_dns.use_latency_routing(endpoints)
    assert out["latency"] == [TOKYO, SOURCE] and out["removed_weights"] == {SOURCE: 50, TOKYO: 50}
    records = api_records(aws, zone)
    assert set(records) == {"us-east-1-latency", "ap-northeast-1-latency"}  # no weighted record left
    tokyo = records["ap-northeast-1-latency"]
    assert (tokyo["Type"], tokyo["Region"], tokyo["TTL"]) == ("CNAME", TOKYO, TTL)
    assert tokyo["ResourceRecords"] == [{"Value": "ap-northeast-1.lb.game.example"}]
    assert tokyo["HealthCheckId"] == lab_dns.health_check_id(TOKYO)
    routing = lab_dns.routing()
    assert routing.mode == "latency" and routing.latency == (TOKYO, SOURCE) and routing.weights == {}
    assert routing.health_checks[TOKYO] == lab_dns.health_check_id(TOKYO)
    assert lab_dns.weights() == {}

    again = lab_dns.use_latency_routing(endpoints)  # idempotent: nothing to change
    assert "change_id" not in again and again["removed_weights"] == {}

    back = lab_dns.use_weighted_routing({SOURCE: 50, TOKYO: 50}, endpoints)
    assert back["weights"] == {SOURCE: 50, TOKYO: 50}
    records = api_records(aws, zone)
    assert set(records) == {"us-east-1-weighted", "ap-northeast-1-weighted"}
    assert records["ap-northeast-1-weighted"]["HealthCheckId"] == lab_dns.health_check_id(TOKYO)
    assert records["ap-northeast-1-weighted"]["TTL"] == TTL
    assert lab_dns.routing().weights == {SOURCE: 50, TOKYO: 50} and lab_dns.routing().latency == ()


def test_a_latency_record_can_go_on_its_own(lab_dns):
    lab_dns.use_latency_routing({r: lab_endpoint(r) for r in (SOURCE, TOKYO)})
    lab_dns.remove_latency(TOKYO)
    lab_dns.remove_latency(TOKYO)  # a no-op the second time
    assert lab_dns.routing().latency == (SOURCE,)


def test_weighted_routing_needs_an_endpoint_for_a_record_it_must_create(lab_dns):
    lab_dns.use_latency_routing({SOURCE: lab_endpoint(SOURCE)})
    with pytest.raises(ProviderError, match="endpoint is unknown"):
        lab_dns.use_weighted_routing({SOURCE: 100, FRANKFURT: 0}, {SOURCE: lab_endpoint(SOURCE)})


def test_aws_style_latency_records_alias_the_albs(moto, moto_clients, zone, aws):
    lbs = {}
    for region, cidr in ((SOURCE, "10.0"), (TOKYO, "10.1")):
        ec2 = aws("ec2", region)
        vpc = ec2.create_vpc(CidrBlock=f"{cidr}.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr}.{i}.0/24", AvailabilityZone=f"{region}{z}")
                   ["Subnet"]["SubnetId"] for i, z in enumerate("ab" if region == SOURCE else "ac")]
        lbs[region] = aws("elbv2", region).create_load_balancer(
            Name=f"game-{region}-api", Subnets=subnets)["LoadBalancers"][0]
    endpoints = {r: ApiEndpoint(r, lb["DNSName"], 443, f"https://{lb['DNSName']}") for r, lb in lbs.items()}
    dns = Route53Dns(moto_clients, endpoint_url=moto, poll_interval=0)
    for region, endpoint in endpoints.items():
        dns.ensure_health_check(region, endpoint)
        dns.set_weight(region, 100 if region == SOURCE else 0, endpoint)
    assert dns.record_ttl() == 60

    dns.use_latency_routing(endpoints)
    records = api_records(aws, zone)
    assert set(records) == {"us-east-1-latency", "ap-northeast-1-latency"}
    tokyo = records["ap-northeast-1-latency"]
    assert tokyo["Type"] == "A" and tokyo["Region"] == TOKYO
    assert tokyo["AliasTarget"]["HostedZoneId"] == lbs[TOKYO]["CanonicalHostedZoneId"]
    assert tokyo["AliasTarget"]["EvaluateTargetHealth"] is True
    assert tokyo["HealthCheckId"] == dns.health_check_id(TOKYO)

    dns.use_weighted_routing({SOURCE: 100, TOKYO: 0}, endpoints)
    records = api_records(aws, zone)
    assert {k: v["Weight"] for k, v in records.items()} == {"us-east-1-weighted": 100, "ap-northeast-1-weighted": 0}
    assert records["ap-northeast-1-weighted"]["Type"] == "A"


def _listed(ident: str, **extra) -> dict:
    return {"Name": "api.game.example.", "Type": "CNAME", "SetIdentifier": ident, "TTL": 5,
            "ResourceRecords": [{"Value": f"{ident.rsplit('-', 1)[0]}.lb.game.example"}], **extra}


def test_the_swap_is_one_change_batch_and_waits_for_insync():
    """Route 53 refuses two routing policies on one name, and a batch is all or nothing: the deletes of the
    weighted records and the latency records must travel together. The change comes back PENDING first."""
    clients = StubbedClients()
    r53 = clients.stub("route53", "us-east-1")
    dns = Route53Dns.for_lab("http://moto.invalid", clients=clients, poll_interval=0)
    zone = {"Id": "/hostedzone/Z1", "Name": "game.example.", "CallerReference": "x",
            "Config": {"PrivateZone": False}, "ResourceRecordSetCount": 3}
    weighted = [_listed("us-east-1-weighted", Weight=0, HealthCheckId="hc-use1"),
                _listed("ap-northeast-1-weighted", Weight=100, HealthCheckId="hc-apne1")]
    r53.add_response("list_hosted_zones_by_name", {"HostedZones": [zone], "IsTruncated": False, "MaxItems": "100"},
                     {"DNSName": "game.example."})
    r53.add_response("list_resource_record_sets", {"ResourceRecordSets": weighted, "IsTruncated": False,
                                                   "MaxItems": "300"}, {"HostedZoneId": "/hostedzone/Z1",
                                                                        "StartRecordName": "api.game.example."})
    for region, check in ((TOKYO, "hc-apne1"), (SOURCE, "hc-use1")):
        r53.add_response("list_health_checks", {"HealthChecks": [
            {"Id": check, "CallerReference": f"lab-api-{region}", "HealthCheckVersion": 1,
             "HealthCheckConfig": {"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": LAB_PORTS[region]}}],
            "IsTruncated": False, "Marker": "", "MaxItems": "100"}, {})
    expected_changes = [{"Action": "DELETE", "ResourceRecordSet": weighted[0]},
                        {"Action": "DELETE", "ResourceRecordSet": weighted[1]},
                        {"Action": "UPSERT", "ResourceRecordSet": _listed("ap-northeast-1-latency", Region=TOKYO,
                                                                          HealthCheckId="hc-apne1")},
                        {"Action": "UPSERT", "ResourceRecordSet": _listed("us-east-1-latency", Region=SOURCE,
                                                                          HealthCheckId="hc-use1")}]
    r53.add_response("change_resource_record_sets",
                     {"ChangeInfo": {"Id": "/change/C1", "Status": "PENDING", "SubmittedAt": "2027-01-01T00:00:00Z"}},
                     {"HostedZoneId": "/hostedzone/Z1", "ChangeBatch": {"Comment": ANY, "Changes": expected_changes}})
    r53.add_response("get_change", {"ChangeInfo": {"Id": "/change/C1", "Status": "INSYNC",
                                                   "SubmittedAt": "2027-01-01T00:00:00Z"}}, {"Id": "/change/C1"})
    out = dns.use_latency_routing({TOKYO: lab_endpoint(TOKYO), SOURCE: lab_endpoint(SOURCE)})
    assert out["change_status"] == "INSYNC" and out["removed_weights"] == {SOURCE: 0, TOKYO: 100}
    clients.assert_done()
