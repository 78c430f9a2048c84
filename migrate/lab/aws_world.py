"""The lab's AWS control plane: a moto server on loopback holding Route 53 and S3 (DESIGN §6).

How DNS records map to regions (the contract the load generator and the phases rely on):

- Hosted zone `game.example.` (public). The API name is `api.game.example.`.
- Each region is a load-balancer name `<region>.lb.game.example` (`lb_name`). Every record of the
  API name is a CNAME whose single value is such a name, so a record's value names its region
  (`region_of_value`). Clients then connect to that region through their geography's WAN link
  (`LabTopology.player_port(geography, region)`): DNS answers "which region", the lab answers "how".
- Routing is scoped per player geography (migrate/providers/aws/dns.py builds it): the API name holds
  one geolocation CNAME per geography (SetIdentifier "geo-<geography>") answering with the pool name
  `<geography>.api.game.example` (`pool_name`); each pool holds the records of the regions serving that
  geography, with a routing policy and a SetIdentifier `<region>-<geography>-<policy>` (`set_identifier`):
  "us-east-1-apac-weighted" (Weight 0..255), later "ap-northeast-1-apac-latency" (Region). Identifiers
  are unique across the whole zone because moto deletes records by SetIdentifier alone (DESIGN §9).
  `region_of_record` maps a record to its region by SetIdentifier prefix, else by value.
- TTL is `LAB_TTL_SECONDS` (5 s) in the lab, or `MIGRATE_LAB_DNS_TTL` where only the mechanics
  matter (the test suite: every bake first waits one TTL for resolvers to follow a change).
- Each region's record carries the Route 53 health check of that region's app, found by
  CallerReference `lab-api-<region>` (`health_check_reference`): Type HTTP, IPAddress 127.0.0.1,
  Port = the region's app port (what its load balancer exposes; every player link forwards there),
  ResourcePath /health, FullyQualifiedDomainName = the region's LB name. moto does not probe health
  checks (its status is always "Success"); health-aware clients call `probe_health` on the config.
- S3: the asset bucket of a region is `game-assets-<region>` (`bucket_name`); its objects are
  public-read so the app's asset URLs (`asset_base_url`: the bucket's path-style URL on the moto
  server) download without credentials.

Clients (`lab_aws_clients`) are configured explicitly: endpoint, fake credentials, no retries, and a
botocore session that reads neither the environment's profile nor ~/.aws."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from migrate.errors import LabError
from migrate import names
from migrate.lab import processes
from migrate.names import HOSTED_ZONE, fqdn
from migrate.lab.topology import REGIONS, SOURCE_REGION, LabTopology

ZONE_NAME = fqdn(HOSTED_ZONE)  # as Route 53 lists them
API_NAME = fqdn(names.API_NAME)
LB_DOMAIN = "lb.game.example"
LAB_TTL_SECONDS = 5  # as short as a real record's TTL would be
TTL_VARIABLE = "MIGRATE_LAB_DNS_TTL"
MOTO_PROCESS = "moto"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
CLIENT_REGION = "us-east-1"  # Route 53 is global; S3 buckets name their region themselves
ZONE_REFERENCE = "lab-zone-game-example"


def lab_ttl_seconds() -> int:
    """The TTL of the lab's records: LAB_TTL_SECONDS, or MIGRATE_LAB_DNS_TTL (whole seconds ≥ 1) when set."""
    raw = os.environ.get(TTL_VARIABLE)
    if raw is None:
        return LAB_TTL_SECONDS
    if not raw.strip().isdigit() or int(raw) < 1:
        raise LabError(f"{TTL_VARIABLE}={raw!r}: must be a whole number of seconds ≥ 1",
                       hint=f"unset it for the lab's {LAB_TTL_SECONDS} s")
    return int(raw)

# Small objects every region's bucket starts with: name → (content type, body).
ASSETS: dict[str, tuple[str, bytes]] = {
    "manifest.json": ("application/json",
                      json.dumps({"version": 1, "assets": ["ui/logo.svg", "maps/arena-1.json"]}).encode()),
    "ui/logo.svg": ("image/svg+xml",
                    (b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
                     b'<rect width="16" height="16" fill="#3a6"/></svg>')),
    "maps/arena-1.json": ("application/json", b'{"name": "arena-1", "size": [64, 64], "spawns": 8}'),
}


# --- naming: how records and resources map to regions ----------------------------------------------

def lb_name(region: str) -> str:
    """The region's load-balancer name: the value of every API record that routes to the region."""
    return f"{region}.{LB_DOMAIN}"


def region_of_value(value: str) -> str | None:
    """The region a record value (an LB name, with or without the final dot) routes to, or None."""
    host = value.rstrip(".")
    suffix = f".{LB_DOMAIN}"
    if not host.endswith(suffix):
        return None
    region = host[: -len(suffix)]
    return region if region in REGIONS else None


