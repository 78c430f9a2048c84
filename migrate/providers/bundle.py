"""The adapters one environment gives a phase, as one value (built by migrate/providers/factory.py)."""

from __future__ import annotations

from dataclasses import dataclass

from migrate.providers.protocols import (Dns, GlobalDatabase, HomeServing, HomeWriters, Infrastructure,
                                         ObjectStore, OriginFailover, RegionRuntime, SchemaStore)
from migrate.providers.shadow import ShadowMirror
from migrate.providers.traffic import TrafficMetrics


@dataclass(frozen=True)
class Providers:
    """The adapters a phase may use, already bound to one environment (lab or aws); None where the
    environment has none (a phase that needs it says so in its preflight)."""

    global_database: GlobalDatabase | None = None  # the Aurora global database or the lab's clusters
    infrastructure: Infrastructure | None = None  # a region's foundation (Terraform root or lab folders)
    runtime: RegionRuntime | None = None  # a region's API and cache (ECS/ElastiCache or lab processes)
    object_store: ObjectStore | None = None  # asset buckets and their replication (S3)
    dns: Dns | None = None  # the API name's records and health checks (Route 53)
    shadow: ShadowMirror | None = None  # the switch and report of the source app's mirror
    traffic_metrics: TrafficMetrics | None = None  # what the gates measure (CloudWatch or the lab's apps)
    schema: SchemaStore | None = None  # the game's schema at the players' writer (Alembic)
    home_writers: HomeWriters | None = None  # each home's own writer (cutover)
    home_serving: HomeServing | None = None  # which region serves a home, its cache state (cutover), lab only
    origin_failover: OriginFailover | None = None  # the origin's writer moved elsewhere (Aurora), AWS only
