"""The load generator's resolver against a real moto server (Route 53 records and health checks the
test creates the way the lab does) and real HTTP /health endpoints per region.

No sleeping: TTL behaviour runs on an injected clock; health checkers are driven round by round."""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from moto.server import ThreadedMotoServer

from migrate.lab.load.resolver import (API_NAME, ZONE_NAME, HealthCheckers, Record, ResolveError, Resolver, parse_records,
                                 pick_weighted, route53_client)
from migrate.lab.pg import free_port

US, AP, EU = "us-east-1", "ap-northeast-1", "eu-central-1"
PLAYERS = range(1, 401)
TTL = 5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HealthServers:
    """One real HTTP server per region answering /health with the status the test sets."""

    def __init__(self) -> None:
        self.status = {US: 200, AP: 200, EU: 200}
        self.hits: Counter[str] = Counter()
        self.servers, self.ports = [], {}
        for region in self.status:
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(region))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)
            self.ports[region] = server.server_address[1]

    def _handler(self, region: str):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits[region] += 1
                code = outer.status[region]
                body = b'{"status": "ok"}' if code == 200 else b'{"status": "down"}'
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def r53(moto_endpoint):
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"),
                           timeout=10).close()
    client = route53_client(moto_endpoint)
    zone = client.create_hosted_zone(Name=ZONE_NAME, CallerReference="test-zone")["HostedZone"]["Id"]
    return client, zone


@pytest.fixture
def health():
    servers = HealthServers()
    yield servers
    servers.close()


def health_check(client, health: HealthServers, region: str) -> str:
    """A health check shaped like the lab's (HTTP /health, FailureThreshold 1)."""
    return client.create_health_check(
        CallerReference=f"lab-api-{region}",
        HealthCheckConfig={"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": health.ports[region],
                           "ResourcePath": "/health", "FullyQualifiedDomainName": f"{region}.lb.game.example",
                           "RequestInterval": 10, "FailureThreshold": 1})["HealthCheck"]["Id"]


def upsert(client, zone: str, region: str, *, weight: int | None = None, latency: bool = False,
           check: str | None = None, ttl: int = TTL) -> None:
    record = {"Name": API_NAME, "Type": "CNAME", "TTL": ttl,
              "ResourceRecords": [{"Value": f"{region}.lb.game.example"}]}
    if latency:
        record.update(SetIdentifier=f"{region}-latency", Region=region)
    else:
        record.update(SetIdentifier=f"{region}-weighted", Weight=weight)
    if check:
        record["HealthCheckId"] = check
    client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
        "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]})


def checkers_for(health: HealthServers, dead: set[tuple[str, str]] = frozenset()) -> HealthCheckers:
    """Checkers probing each region's server; (geography, region) pairs in `dead` hit a closed port
    (a cut link between that geography and that region)."""
    closed = free_port()

    def endpoint(geography: str, region: str) -> tuple[str, int]:
        return "127.0.0.1", closed if (geography, region) in dead else health.ports[region]

    return HealthCheckers(endpoint, interval_s=60, timeout_s=1)


def shares(resolver: Resolver, geography: str = "apac") -> Counter[str]:
    return Counter(resolver.resolve(geography, pid) for pid in PLAYERS)


def test_weights_100_0_send_every_player_to_one_region(r53):
    client, zone = r53
    upsert(client, zone, US, weight=100)
    upsert(client, zone, AP, weight=0)
    resolver = Resolver(client, seed=7)
    for geography in ("apac", "na", "eu"):
        assert shares(resolver, geography) == Counter({US: len(PLAYERS)})


def test_weights_50_50_use_both_regions_and_a_player_sticks_within_a_ttl(r53):
    client, zone = r53
    upsert(client, zone, US, weight=50)
    upsert(client, zone, AP, weight=50)
    resolver = Resolver(client, seed=7)
    first = {pid: resolver.resolve("apac", pid) for pid in PLAYERS}
    counts = Counter(first.values())
    assert set(counts) == {US, AP}
    assert 0.5 < counts[US] / counts[AP] < 2.0  # about half each (a seeded draw, not timing)
    assert {pid: resolver.resolve("apac", pid) for pid in PLAYERS} == first  # same TTL: same answers
    assert resolver.stats.record_reads == 1


def test_weights_1_to_3_split_about_one_to_three(r53):
    client, zone = r53
    upsert(client, zone, US, weight=1)
    upsert(client, zone, AP, weight=3)
    counts = shares(Resolver(client, seed=3))
    assert counts[AP] > 2 * counts[US] > 0


def test_all_weights_zero_is_equal_shares(r53):
    client, zone = r53
    for region in (US, AP, EU):
        upsert(client, zone, region, weight=0)
    counts = shares(Resolver(client, seed=1))
    assert set(counts) == {US, AP, EU}
    assert max(counts.values()) < 2 * min(counts.values())


