"""The Dns Protocol on Route 53: the API name's weighted records and the regions' health checks.

One code path for AWS and the lab (DESIGN §3): the lab's Route 53 is a moto server on loopback, so the
same boto3 calls run against it. What differs is data, given to the constructor:

- AWS (`record_style="alias"`): each region's weighted record on `api.game.example` is an A ALIAS to
  the region's ALB (the ApiEndpoint host), exactly as terraform/modules/region/dns.tf writes it; the
  health check is HTTPS on the ALB's name, port 443.
- lab (`record_style="cname"`): the record is a CNAME to `<region>.lb.game.example` with the lab's TTL
  (5 s), and the health check is HTTP on 127.0.0.1:<the region's app port>/health, carrying the LB
  name as its FQDN; see migrate/lab/aws_world.py, whose conventions the lab factory passes in.

Routing is scoped per player geography (`pool`): the API name holds one GEOLOCATION record per
geography (SetIdentifier "geo-<geography>", `GEO_LOCATIONS`) answering with that geography's pool name
"<geography>.api.game.example", and each pool holds the weighted (later latency) records of the regions
serving that geography. A weighted step of shift-traffic therefore moves only its own geography's
players: APAC at 50 % sends half of APAC to Tokyo and no EU or NA player. Weighted records alone (one
set on the API name) would move p % of every geography. `ensure_geography_front` builds the front once
(the lab does it at `lab up`; on AWS it is the one-time change the shift-traffic runbook shows).

Set identifiers are "<region>-<geography>-weighted" and "<region>-<geography>-latency" in a pool
("<region>-weighted" on an unscoped name): unique across every name of the zone, because moto's DELETE
matches on the SetIdentifier alone (DESIGN §9).

shift-traffic's abilities (migrate/providers/traffic.py, TrafficDns): the weighted set changed in one batch
(`set_weights`), and the swap between weighted and latency routing (`use_latency_routing`,
`use_weighted_routing`), each one change batch that deletes the other policy's records, because Route 53
refuses two routing policies on one name and type (moto does not refuse; the players' resolver in the lab
prefers latency records when both exist, so the lab behaves either way as Route 53 would after the swap). The adapter creates records and health checks only;
the hosted zone must exist (found by name).

Every AWS call goes through `clients.call`, so only ProviderError / TransientProviderError leave here.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit


from migrate.errors import ProviderError
from migrate.names import API_NAME, HOSTED_ZONE, fqdn
from migrate.providers.aws.clients import AccountGuard, AwsClients, ClientFactory, call, env_clients, lab_clients
from migrate.providers.protocols import ApiEndpoint
from migrate.providers.traffic import Routing

log = logging.getLogger(__name__)

ZONE_NAME = fqdn(HOSTED_ZONE)
AWS_TTL_SECONDS = 60
CONTROL_REGION = "us-east-1"  # Route 53 is global; its API lives in us-east-1
ALIAS_STYLE, CNAME_STYLE = "alias", "cname"
HEALTH_CHECK_GONE = frozenset({"NoSuchHealthCheck"})
LB_NOT_FOUND = frozenset({"LoadBalancerNotFound"})
_REGION_RE = r"[a-z]{2}(?:-gov)?-[a-z]+-\d+"
# Where Route 53 finds each player geography (DESIGN §10 names). NA is the default location: every player
# outside Asia and Europe stays with the source region's geography until a region is shifted for them.
GEO_LOCATIONS: dict[str, dict[str, str]] = {"apac": {"ContinentCode": "AS"}, "eu": {"ContinentCode": "EU"},
                                            "na": {"CountryCode": "*"}}
FRONT_SET_IDENTIFIER = "geo-{geography}"


def _template_regex(template: str) -> re.Pattern[str]:
    """A regex for a "{region}" template that captures the region, e.g. "{region}-weighted"."""
    if "{region}" not in template:
        raise ProviderError(f"name template {template!r} lacks {{region}}", where="aws")
    head, _, tail = template.partition("{region}")
    return re.compile(f"^{re.escape(head)}(?P<region>{_REGION_RE}){re.escape(tail)}$")


class Route53Dns:
    """Dns on Route 53 (AWS) or on the lab's moto server (see the module docstring)."""

    def __init__(
        self,
        clients: ClientFactory | None = None,
        *,
        endpoint_url: str | None = None,
        zone_name: str = ZONE_NAME,
        record_name: str = API_NAME,
        ttl: int = AWS_TTL_SECONDS,
        record_style: str = ALIAS_STYLE,
        cname_target: str = "{region}.lb.game.example",
        set_identifier: str = "{region}-weighted",
        latency_set_identifier: str = "{region}-latency",
        caller_reference: str = "migrate-{region}",
        health_path: str = "/health",
        health_fqdn: str | None = "{region}.lb.game.example",
        request_interval: int = 10,
        failure_threshold: int = 3,
        alias_zone_id: Callable[[str, str], str] | Mapping[str, str] | None = None,
        expected_account_id: str | None = None,
        poll_interval: float = 2.0,
        wait_timeout: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        clients: (service, region) -> boto3 client (an AwsClients); None = AwsClients(endpoint_url=endpoint_url).
        endpoint_url: the moto server (lab, tests); None on AWS.
        zone_name / record_name: the existing hosted zone (found by name) and the API record in it.
        ttl: of CNAME records (lab 5 s, AWS 60 s); ALIAS records have none.
        record_style: "alias" (AWS: A ALIAS to the ALB) or "cname" (lab: CNAME to cname_target).
        set_identifier / caller_reference: "{region}" templates of the weighted record and the health check.
        latency_set_identifier: "{region}" template of the region's latency record (shift-traffic's end state).
        health_fqdn: FullyQualifiedDomainName of a health check that probes an IP address (lab); None = none.
        alias_zone_id: the ALB's canonical hosted zone id by (region, ALB DNS name), or region -> id;
            None = ask elbv2 in the region for the load balancer with that DNS name.
        expected_account_id: when set, changes first check (once) that the credentials belong to it.
        poll_interval / wait_timeout: how often and how long set_weight polls for INSYNC.
        """
        if record_style not in (ALIAS_STYLE, CNAME_STYLE):
            raise ProviderError(f"record_style must be {ALIAS_STYLE!r} or {CNAME_STYLE!r}, not {record_style!r}",
                                where="aws")
        self._clients = clients or AwsClients(endpoint_url=endpoint_url)
        self.endpoint_url = endpoint_url
        self.zone_name = fqdn(zone_name)
        self.record_name = fqdn(record_name)
        self.ttl = int(ttl)
        self.record_style = record_style
        self._cname_target = cname_target
        self._set_identifier = set_identifier
        self._set_identifier_re = _template_regex(set_identifier)
        self._latency_set_identifier = latency_set_identifier
        self._latency_re = _template_regex(latency_set_identifier)
        self._caller_reference = caller_reference
        _template_regex(caller_reference)
        self.health_path = health_path
        self._health_fqdn = health_fqdn
        self.request_interval = request_interval
        self.failure_threshold = failure_threshold
        self._alias_zone_id = alias_zone_id
        self._guard = AccountGuard(self._clients, expected_account_id)
        self._poll_interval = poll_interval
        self._wait_timeout = wait_timeout
        self._sleep = sleep
        self._clock = clock
        self._zone_id: str | None = None
        self.geography: str | None = None  # the pool this adapter is bound to (see `pool`); None: the API name
        self.api_name = self.record_name  # the name players resolve (the front, when routing is scoped)

    def pool(self, geography: str) -> Route53Dns:
        """This adapter bound to `geography`'s pool "<geography>.<API name>": same zone, clients and health
        checks; weighted/latency records and set identifiers "<region>-<geography>-<policy>" (pure)."""
        if geography not in GEO_LOCATIONS:
            raise ProviderError(f"unknown player geography {geography!r}", where="aws",
                                hint="one of " + ", ".join(sorted(GEO_LOCATIONS)))
        bound = copy.copy(self)
        bound.geography = geography
        bound.record_name = fqdn(f"{geography}.{self.api_name}")
        bound._set_identifier = _in_pool(self._root_template(self._set_identifier), geography)
        bound._set_identifier_re = _template_regex(bound._set_identifier)
        bound._latency_set_identifier = _in_pool(self._root_template(self._latency_set_identifier), geography)
        bound._latency_re = _template_regex(bound._latency_set_identifier)
        return bound

    def _root_template(self, template: str) -> str:
        if self.geography is None:
            return template
        return template.replace(f"{{region}}-{self.geography}-", "{region}-", 1)

    @classmethod
    def for_lab(cls, moto_endpoint: str, **overrides: Any) -> Route53Dns:
        """The adapter bound to a lab's moto server, with the lab's conventions (migrate/lab/aws_world.py)."""
        from migrate.lab import aws_world

        settings: dict[str, Any] = {
            "clients": lab_clients(moto_endpoint), "endpoint_url": moto_endpoint, "zone_name": aws_world.ZONE_NAME,
            "record_name": aws_world.API_NAME, "ttl": aws_world.lab_ttl_seconds(), "record_style": CNAME_STYLE,
            "cname_target": aws_world.lb_name("{region}"), "set_identifier": aws_world.set_identifier("{region}"),
            "latency_set_identifier": aws_world.set_identifier("{region}", "latency"),
            "caller_reference": aws_world.health_check_reference("{region}"),
            "health_fqdn": aws_world.lb_name("{region}"), "request_interval": 10, "failure_threshold": 1,
            "poll_interval": 0.2, "wait_timeout": 30.0}
        settings.update(overrides)
        return cls(**settings)

    # ----------------------------------------------------------------- names

    def set_identifier(self, region: str) -> str:
        """SetIdentifier of `region`'s weighted record (pure)."""
        return self._set_identifier.format(region=region)

    def latency_set_identifier(self, region: str) -> str:
        """SetIdentifier of `region`'s latency record (pure)."""
        return self._latency_set_identifier.format(region=region)

    def record_ttl(self) -> int:
        """Seconds resolvers keep an answer: the records' TTL (AWS ALIAS records take the ALB's, 60 s)."""
        return self.ttl

    def caller_reference(self, region: str) -> str:
        """CallerReference `region`'s health check is created with (pure); see _find_health_check for reuse."""
        return self._caller_reference.format(region=region)

    # ------------------------------------------------------------ read-only

    def zone_id(self) -> str:
        """Id of the hosted zone named zone_name (a public one when both exist); ProviderError when absent."""
        if self._zone_id:
            return self._zone_id
        answer = call(self._r53(), "list_hosted_zones_by_name", CONTROL_REGION, DNSName=self.zone_name)
        zones = [z for z in (answer or {}).get("HostedZones", []) if fqdn(z["Name"]) == self.zone_name]
        if not zones:
            raise ProviderError(f"hosted zone {self.zone_name} not found", where="aws",
                                hint="this adapter only adds records to an existing zone: create the zone first "
                                     "(lab: `migrate lab up`)")
        zones.sort(key=lambda z: bool(z.get("Config", {}).get("PrivateZone")))
        self._zone_id = zones[0]["Id"]
        return self._zone_id

    def health_check_id(self, region: str) -> str | None:
        found = self._find_health_check(region)
        return found["Id"] if found else None

    def weights(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self._api_records():
            match = self._set_identifier_re.match(record.get("SetIdentifier") or "")
            if match and "Weight" in record:
                out[match.group("region")] = int(record["Weight"])
        return out

    def weighted_record(self, region: str) -> dict | None:
        """`region`'s weighted record as Route 53 lists it, or None; read-only."""
        ident = self.set_identifier(region)
        return next((r for r in self._api_records() if r.get("SetIdentifier") == ident), None)

    def latency_record(self, region: str) -> dict | None:
        """`region`'s latency record as Route 53 lists it, or None; read-only."""
        ident = self.latency_set_identifier(region)
        return next((r for r in self._api_records() if r.get("SetIdentifier") == ident), None)

    def routing(self) -> Routing:
        """The weighted and latency records of the API name (TrafficDns.routing); read-only."""
        weights: dict[str, int] = {}
        latency: list[str] = []
        checks: dict[str, str | None] = {}
        for record in self._api_records():
            ident = record.get("SetIdentifier") or ""
            weighted, latent = self._set_identifier_re.match(ident), self._latency_re.match(ident)
            if weighted and "Weight" in record:
                weights[weighted.group("region")] = int(record["Weight"])
                checks.setdefault(weighted.group("region"), record.get("HealthCheckId"))
            elif latent and "Region" in record:
                latency.append(latent.group("region"))
                checks[latent.group("region")] = record.get("HealthCheckId")
        return Routing(weights=weights, latency=tuple(sorted(latency)), ttl_seconds=self.ttl, health_checks=checks)

    def geography_front(self) -> dict[str, str]:
        """geography → the pool name its players get from the API name's geolocation records; {} when the API
        name is not scoped by geography (a flat weighted set); read-only."""
        front: dict[str, str] = {}
        for record in self._records_of(self.api_name):
            ident = record.get("SetIdentifier") or ""
            geography = ident.removeprefix("geo-")
            if "GeoLocation" not in record or not ident.startswith("geo-") or geography not in GEO_LOCATIONS:
                continue
            target = ((record.get("AliasTarget") or {}).get("DNSName")
                      or next((v["Value"] for v in record.get("ResourceRecords") or []), ""))
            front[geography] = fqdn(target)
        return front

    # ------------------------------------------------------------ changes

    def ensure_geography_front(self, source_region: str, homes: Mapping[str, str],
                               endpoints: Mapping[str, ApiEndpoint]) -> dict:
        """Scope routing by geography (idempotent): every pool of GEO_LOCATIONS gets the source region's
        weighted record at weight 100 (a region already on the flat set moves into its home geography's pool
        with its weight: `homes` is region → geography), then ONE batch swaps the API name's flat weighted
        records for the geolocation records, so players see the old routing or the new one, never neither.
        `endpoints` (region → ApiEndpoint) make records that do not exist yet. Returns what changed."""
        self._guard.check()
        flat = {r: w for r, w in self.weights().items()}
        made: list[str] = []
        for geography in GEO_LOCATIONS:
            pool = self.pool(geography)
            have = pool.weights()
            homed = {r: w for r, w in flat.items() if homes.get(r) == geography and r != source_region}
            # The home geography keeps the flat split it had; every other geography is all on the source.
            wanted = {source_region: flat.get(source_region, 100) if homed else 100, **homed}
            for region, weight in sorted(wanted.items()):
                if region in have:
                    continue
                existing = self.weighted_record(region)
                endpoint = endpoints.get(region)
                if existing is None and endpoint is None:
                    raise ProviderError(f"cannot make {region}'s record in the {geography} pool: its endpoint is "
                                        f"unknown", where="aws", hint=f"is {region}'s API deployed?")
                record = pool._desired_record(region, weight, endpoint, None) if existing is None else {
                    **{k: v for k, v in existing.items() if k not in ("Name", "SetIdentifier")},
                    "Name": pool.record_name, "SetIdentifier": pool.set_identifier(region), "Weight": weight}
                answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, HostedZoneId=self.zone_id(),
                              ChangeBatch={"Comment": f"migrate: {region} in the {geography} pool",
                                           "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]})
                self._wait_insync(answer["ChangeInfo"])
                made.append(f"{pool.set_identifier(region)} weight {weight}")
        changes: list[dict] = []
        current = {r.get("SetIdentifier"): r for r in self._records_of(self.api_name)}
        for geography, location in GEO_LOCATIONS.items():
            desired = self._front_record(geography, location)
            if not _same_record(current.get(desired["SetIdentifier"]), desired):
                changes.append({"Action": "UPSERT", "ResourceRecordSet": desired})
        if changes:
            for record in current.values():
                if "Weight" in record or "Region" in record:  # one routing policy per name: the flat set goes
                    changes.append({"Action": "DELETE", "ResourceRecordSet": record})
            answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, HostedZoneId=self.zone_id(),
                          ChangeBatch={"Comment": "migrate: route each player geography to its own pool",
                                       "Changes": changes})
            self._wait_insync(answer["ChangeInfo"])
        return {"pools_created": made, "front_changed": bool(changes), "front": self.geography_front()}

    def _front_record(self, geography: str, location: Mapping[str, str]) -> dict:
        """The API name's geolocation record for `geography`: CNAME (lab) or ALIAS in the same zone (AWS)."""
        pool = fqdn(f"{geography}.{self.api_name}")
        record: dict[str, Any] = {"Name": self.api_name, "SetIdentifier": FRONT_SET_IDENTIFIER.format(geography=geography),
                                  "GeoLocation": dict(location)}
        if self.record_style == CNAME_STYLE:
            record.update(Type="CNAME", TTL=self.ttl, ResourceRecords=[{"Value": pool}])
        else:
            record.update(Type="A", AliasTarget={"HostedZoneId": self.zone_id().rsplit("/", 1)[-1], "DNSName": pool,
                                                 "EvaluateTargetHealth": True})
        return record

    def ensure_health_check(self, region: str, endpoint: ApiEndpoint) -> str:
        """Find the region's check (by caller reference, else the one its weighted record carries, e.g. the
        one Terraform made) and keep it; create it when absent. A check this adapter made is updated in
        place when the endpoint moved (port, address, path); an adopted one is left as it is."""
        self._guard.check()
        config = self._health_config(region, endpoint)
        found = self._find_health_check(region)
        if found is not None:
            if self._owns(region, found):
                self._update_if_moved(region, found, config)
            return found["Id"]
        reference = self.caller_reference(region)
        answer = call(self._r53(), "create_health_check", CONTROL_REGION, absent={"HealthCheckAlreadyExists"},
                      CallerReference=reference, HealthCheckConfig=config)
        if answer is None:
            # Route 53 remembers the reference of a deleted check for days and refuses it "regardless of the
            # settings" (CreateHealthCheck docs): a rollback followed by a new apply lands here.
            reference = f"{reference}-{int(time.time())}"
            answer = call(self._r53(), "create_health_check", CONTROL_REGION, CallerReference=reference,
                          HealthCheckConfig=config)
        check_id = answer["HealthCheck"]["Id"]
        log.info("created Route 53 health check %s (%s) for %s", check_id, reference, region)
        return check_id

    def delete_health_check(self, region: str) -> None:
        found = self._find_health_check(region)
        if found is None:
            return
        self._guard.check()
        call(self._r53(), "delete_health_check", CONTROL_REGION, absent=HEALTH_CHECK_GONE, HealthCheckId=found["Id"])
        log.info("deleted Route 53 health check %s of %s", found["Id"], region)

    def set_weight(self, region: str, weight: int, endpoint: ApiEndpoint | None = None) -> dict:
        """UPSERT the weighted record with `weight` (0..255) and wait until Route 53 reports INSYNC. Without
        an endpoint the existing record is kept as it is but for its weight (shift-traffic's case)."""
        if not 0 <= int(weight) <= 255:
            raise ProviderError(f"Route 53 weights are 0..255, not {weight}", where="aws")
        self._guard.check()
        existing = self.weighted_record(region)
        record = self._desired_record(region, int(weight), endpoint, existing)
        answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, HostedZoneId=self.zone_id(),
                      ChangeBatch={"Comment": f"migrate: {region} weight {weight}",
                                   "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]})
        change = self._wait_insync(answer["ChangeInfo"])
        return {"record": self.record_name, "set_identifier": record["SetIdentifier"], "weight": int(weight),
                "type": record["Type"], "health_check_id": record.get("HealthCheckId"),
                "change_id": change["Id"], "change_status": change["Status"]}

    def delete_weighted(self, region: str) -> None:
        existing = self.weighted_record(region)
        if existing is None:
            return
        self._guard.check()
        # A DELETE must repeat the record exactly as it is; the listed form is that.
        answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, absent={"InvalidChangeBatch"},
                      HostedZoneId=self.zone_id(),
                      ChangeBatch={"Comment": f"migrate: remove {region}'s weighted record",
                                   "Changes": [{"Action": "DELETE", "ResourceRecordSet": existing}]})
        if answer is None and self.weighted_record(region) is not None:
            raise ProviderError(f"Route 53 refused to delete {existing['SetIdentifier']} on {self.record_name}",
                                where="aws", hint="the record changed while deleting it: run again")
        if answer is not None:
            self._wait_insync(answer["ChangeInfo"])

    def set_weights(self, weights: Mapping[str, int]) -> dict:
        """UPSERT the listed regions' existing weighted records with these weights in one change batch, so the
        split moves at once (never a moment where both or neither carry the weight); wait INSYNC."""
        for region, weight in weights.items():
            if not 0 <= int(weight) <= 255:
                raise ProviderError(f"Route 53 weights are 0..255, not {weight} ({region})", where="aws")
        self._guard.check()
        changes = []
        for region, weight in sorted(weights.items()):
            existing = self.weighted_record(region)
            if existing is None:
                raise ProviderError(f"{region} has no weighted record on {self.record_name}", where="aws",
                                    hint="run stand-up-region for the region first")
            changes.append({"Action": "UPSERT",
                            "ResourceRecordSet": self._desired_record(region, int(weight), None, existing)})
        if not changes:
            return {"weights": {}}
        text = ", ".join(f"{r} {w}" for r, w in sorted(weights.items()))
        answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, HostedZoneId=self.zone_id(),
                      ChangeBatch={"Comment": f"migrate: weights {text}", "Changes": changes})
        change = self._wait_insync(answer["ChangeInfo"])
        return {"weights": {r: int(w) for r, w in sorted(weights.items())}, "change_id": change["Id"],
                "change_status": change["Status"]}

    def use_latency_routing(self, endpoints: Mapping[str, ApiEndpoint]) -> dict:
        """One change batch: DELETE every weighted record of the API name, UPSERT a latency record (with its
        health check) for each region of `endpoints`. Route 53 applies a batch all or nothing, so players see
        either the weighted set or the latency set, never neither; wait INSYNC. Idempotent."""
        if not endpoints:
            raise ProviderError("latency routing needs at least one region", where="aws")
        self._guard.check()
        records = self._api_records()
        changes: list[dict] = []
        removed: dict[str, int] = {}
        for record in records:
            match = self._set_identifier_re.match(record.get("SetIdentifier") or "")
            if match and "Weight" in record:
                removed[match.group("region")] = int(record["Weight"])
                changes.append({"Action": "DELETE", "ResourceRecordSet": record})
        current = {r.get("SetIdentifier"): r for r in records}
        for region, endpoint in sorted(endpoints.items()):
            desired = self._latency_record_for(region, endpoint)
            if _same_record(current.get(desired["SetIdentifier"]), desired):
                continue
            changes.append({"Action": "UPSERT", "ResourceRecordSet": desired})
        out: dict[str, Any] = {"latency": sorted(endpoints), "removed_weights": removed}
        if changes:
            answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, HostedZoneId=self.zone_id(),
                          ChangeBatch={"Comment": "migrate: latency routing for " + ", ".join(sorted(endpoints)),
                                       "Changes": changes})
            change = self._wait_insync(answer["ChangeInfo"])
            out.update(change_id=change["Id"], change_status=change["Status"])
        return out

    def use_weighted_routing(self, weights: Mapping[str, int], endpoints: Mapping[str, ApiEndpoint]) -> dict:
        """One change batch: DELETE every latency record of the API name, UPSERT a weighted record per region of
        `weights` (an existing one keeps its target, a missing one is made from `endpoints`); wait INSYNC."""
        if not weights:
            raise ProviderError("weighted routing needs at least one region", where="aws")
        for region, weight in weights.items():
            if not 0 <= int(weight) <= 255:
                raise ProviderError(f"Route 53 weights are 0..255, not {weight} ({region})", where="aws")
        self._guard.check()
        records = self._api_records()
        changes: list[dict] = []
        for record in records:
            if self._latency_re.match(record.get("SetIdentifier") or "") and "Region" in record:
                changes.append({"Action": "DELETE", "ResourceRecordSet": record})
        current = {r.get("SetIdentifier"): r for r in records}
        for region, weight in sorted(weights.items()):
            existing = current.get(self.set_identifier(region))
            endpoint = endpoints.get(region)
            if existing is None and endpoint is None:
                raise ProviderError(f"cannot recreate {region}'s weighted record: its API endpoint is unknown",
                                    where="aws", hint=f"is {region}'s API deployed?")
            desired = self._desired_record(region, int(weight), None if existing else endpoint, existing)
            if _same_record(existing, desired):
                continue
            changes.append({"Action": "UPSERT", "ResourceRecordSet": desired})
        out: dict[str, Any] = {"weights": {r: int(w) for r, w in sorted(weights.items())}}
        if changes:
            answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, HostedZoneId=self.zone_id(),
                          ChangeBatch={"Comment": "migrate: weighted routing " + ", ".join(
                              f"{r} {w}" for r, w in sorted(weights.items())), "Changes": changes})
            change = self._wait_insync(answer["ChangeInfo"])
            out.update(change_id=change["Id"], change_status=change["Status"])
        return out

    def remove_latency(self, region: str) -> None:
        """Delete `region`'s latency record; a no-op when absent."""
        existing = self.latency_record(region)
        if existing is None:
            return
        self._guard.check()
        answer = call(self._r53(), "change_resource_record_sets", CONTROL_REGION, absent={"InvalidChangeBatch"},
                      HostedZoneId=self.zone_id(),
                      ChangeBatch={"Comment": f"migrate: remove {region}'s latency record",
                                   "Changes": [{"Action": "DELETE", "ResourceRecordSet": existing}]})
        if answer is None and self.latency_record(region) is not None:
            raise ProviderError(f"Route 53 refused to delete {existing['SetIdentifier']} on {self.record_name}",
                                where="aws", hint="the record changed while deleting it: run again")
        if answer is not None:
            self._wait_insync(answer["ChangeInfo"])

    # ------------------------------------------------------------- helpers

    def _latency_record_for(self, region: str, endpoint: ApiEndpoint | None) -> dict:
        """The latency record of `region`: same target as its weighted record (CNAME to the LB name in the lab,
        ALIAS to the ALB on AWS), Region = the region, its health check."""
        check = self._find_health_check(region)
        record: dict[str, Any] = {"Name": self.record_name, "SetIdentifier": self.latency_set_identifier(region),
                                  "Region": region}
        if self.record_style == CNAME_STYLE:
            record.update(Type="CNAME", TTL=self.ttl,
                          ResourceRecords=[{"Value": self._cname_target.format(region=region)}])
        else:
            if endpoint is None:
                raise ProviderError(f"cannot make {region}'s latency record: its API endpoint (ALB) is unknown",
                                    where="aws", hint=f"is {region}'s API deployed?")
            record.update(Type="A", AliasTarget={"HostedZoneId": self._alias_zone(region, endpoint.host),
                                                 "DNSName": endpoint.host, "EvaluateTargetHealth": True})
        if check is not None:
            record["HealthCheckId"] = check["Id"]
        return record


    def _r53(self) -> Any:
        return self._clients("route53", CONTROL_REGION)

    def _api_records(self) -> list[dict]:
        """Every record of the name this adapter routes (the API name, or its pool's name)."""
        return self._records_of(self.record_name)

    def _records_of(self, name: str) -> list[dict]:
        """Every record of `name`, read from the first record at that name on (names are listed in order)."""
        name = fqdn(name)
        records: list[dict] = []
        params: dict[str, Any] = {"HostedZoneId": self.zone_id(), "StartRecordName": name}
        while True:
            page = call(self._r53(), "list_resource_record_sets", CONTROL_REGION, **params) or {}
            for record in page.get("ResourceRecordSets", []):
                if fqdn(record["Name"]) != name:
                    return records
                records.append(record)
            if not page.get("IsTruncated"):
                return records
            params = {"HostedZoneId": self.zone_id(), "StartRecordName": page["NextRecordName"],
                      "StartRecordType": page["NextRecordType"]}
            if page.get("NextRecordIdentifier"):
                params["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def _health_checks(self) -> list[dict]:
        checks: list[dict] = []
        params: dict[str, Any] = {}
        while True:
            page = call(self._r53(), "list_health_checks", CONTROL_REGION, **params) or {}
            checks.extend(page.get("HealthChecks", []))
            if not page.get("IsTruncated") or not page.get("NextMarker"):
                return checks
            params = {"Marker": page["NextMarker"]}

    def _owns(self, region: str, check: dict) -> bool:
        reference = self.caller_reference(region)
        got = check.get("CallerReference") or ""
        return got == reference or got.startswith(f"{reference}-")

    def _find_health_check(self, region: str) -> dict | None:
        """The region's check: one created with its caller reference (or that reference plus a suffix, after a
        deleted one blocked the plain reference), else the one the region's weighted record uses."""
        checks = self._health_checks()
        owned = [c for c in checks if self._owns(region, c)]
        if owned:
            # The plain reference wins; else the newest suffixed one (suffixes are creation times).
            plain = self.caller_reference(region)
            return max(owned, key=lambda c: (c["CallerReference"] == plain, _suffix(c["CallerReference"], plain)))
        record = self.weighted_record(region)
        carried = (record or {}).get("HealthCheckId")
        return next((c for c in checks if c["Id"] == carried), None) if carried else None

    def _health_config(self, region: str, endpoint: ApiEndpoint) -> dict:
        scheme = urlsplit(endpoint.url).scheme.lower() if endpoint.url else ""
        kind = "HTTPS" if scheme == "https" or (not scheme and endpoint.port == 443) else "HTTP"
        config: dict[str, Any] = {"Type": kind, "Port": int(endpoint.port), "ResourcePath": self.health_path,
                                  "RequestInterval": self.request_interval,
                                  "FailureThreshold": self.failure_threshold}
        if _is_ip(endpoint.host):
            config["IPAddress"] = endpoint.host
            if self._health_fqdn:
                config["FullyQualifiedDomainName"] = self._health_fqdn.format(region=region)
        else:
            config["FullyQualifiedDomainName"] = endpoint.host
        if kind == "HTTPS":
            config["EnableSNI"] = True
        return config

    def _update_if_moved(self, region: str, found: dict, config: dict) -> None:
        current = found.get("HealthCheckConfig", {})
        mutable = ("IPAddress", "Port", "ResourcePath", "FullyQualifiedDomainName", "FailureThreshold", "EnableSNI")
        changes = {k: config[k] for k in mutable if k in config and current.get(k) != config[k]}
        if not changes:
            return
        if current.get("Type") != config["Type"]:
            raise ProviderError(f"health check {found['Id']} of {region} is {current.get('Type')}, the API now needs "
                                f"{config['Type']}: Route 53 cannot change a check's type", where="aws",
                                hint="roll the phase back (deletes the check) and run it again")
        call(self._r53(), "update_health_check", CONTROL_REGION, HealthCheckId=found["Id"],
             HealthCheckVersion=int(found.get("HealthCheckVersion", 1)), **changes)
        log.info("updated health check %s of %s: %s", found["Id"], region, sorted(changes))

    def _desired_record(self, region: str, weight: int, endpoint: ApiEndpoint | None, existing: dict | None) -> dict:
        check = self._find_health_check(region)
        health_check_id = check["Id"] if check else (existing or {}).get("HealthCheckId")
        if endpoint is None:
            if existing is None:
                raise ProviderError(f"{region} has no weighted record on {self.record_name} yet and no endpoint was "
                                    f"given to create one", where="aws", hint="run stand-up-region for the region first")
            record = dict(existing)
            record["Weight"] = weight
            if health_check_id:
                record["HealthCheckId"] = health_check_id
            return record
        record: dict[str, Any] = {"Name": self.record_name, "SetIdentifier": self.set_identifier(region),
                                  "Weight": weight}
        if self.record_style == CNAME_STYLE:
            record.update(Type="CNAME", TTL=self.ttl,
                          ResourceRecords=[{"Value": self._cname_target.format(region=region)}])
        else:
            record.update(Type="A", AliasTarget={"HostedZoneId": self._alias_zone(region, endpoint.host),
                                                 "DNSName": endpoint.host, "EvaluateTargetHealth": True})
        if health_check_id:
            record["HealthCheckId"] = health_check_id
        return record

    def _alias_zone(self, region: str, dns_name: str) -> str:
        source = self._alias_zone_id
        if callable(source):
            return source(region, dns_name)
        if isinstance(source, Mapping) and region in source:
            return source[region]
        wanted = fqdn(dns_name.removeprefix("dualstack."))
        params: dict[str, Any] = {}
        elbv2 = self._clients("elbv2", region)
        while True:
            page = call(elbv2, "describe_load_balancers", region, **params) or {}
            for lb in page.get("LoadBalancers", []):
                if fqdn(lb.get("DNSName", "")) == wanted:
                    return lb["CanonicalHostedZoneId"]
            if not page.get("NextMarker"):
                break
            params = {"Marker": page["NextMarker"]}
        raise ProviderError(f"no load balancer named {dns_name} in {region}: cannot alias {self.record_name} to it",
                            where="aws", hint="apply the region's Terraform root (it creates the ALB) and run again")

    def _wait_insync(self, change: dict) -> dict:
        deadline = self._clock() + self._wait_timeout
        while change.get("Status") != "INSYNC":
            if self._clock() >= deadline:
                raise ProviderError(f"Route 53 change {change.get('Id')} still {change.get('Status')} after "
                                    f"{self._wait_timeout:.0f} s", where="aws",
                                    hint="the change is applied eventually; the step is safe to run again")
            self._sleep(self._poll_interval)
            change = call(self._r53(), "get_change", CONTROL_REGION, Id=change["Id"])["ChangeInfo"]
        return change


def _in_pool(template: str, geography: str) -> str:
    """"{region}-weighted" → "{region}-apac-weighted": a pool's set identifiers stay unique zone-wide."""
    return template.replace("{region}", "{region}-" + geography, 1)


def _same_record(listed: dict | None, desired: dict) -> bool:
    """True when Route 53 already lists `desired` (names compared as FQDNs; ALIAS names case-insensitively)."""
    if listed is None:
        return False
    for key, value in desired.items():
        have = listed.get(key)
        if key == "Name":
            if fqdn(have or "") != fqdn(value):
                return False
        elif key == "AliasTarget":
            have = have or {}
            if (fqdn(have.get("DNSName", "")) != fqdn(value["DNSName"]) or have.get("HostedZoneId") != value["HostedZoneId"]
                    or bool(have.get("EvaluateTargetHealth")) != bool(value["EvaluateTargetHealth"])):
                return False
        elif key == "ResourceRecords":
            if [fqdn(v["Value"]) for v in have or []] != [fqdn(v["Value"]) for v in value]:
                return False
        elif have != value:
            return False
    return True


def _suffix(reference: str, plain: str) -> int:
    tail = reference[len(plain) + 1:]
    return int(tail) if tail.isdigit() else -1


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def from_spec(spec: Any, env: Any, repo_root: Any = None, *, topology: Any = None,
              clients: ClientFactory | None = None, **overrides: Any) -> Route53Dns:
    """The Dns adapter of an environment. lab: the moto server of `topology` with the lab's conventions;
    aws: the spec's profile (or its moto endpoint_url), ALIAS records to the ALBs, TTL 60 s, the account check."""
    if env.kind == "lab":
        if topology is None:
            env_clients(env)  # raises the explanation
        if clients is not None:
            overrides["clients"] = clients
        return Route53Dns.for_lab(topology.moto_endpoint, **overrides)
    made, endpoint_url = (clients, getattr(env.aws, "endpoint_url", None)) if clients else env_clients(env)
    settings: dict[str, Any] = {"clients": made, "endpoint_url": endpoint_url, "ttl": AWS_TTL_SECONDS,
                                "record_style": ALIAS_STYLE,
                                "expected_account_id": getattr(env.aws, "account_id", None)}
    settings.update(overrides)
    return Route53Dns(**settings)