def set_identifier(region: str, policy: str = "weighted", geography: str | None = None) -> str:
    """SetIdentifier of `region`'s record under `policy` ("weighted", "latency", ...) in `geography`'s pool
    (None: on an unscoped name): unique zone-wide."""
    return f"{region}-{geography}-{policy}" if geography else f"{region}-{policy}"


def pool_name(geography: str) -> str:
    """The name `geography`'s players are answered with by the API name's geolocation record."""
    return f"{geography}.{API_NAME}"


def region_of_record(record: dict[str, Any]) -> str | None:
    """The region a ResourceRecordSet (as boto3 lists it) routes to: by SetIdentifier prefix, else by value."""
    ident = record.get("SetIdentifier") or ""
    for region in sorted(REGIONS, key=len, reverse=True):
        if ident.startswith(f"{region}-"):
            return region
    for rr in record.get("ResourceRecords") or []:
        region = region_of_value(rr.get("Value", ""))
        if region:
            return region
    return None


def health_check_reference(region: str) -> str:
    """CallerReference of the Route 53 health check of `region`'s app (how the lab finds it again)."""
    return f"lab-api-{region}"


def bucket_name(region: str) -> str:
    """The S3 asset bucket of `region`."""
    return f"game-assets-{region}"


def asset_base_url(topology: LabTopology, region: str) -> str:
    """Base URL of `region`'s assets: the bucket's path-style URL on the moto server (the app's ASSET_BASE_URL)."""
    return f"{topology.moto_endpoint}/{bucket_name(region)}"


# --- clients ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabAwsClients:
    """boto3 clients bound to the lab's moto server (fake credentials, max_attempts 1)."""

    route53: Any
    s3: Any


def _isolated_session():
    """A boto3 session that ignores AWS_PROFILE, ~/.aws/config and ~/.aws/credentials."""
    import boto3
    import botocore.session

    core = botocore.session.Session(session_vars={
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    })
    return boto3.session.Session(botocore_session=core)


def lab_aws_clients(topology: LabTopology) -> LabAwsClients:
    """Route 53 and S3 clients for the lab's moto server; nothing is read from the environment or ~/.aws.
    One pair per moto endpoint and process: building a boto3 client costs ~0.1 s of CPU (it loads the
    service model), and wait loops and gates ask for them every second (boto3 clients are thread-safe)."""
    if not topology.moto_port:
        raise LabError("this lab has no moto port", hint="run `migrate lab up`")
    return _clients_for(topology.moto_endpoint)


@functools.lru_cache(maxsize=8)
def _clients_for(endpoint_url: str) -> LabAwsClients:
    from botocore.config import Config

    session = _isolated_session()
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                    s3={"addressing_style": "path"})
    kwargs = dict(region_name=CLIENT_REGION, endpoint_url=endpoint_url, config=config,
                  **FAKE_CREDENTIALS)
    return LabAwsClients(route53=session.client("route53", **kwargs), s3=session.client("s3", **kwargs))


def _aws_errors(what: str):
    """Context manager: botocore failures become one-line LabErrors naming `what`."""
    import contextlib

    from botocore.exceptions import BotoCoreError, ClientError

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise LabError(f"moto: {what}: {error.get('Code', '?')}: {error.get('Message', exc)}") from exc
        except BotoCoreError as exc:
            raise LabError(f"moto: {what}: {exc}", hint="is the moto server up? `migrate lab status`") from exc

    return guard()


def find_zone_id(clients: LabAwsClients) -> str | None:
    """Id of the hosted zone `game.example.` (e.g. "/hostedzone/ABC"), or None when absent."""
    with _aws_errors("list hosted zones"):
        zones = clients.route53.list_hosted_zones_by_name(DNSName=ZONE_NAME)["HostedZones"]
    for zone in zones:
        if zone["Name"] == ZONE_NAME:
            return zone["Id"]
    return None


def zone_id(topology: LabTopology) -> str:
    """Id of the lab's hosted zone `game.example.`; LabError when the lab (or its moto) is not up."""
    found = find_zone_id(lab_aws_clients(topology))
    if found is None:
        raise LabError(f"hosted zone {ZONE_NAME} not found in the lab's moto server",
                       hint="run `migrate lab up`")
    return found


def find_health_check(clients: LabAwsClients, region: str) -> dict[str, Any] | None:
    """The Route 53 health check of `region`'s app (as boto3 lists it), or None."""
    reference = health_check_reference(region)
    with _aws_errors("list health checks"):
        pages = clients.route53.get_paginator("list_health_checks").paginate()
        for page in pages:
            for check in page["HealthChecks"]:
                if check.get("CallerReference") == reference:
                    return check
    return None


def api_records(clients: LabAwsClients, zone: str) -> list[dict[str, Any]]:
    """Every record players' resolution can reach (the API name's and its geography pools'), as boto3 lists
    them, each with an added "LabRegion" key naming the region it routes to (None for the geolocation
    records, which answer with a pool; see region_of_record; "Region" stays the latency policy's field)."""
    records = []
    with _aws_errors("list resource record sets"):
        for page in clients.route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone):
            for record in page["ResourceRecordSets"]:
                if record["Name"] == API_NAME or record["Name"].endswith("." + API_NAME):
                    region = None if "GeoLocation" in record else region_of_record(record)
                    records.append({**record, "LabRegion": region})
    return records