def test_a_weight_change_is_seen_only_after_the_ttl(r53):
    client, zone = r53
    upsert(client, zone, US, weight=100)
    upsert(client, zone, AP, weight=0)
    clock = FakeClock()
    resolver = Resolver(client, seed=5, clock=clock)
    assert shares(resolver) == Counter({US: len(PLAYERS)})

    upsert(client, zone, US, weight=0)
    upsert(client, zone, AP, weight=100)
    clock.now += TTL - 0.5
    assert shares(resolver) == Counter({US: len(PLAYERS)}), "the change must not be seen before the TTL"
    assert resolver.stats.record_reads == 1, "Route 53 must not be re-read before the TTL"

    clock.now += 1.0
    assert shares(resolver) == Counter({AP: len(PLAYERS)}), "the change must be seen after the TTL"
    assert resolver.stats.record_reads == 2


def test_an_unhealthy_weighted_record_is_skipped_and_weight_zero_is_the_fallback(r53, health):
    client, zone = r53
    upsert(client, zone, US, weight=100, check=health_check(client, health, US))
    upsert(client, zone, AP, weight=0, check=health_check(client, health, AP))
    clock = FakeClock()
    checkers = checkers_for(health)
    resolver = Resolver(client, checkers, seed=2, clock=clock)
    try:
        resolver.refresh(force=True)
        checkers.probe_once()
        assert shares(resolver) == Counter({US: len(PLAYERS)})

        health.status[US] = 503  # us-east-1's app fails its health check
        checkers.probe_once()
        clock.now += TTL + 1
        assert shares(resolver) == Counter({AP: len(PLAYERS)})

        health.status[AP] = 503  # nothing healthy: Route 53 answers as if all were healthy
        checkers.probe_once()
        clock.now += TTL + 1
        assert shares(resolver) == Counter({US: len(PLAYERS)})
        assert health.hits[US] >= 3 * 3  # three rounds, one probe per geography
    finally:
        checkers.close()


def test_latency_records_pick_the_nearest_healthy_region_per_geography(r53, health):
    client, zone = r53
    for region in (US, AP, EU):
        upsert(client, zone, region, latency=True, check=health_check(client, health, region))
    clock = FakeClock()
    checkers = checkers_for(health)
    resolver = Resolver(client, checkers, seed=0, clock=clock)
    try:
        resolver.refresh(force=True)
        checkers.probe_once()
        assert {g: set(shares(resolver, g)) for g in ("apac", "na", "eu")} == {
            "apac": {AP}, "na": {US}, "eu": {EU}}

        health.status[AP] = 503  # Tokyo down: APAC goes to the next nearest (us-east-1, 170 ms < 255 ms)
        checkers.probe_once()
        clock.now += TTL + 1
        assert {g: set(shares(resolver, g)) for g in ("apac", "na", "eu")} == {
            "apac": {US}, "na": {US}, "eu": {EU}}
        assert resolver.healthy_regions() == {US: True, AP: False, EU: True}
    finally:
        checkers.close()


def test_one_cut_link_does_not_fail_a_health_check_but_a_region_cut_from_everyone_does(r53, health):
    """Route 53 counts a check healthy while > 18 % of its checkers (here: one per geography) say so."""
    client, zone = r53
    for region in (US, AP, EU):
        upsert(client, zone, region, latency=True, check=health_check(client, health, region))
    for dead, expected_apac in (({("apac", AP)}, AP),
                                ({("apac", AP), ("na", AP), ("eu", AP)}, US)):
        checkers = checkers_for(health, dead)
        resolver = Resolver(client, checkers, seed=0)
        try:
            resolver.refresh(force=True)
            checkers.probe_once()
            assert set(shares(resolver, "apac")) == {expected_apac}
        finally:
            checkers.close()


def test_records_map_to_regions_by_region_field_set_identifier_or_value():
    rrsets = [
        {"Name": "api.game.example.", "Type": "CNAME", "SetIdentifier": "ap-northeast-1-weighted", "Weight": 5,
         "TTL": 5, "ResourceRecords": [{"Value": "somewhere.example"}]},
        {"Name": "api.game.example.", "Type": "CNAME", "SetIdentifier": "x", "Region": "eu-central-1",
         "TTL": 5, "ResourceRecords": [{"Value": "y.example"}]},
        {"Name": "api.game.example.", "Type": "CNAME", "SetIdentifier": "blue", "Weight": 1, "TTL": 5,
         "ResourceRecords": [{"Value": "us-east-1.lb.game.example"}]},
        {"Name": "api.game.example.", "Type": "CNAME", "SetIdentifier": "mystery", "Weight": 1, "TTL": 5,
         "ResourceRecords": [{"Value": "elsewhere.example"}]},
        {"Name": "other.game.example.", "Type": "CNAME", "TTL": 5, "ResourceRecords": [{"Value": "us-east-1.lb"}]},
    ]
    records, notes = parse_records(rrsets)
    assert [(r.region, r.policy) for r in records] == [(AP, "weighted"), (EU, "latency"), (US, "weighted")]
    assert notes == ["record mystery maps to no known region"]


