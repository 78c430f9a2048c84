"""Build the providers for an environment. Adapters are imported lazily so that the engine never
imports boto3 or psycopg itself, and a lab run never needs AWS credentials.

The lab's Route 53 and S3 are a moto server, so the lab uses the same boto3 adapters as AWS for
them (DESIGN §3); its database, Redis and app are local processes driven by the lab adapters. The
shadow mirror's switch is the lab's watched file, on AWS an SSM parameter with CloudWatch figures."""

from __future__ import annotations

import os
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
        from migrate.providers.lab.runtime import LabInfrastructure, LabRegionRuntime
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
                         **stand_up_providers(spec, env, repo_root, topology=topology))
    from migrate.providers.aws import metrics, shadow
    from migrate.providers.aws.global_database import AwsGlobalDatabase

    aws_side = stand_up_providers(spec, env, repo_root)
    return Providers(global_database=AwsGlobalDatabase.from_spec(spec, env.aws),
                     shadow=shadow.from_spec(spec, env, repo_root, runtime=aws_side["runtime"]),
                     traffic_metrics=metrics.from_spec(spec, env, repo_root, dns=aws_side["dns"]), **aws_side)