def probe_health(config: dict[str, Any], timeout: float = 1.0) -> bool:
    """What a Route 53 checker would conclude from one probe of an HTTP health check's config: 2xx/3xx."""
    url = f"http://{config.get('IPAddress', '127.0.0.1')}:{config.get('Port', 80)}{config.get('ResourcePath') or '/'}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --- building it (idempotent) ----------------------------------------------------------------------

def ensure_hosted_zone(clients: LabAwsClients) -> tuple[str, bool]:
    """(zone id, created): the public zone `game.example.`, created when absent."""
    found = find_zone_id(clients)
    if found:
        return found, False
    with _aws_errors("create hosted zone"):
        zone = clients.route53.create_hosted_zone(
            Name=ZONE_NAME, CallerReference=ZONE_REFERENCE,
            HostedZoneConfig={"Comment": "migrate lab: the game's public zone", "PrivateZone": False})
    return zone["HostedZone"]["Id"], True


def ensure_asset_bucket(clients: LabAwsClients, region: str) -> list[str]:
    """The asset bucket of `region` with the starter objects (public-read); what was created."""
    from botocore.exceptions import ClientError

    bucket, created = bucket_name(region), []
    with _aws_errors("list buckets"):
        exists = any(b["Name"] == bucket for b in clients.s3.list_buckets().get("Buckets", []))
    if not exists:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with _aws_errors(f"create bucket {bucket}"):
            clients.s3.create_bucket(**kwargs)
        created.append(f"bucket {bucket}")
    for key, (content_type, body) in ASSETS.items():
        try:
            clients.s3.head_object(Bucket=bucket, Key=key)
            continue
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise LabError(f"moto: head s3://{bucket}/{key}: {exc}") from exc
        with _aws_errors(f"put s3://{bucket}/{key}"):
            clients.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                                  ACL="public-read")
        created.append(f"s3://{bucket}/{key}")
    return created


RouteApi = Callable[[LabTopology], list[str]]
"""Routes the API name to us-east-1 in the lab's Route 53 (health check, geography pools at weight
100); the actions taken. The lab is built below the providers, so whoever brings it up hands this in
(migrate/providers/factory.py: the same Route 53 adapter the phases use)."""


def ensure_source_world(topology: LabTopology, route_api: RouteApi) -> list[str]:
    """The "before" control plane: zone, the API name routed per geography to us-east-1 (`route_api`),
    its asset bucket; each part created only when absent. The actions taken."""
    clients = lab_aws_clients(topology)
    actions = []
    zone, created = ensure_hosted_zone(clients)
    if created:
        actions.append(f"created Route 53 zone {ZONE_NAME} ({zone})")
    actions.extend(route_api(topology))
    made = ensure_asset_bucket(clients, SOURCE_REGION)
    if made:
        actions.append(f"created S3 {', '.join(made)}")
    return actions


# --- the moto process ------------------------------------------------------------------------------

def start_moto(topology: LabTopology) -> processes.Started:
    """Start the moto server on 127.0.0.1:moto_port as a detached process (a no-op when it runs)."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise LabError("moto's server is not installed in this Python",
                       hint=f"{sys.executable} -m pip install 'moto[server]'")
    # Nothing from the caller's AWS configuration reaches the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return processes.start_detached(
        topology.lab_dir, MOTO_PROCESS,
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(topology.moto_port)],
        env=env, cwd=topology.lab_dir, port=topology.moto_port)


def stop_moto(topology: LabTopology) -> int | None:
    """Stop the moto server (its state is in memory: gone with it); the pid stopped, or None."""
    return processes.stop_process(topology.lab_dir, MOTO_PROCESS)


def aws_summary(topology: LabTopology) -> dict[str, Any]:
    """What moto holds for the lab: the zone id, the API records (with region, weight, health check)
    and the asset buckets; read-only. LabError when moto does not answer."""
    clients = lab_aws_clients(topology)
    zone = find_zone_id(clients)
    records = []
    if zone:
        for r in api_records(clients, zone):
            records.append({"name": r["Name"], "type": r["Type"], "set_identifier": r.get("SetIdentifier"),
                            "region": r["LabRegion"], "weight": r.get("Weight"),
                            "latency_region": r.get("Region"), "ttl": r.get("TTL"),
                            "values": [v["Value"] for v in r.get("ResourceRecords", [])],
                            "health_check_id": r.get("HealthCheckId")})
    with _aws_errors("list buckets"):
        buckets = sorted(b["Name"] for b in clients.s3.list_buckets().get("Buckets", []))
    return {"zone_id": zone, "records": records, "buckets": buckets}
