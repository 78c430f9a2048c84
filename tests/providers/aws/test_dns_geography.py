"""Route53Dns scopes routing per player geography against a real moto server: the API name answers each
geography with its own pool, a pool's weights move only that geography, the flat set of an older world is
moved into pools in one swap, and every set identifier stays unique zone-wide (moto deletes by it alone)."""

from __future__ import annotations

import pytest

from migrate.errors import ProviderError
from migrate.providers.aws.dns import GEO_LOCATIONS, Route53Dns
from migrate.providers.protocols import ApiEndpoint

from .conftest import FRANKFURT, SOURCE, TOKYO, lab_endpoint

HOMES = {SOURCE: "na", TOKYO: "apac", FRANKFURT: "eu"}


@pytest.fixture
def dns(moto, moto_clients, zone):
    return Route53Dns.for_lab(moto, clients=moto_clients, poll_interval=0)


def all_records(aws, zone):
    return aws("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]


def test_the_front_answers_each_geography_with_its_own_pool(dns, aws, zone):
    dns.ensure_health_check(SOURCE, lab_endpoint(SOURCE))
    out = dns.ensure_geography_front(SOURCE, HOMES, {SOURCE: lab_endpoint(SOURCE)})
    assert out["front"] == {g: f"{g}.api.game.example." for g in GEO_LOCATIONS}
    front = {r["SetIdentifier"]: r for r in all_records(aws, zone) if r["Name"] == "api.game.example."}
    assert front["geo-apac"]["GeoLocation"] == {"ContinentCode": "AS"}
    assert front["geo-na"]["GeoLocation"] == {"CountryCode": "*"}  # everyone else stays with the source
    for geography in GEO_LOCATIONS:
        pool = dns.pool(geography)
        assert pool.weights() == {SOURCE: 100}
        assert pool.routing().health_checks == {SOURCE: dns.health_check_id(SOURCE)}


def test_building_the_front_again_changes_nothing(dns):
    dns.ensure_geography_front(SOURCE, HOMES, {SOURCE: lab_endpoint(SOURCE)})
    again = dns.ensure_geography_front(SOURCE, HOMES, {SOURCE: lab_endpoint(SOURCE)})
    assert again["pools_created"] == [] and again["front_changed"] is False


def test_a_flat_weighted_set_moves_into_the_pools_in_one_swap(dns, aws, zone):
    for region in (SOURCE, TOKYO):  # an older world: the weighted set on the API name itself
        dns.ensure_health_check(region, lab_endpoint(region))
        dns.set_weight(region, 100 if region == SOURCE else 0, lab_endpoint(region))
    dns.ensure_geography_front(SOURCE, HOMES, {})
    assert dns.weights() == {}  # the flat set is gone: one routing policy per name
    assert dns.pool("apac").weights() == {SOURCE: 100, TOKYO: 0}  # Tokyo went to its home geography only
    assert dns.pool("eu").weights() == dns.pool("na").weights() == {SOURCE: 100}
    assert dns.pool("apac").routing().health_checks[TOKYO] == dns.health_check_id(TOKYO)


def test_a_pool_step_moves_only_its_geography(dns):
    dns.ensure_geography_front(SOURCE, HOMES, {SOURCE: lab_endpoint(SOURCE)})
    dns.ensure_health_check(TOKYO, lab_endpoint(TOKYO))
    apac = dns.pool("apac")
    apac.set_weight(TOKYO, 0, lab_endpoint(TOKYO))
    apac.set_weights({TOKYO: 50, SOURCE: 50})
    assert apac.routing().share(TOKYO) == 0.5
    assert dns.pool("eu").routing().share(TOKYO) == dns.pool("na").routing().share(TOKYO) == 0.0
    apac.use_latency_routing({r: lab_endpoint(r) for r in (SOURCE, TOKYO)})
    assert apac.routing().latency == (TOKYO, SOURCE)  # sorted
    assert dns.pool("eu").routing().mode == "weighted"


def test_set_identifiers_are_unique_across_every_name(dns, aws, zone):
    dns.ensure_geography_front(SOURCE, HOMES, {SOURCE: lab_endpoint(SOURCE)})
    for region in (TOKYO, FRANKFURT):
        dns.pool(HOMES[region]).set_weight(region, 0, lab_endpoint(region))
    dns.pool("apac").use_latency_routing({r: lab_endpoint(r) for r in (SOURCE, TOKYO)})
    idents = [r["SetIdentifier"] for r in all_records(aws, zone) if r.get("SetIdentifier")]
    assert len(idents) == len(set(idents))
    assert "us-east-1-apac-latency" in idents and "eu-central-1-eu-weighted" in idents
    # Deleting one pool's record (moto matches the identifier alone) leaves the others.
    dns.pool("eu").delete_weighted(FRANKFURT)
    assert dns.pool("eu").weights() == {SOURCE: 100}
    assert set(dns.pool("apac").routing().latency) == {SOURCE, TOKYO}


def test_an_unknown_geography_is_refused(dns):
    with pytest.raises(ProviderError, match="unknown player geography 'mars'"):
        dns.pool("mars")


def test_the_aws_front_aliases_the_pool_names_in_the_same_zone(moto, moto_clients, aws, zone):
    dns = Route53Dns(moto_clients, endpoint_url=moto, alias_zone_id={SOURCE: "Z35SXDOTRQ7X7K"}, poll_interval=0)
    alb = ApiEndpoint(SOURCE, "game-use1-123.us-east-1.elb.amazonaws.com", 443, "https://game-use1-123")
    dns.ensure_geography_front(SOURCE, HOMES, {SOURCE: alb})
    front = {r["SetIdentifier"]: r for r in all_records(aws, zone) if r["Name"] == "api.game.example."}
    alias = front["geo-eu"]["AliasTarget"]
    assert alias["DNSName"].rstrip(".") == "eu.api.game.example"
    assert zone.endswith(alias["HostedZoneId"])
    assert dns.pool("eu").weighted_record(SOURCE)["AliasTarget"]["DNSName"].startswith("game-use1-123")