def test_weighted_choice_follows_route53_rules_for_zero_weights():
    a = Record(US, "weighted", "a", 5, "a", 1, "hc-a")
    b = Record(AP, "weighted", "b", 5, "b", 1, "hc-b")
    z = Record(EU, "weighted", "z", 5, "z", 0, "hc-z")
    draws = [i / 100 for i in range(100)]

    def picks(healthy: set[str]) -> set[str]:
        return {pick_weighted([a, b, z], lambda r: r.health_check_id in healthy, d).region for d in draws}

    assert picks({"hc-a", "hc-b", "hc-z"}) == {US, AP}  # weight 0 not considered while others are healthy
    assert picks({"hc-b", "hc-z"}) == {AP}
    assert picks({"hc-z"}) == {EU}  # every nonzero record unhealthy: the zero-weight one answers
    assert picks(set()) == {US, AP}  # nothing healthy: all count as healthy, weights apply


def test_a_missing_zone_is_an_error_until_records_exist(moto_endpoint):
    from migrate.lab.load.resolver import ResolveError

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"),
                           timeout=10).close()
    resolver = Resolver(route53_client(moto_endpoint))
    with pytest.raises(ResolveError):
        resolver.resolve("apac", 1)


# --- routing scoped per geography: geolocation records in front of per-geography pools -------------
def geo_front(client, zone: str, pools: dict[str, dict]) -> None:
    """The API name answers AS with the apac pool, EU with the eu pool, everyone else (*) with the na pool."""
    where = {"apac": {"ContinentCode": "AS"}, "eu": {"ContinentCode": "EU"}, "na": {"CountryCode": "*"}}
    changes = [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": API_NAME, "Type": "CNAME", "TTL": TTL, "SetIdentifier": f"geo-{geo}", "GeoLocation": where[geo],
        "ResourceRecords": [{"Value": f"{geo}.{API_NAME}"}]}} for geo in where]
    for geo, weights in pools.items():
        for region, weight in weights.items():
            changes.append({"Action": "UPSERT", "ResourceRecordSet": {
                "Name": f"{geo}.{API_NAME}", "Type": "CNAME", "TTL": TTL, "SetIdentifier": f"{region}-{geo}-weighted",
                "Weight": weight, "ResourceRecords": [{"Value": f"{region}.lb.game.example"}]}})
    client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})


def test_a_geography_pool_moves_only_its_own_players(r53):
    client, zone = r53
    geo_front(client, zone, {"apac": {US: 50, AP: 50}, "eu": {US: 100}, "na": {US: 100}})
    resolver = Resolver(client, clock=FakeClock())
    apac = shares(resolver, "apac")
    assert set(apac) == {US, AP} and 0.35 < apac[AP] / len(PLAYERS) < 0.65
    assert shares(resolver, "eu") == Counter({US: len(PLAYERS)})  # EU players never see Tokyo
    assert shares(resolver, "na") == Counter({US: len(PLAYERS)})  # NA has no continent record: the default


def test_a_pool_of_latency_records_sends_its_geography_to_the_nearest_region(r53):
    client, zone = r53
    geo_front(client, zone, {"eu": {US: 100}, "na": {US: 100}})
    for region in (US, AP):
        client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT",
            "ResourceRecordSet": {"Name": f"apac.{API_NAME}", "Type": "CNAME", "TTL": TTL, "Region": region,
                                  "SetIdentifier": f"{region}-apac-latency",
                                  "ResourceRecords": [{"Value": f"{region}.lb.game.example"}]}}]})
    resolver = Resolver(client, clock=FakeClock())
    assert shares(resolver, "apac") == Counter({AP: len(PLAYERS)})
    assert shares(resolver, "eu") == Counter({US: len(PLAYERS)})
    assert {r.region for r in resolver.records} == {US, AP}


def test_a_geography_without_a_record_or_default_cannot_resolve(r53):
    client, zone = r53
    client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT",
        "ResourceRecordSet": {"Name": API_NAME, "Type": "CNAME", "TTL": TTL, "SetIdentifier": "geo-apac",
                              "GeoLocation": {"ContinentCode": "AS"},
                              "ResourceRecords": [{"Value": f"apac.{API_NAME}"}]}}]})
    upsert(client, zone, US, weight=100)  # a flat record on the API name is not reached once geolocation exists
    resolver = Resolver(client, clock=FakeClock())
    with pytest.raises(ResolveError, match="no geolocation record for eu players"):
        resolver.resolve("eu", 1)
