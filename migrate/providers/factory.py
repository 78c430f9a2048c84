"""Build the providers for an environment. Adapters are imported lazily so that the engine never
imports boto3 or psycopg itself, and a lab run never needs AWS credentials.

The lab's Route 53 and S3 are a moto server, so the lab uses the same boto3 adapters as AWS for
them (DESIGN §3); its database, Redis and app are local processes driven by the lab adapters. The
shadow mirror's switch is the lab's watched file, on AWS an SSM parameter with CloudWatch figures."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from migrate.providers.bundle import Providers
from migrate.errors import LabError


def lab_dir_for(env, spec_dir: Path) -> Path:
    """MIGRATE_LAB_DIR wins; else the spec's lab.lab_dir, relative to the spec file's folder."""
    override = os.environ.get("MIGRATE_LAB_DIR")
    if override:
        return Path(override).absolute()
    return (spec_dir / env.lab.lab_dir).absolute()


def build_providers(spec, env) -> Providers:
    """The adapters for `env`: lab processes (+ boto3 on moto) for kind 'lab', boto3 for kind 'aws'."""
    from migrate.providers.aws.runtime import stand_up_providers

    repo_root = spec.path.parent
    if env.kind == "lab":
        from migrate.lab.topology import LabTopology
        from migrate.providers.lab.global_database import LabGlobalDatabase
        from migrate.providers.lab.home_serving import LabHomeServing
        from migrate.providers.lab.home_writers import LabHomeWriters
        from migrate.providers.lab.runtime import LabInfrastructure, LabRegionRuntime
        from migrate.providers.lab.schema import LabSchema
        from migrate.providers.lab.shadow import LabShadowMirror
        from migrate.providers.lab.traffic import LabTrafficMetrics

        lab_dir = lab_dir_for(env, repo_root)
        topology = LabTopology.load(lab_dir)
        if topology is None:
            raise LabError(f"the lab is not up (no {lab_dir / 'lab.json'})",
                           hint="start it with `migrate lab up`")
        return Providers(global_database=LabGlobalDatabase(topology),
                         infrastructure=LabInfrastructure(topology), runtime=LabRegionRuntime(topology),
                         shadow=LabShadowMirror(topology),
                         traffic_metrics=LabTrafficMetrics(topology, LabGlobalDatabase(topology)),
                         schema=LabSchema(topology), home_writers=LabHomeWriters(topology),
                         home_serving=LabHomeServing(topology),
                         **stand_up_providers(spec, env, repo_root, topology=topology))
    from migrate.providers.aws import metrics, shadow
    from migrate.providers.aws.global_database import AwsGlobalDatabase

    from migrate.providers.aws.home_serving import AwsHomeServing
    from migrate.providers.aws.home_writers import AwsHomeWriters

    aws_side = stand_up_providers(spec, env, repo_root)
    global_database = AwsGlobalDatabase.from_spec(spec, env.aws)
    access = _aws_database_access(spec, env, global_database)
    regions = (spec.source_region, *(r for r in spec.regions if r != spec.source_region))
    home_writers = AwsHomeWriters(global_database, access, regions)
    return Providers(global_database=global_database, origin_failover=global_database,
                     schema=access.schema_store(homes=home_writers.promoted) if access else None,
                     home_writers=home_writers,
                     home_serving=AwsHomeServing(regions, global_database.clients,
                                                 origin_dsn=access.writer_dsn if access else None,
                                                 origin_password=access.password if access else None),
                     shadow=shadow.from_spec(spec, env, repo_root, runtime=aws_side["runtime"]),
                     traffic_metrics=metrics.from_spec(spec, env, repo_root, dns=aws_side["dns"]), **aws_side)


def _aws_database_access(spec, env, global_database):
    """Access to the Aurora writer with the credentials in [environments.NAME.aws] database_secret_id
    (read from Secrets Manager on first use); None when the spec names no secret (the schema phases then
    refuse in one line, and moving a home's cache state says what is missing)."""
    from migrate.providers.aws.database_access import DatabaseAccess

    if not env.aws.database_secret_id:
        return None
    return DatabaseAccess(global_database.clients, global_database.source_region, env.aws.database_secret_id,
                          env.aws.database_name, global_database.writer_address)


def route_lab_api(topology) -> list[str]:
    """The lab's API name routed to us-east-1 (health check, geolocation front, every geography's pool
    at weight 100), made by the same Route 53 adapter the phases use; the actions taken. Handed to
    `lab_up` (migrate.lab.world), which sits below the providers."""
    from migrate.lab import aws_world
    from migrate.names import API_NAME, SOURCE_REGION
    from migrate.providers.aws.dns import Route53Dns
    from migrate.providers.protocols import ApiEndpoint

    port = topology.app_ports[SOURCE_REGION]
    endpoint = ApiEndpoint(SOURCE_REGION, "127.0.0.1", port, f"http://127.0.0.1:{port}")
    dns = Route53Dns.for_lab(topology.moto_endpoint)
    actions = []
    had_check = dns.health_check_id(SOURCE_REGION) is not None
    with _lab_route53("health check of the source region"):
        check = dns.ensure_health_check(SOURCE_REGION, endpoint)
    if not had_check:
        actions.append(f"created Route 53 health check {check} (HTTP 127.0.0.1:{port}/health) for {SOURCE_REGION}")
    with _lab_route53("the API name's geography routing"):
        front = dns.ensure_geography_front(SOURCE_REGION, {}, {SOURCE_REGION: endpoint})
    if front["pools_created"] or front["front_changed"]:
        actions.append(f"routed {API_NAME} per geography (geolocation → " + ", ".join(
            f"{geo}: {pool}" for geo, pool in sorted(front["front"].items())) + f"), each pool CNAME "
            f"{aws_world.lb_name(SOURCE_REGION)} weight 100, TTL {dns.record_ttl()} s")
    return actions


@contextmanager
def _lab_route53(what: str):
    """A provider failure while building the lab reads as the lab's: moto is the lab's process."""
    from migrate.errors import MigrateError

    try:
        yield
    except MigrateError as exc:
        raise LabError(f"moto: {what}: {exc.one_line()}", hint="is the moto server up? `migrate lab status`") from exc
