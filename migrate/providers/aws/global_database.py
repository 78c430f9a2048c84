"""The GlobalDatabase Protocol on AWS: an Aurora PostgreSQL Global Database driven with boto3.

Shape on AWS: one global cluster whose first writer is the primary cluster in the source region; every
other region gets one secondary cluster (named by a template, e.g. "game-{region}") holding one reader
instance. A region's app finds its read endpoint in the SSM parameter /migrate/<region>/db/reader-endpoint,
so "point the region's reads at its local replica" is one parameter write, and so is undoing it.

Everything here talks to AWS through `clients.call`, so only ProviderError / TransientProviderError
leave this module.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.clients import AwsClients, ClientFactory, call
from migrate.providers.protocols import (
    ChunkChecksum,
    CheckpointFn,
    PrimaryFacts,
    ProgressFn,
    ReplicationLag,
    SecondaryFacts,
)

log = logging.getLogger(__name__)

ENGINE = "aurora-postgresql"
LAG_METRIC = "AuroraGlobalDBReplicationLag"  # milliseconds, published in the secondary's region
READER_PARAMETER = "/migrate/{region}/db/reader-endpoint"
MANAGED_TAG = {"Key": "managed-by", "Value": "migrate"}

CLUSTER_NOT_FOUND = frozenset({"DBClusterNotFoundFault"})
INSTANCE_NOT_FOUND = frozenset({"DBInstanceNotFound", "DBInstanceNotFoundFault"})
GLOBAL_NOT_FOUND = frozenset({"GlobalClusterNotFoundFault"})
# States from which a cluster or instance will not become available without a human.
_BROKEN_CLUSTER_STATES = frozenset({
    "failed", "inaccessible-encryption-credentials", "inaccessible-encryption-credentials-recoverable",
    "incompatible-network", "incompatible-parameters", "incompatible-restore", "deleting",
})
_BROKEN_INSTANCE_STATES = frozenset({
    "failed", "inaccessible-encryption-credentials", "inaccessible-encryption-credentials-recoverable",
    "incompatible-network", "incompatible-option-group", "incompatible-parameters", "incompatible-restore",
    "restore-error", "storage-full", "deleting",
})


class SqlChecksummer(Protocol):
    """Runs the data-verification SQL against Aurora endpoints; it holds the database credentials this adapter never sees."""

    def key_range(self, writer_endpoint: str, table: str) -> tuple[int, int]:
        """(min id, max id + 1) of `table` on the writer; (0, 0) when empty."""

    def checksum_chunk(self, writer_endpoint: str, reader_endpoint: str, table: str, lo: int, hi: int) -> ChunkChecksum:
        """Checksum rows lo <= id < hi on the writer and on the reader at one LSN; read-only."""

    def chunk_end(self, writer_endpoint: str, table: str, start: int, rows: int) -> int | None:
        """The id after the first `rows` rows with id >= start on the writer; None when fewer are left."""


def version_num(version: str) -> int:
    """PostgreSQL's server_version_num for an engine version string: "15.4" -> 150004, "9.6.22" -> 90622; 0 if unparsable."""
    match = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", version or "")
    if not match:
        return 0
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    if major >= 10:
        return major * 10000 + minor
    return major * 10000 + minor * 100 + patch


def arn_region_and_id(arn: str) -> tuple[str, str]:
    """("ap-northeast-1", "game-ap-northeast-1") from arn:aws:rds:ap-northeast-1:123456789012:cluster:game-ap-northeast-1."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "rds":
        raise ProviderError(f"not an RDS cluster ARN: {arn}", where="aws")
    return parts[3], parts[6]


class AwsGlobalDatabase:
    """GlobalDatabase on Aurora PostgreSQL Global Database (see the module docstring for the AWS layout)."""

    def __init__(
        self,
        *,
        global_cluster_id: str,
        primary_cluster_id: str,
        source_region: str = "us-east-1",
        secondary_cluster_id: str | Callable[[str], str] = "game-{region}",
        engine_version: str | None = None,
        db_instance_class: str = "db.r6g.large",
        cluster_options: Mapping[str, Mapping[str, Any]] | None = None,
        instance_options: Mapping[str, Mapping[str, Any]] | None = None,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
        client_factory: ClientFactory | None = None,
        sql_checksummer: SqlChecksummer | None = None,
        poll_interval: float = 15.0,
        wait_timeout: float = 3600.0,
        lag_window_seconds: float = 300.0,
        expected_account_id: str | None = None,
        fallback_regions: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        global_cluster_id: the Aurora global cluster shared by every region.
        primary_cluster_id: the writer cluster in `source_region` the global cluster is made from.
        secondary_cluster_id: name of a region's secondary cluster, a "{region}" template or a function.
        engine_version: the version secondaries must run; None = whatever the primary runs (Aurora needs them equal).
        cluster_options / instance_options: extra create_db_cluster / create_db_instance arguments per region
            (DBSubnetGroupName, VpcSecurityGroupIds, KmsKeyId for an encrypted primary, ...), e.g. terraform outputs.
        endpoint_url: a moto server for tests and the lab; None = real AWS.
        session / client_factory: where clients come from; a factory (service, region) -> client wins (tests pass Stubber-wrapped ones).
        sql_checksummer: runs key_range / checksum_chunk SQL; None = those two raise an honest ProviderError.
        poll_interval / wait_timeout: how often and how long to poll AWS while a cluster changes state.
        lag_window_seconds: how far back replication_lag looks for CloudWatch datapoints.
        expected_account_id: when set, every change first checks (once) that the credentials belong to it.
        fallback_regions: where to ask for the global cluster when the source region's RDS API does not answer.
        """
        if isinstance(secondary_cluster_id, str) and "{region}" not in secondary_cluster_id:
            raise ProviderError(f"secondary cluster name template {secondary_cluster_id!r} lacks {{region}}", where="aws")
        self.global_cluster_id = global_cluster_id
        self.primary_cluster_id = primary_cluster_id
        self.source_region = source_region
        self._secondary_name = secondary_cluster_id
        self.engine_version = engine_version
        self.db_instance_class = db_instance_class
        self._cluster_options = {k: dict(v) for k, v in (cluster_options or {}).items()}
        self._instance_options = {k: dict(v) for k, v in (instance_options or {}).items()}
        self._clients = client_factory or AwsClients(session=session, endpoint_url=endpoint_url)
        self._checksummer = sql_checksummer
        self._poll_interval = poll_interval
        self._wait_timeout = wait_timeout
        self._lag_window = lag_window_seconds
        self._expected_account = expected_account_id
        self.fallback_regions = tuple(fallback_regions)
        self._account_checked = False
        self._sleep = sleep
        self._clock = clock

    @classmethod
    def from_spec(cls, spec: Any, aws: Any, **overrides: Any) -> AwsGlobalDatabase:
        """The adapter for an [environments.NAME.aws] table: the profile's credentials (or, against a
        moto endpoint, the environment's), the account check, and the project's naming: global cluster
        "game-global", primary "game-<source region>", secondaries "game-<region>"."""
        source = getattr(spec, "writer_region", None) or spec.source_region
        endpoint_url = getattr(aws, "endpoint_url", None)
        settings: dict[str, Any] = {
            "global_cluster_id": "game-global",
            "primary_cluster_id": f"game-{source}",
            "source_region": source,
            "secondary_cluster_id": "game-{region}",
            "endpoint_url": endpoint_url,
            "expected_account_id": getattr(aws, "account_id", None),
            "wait_timeout": 6 * 3600.0,  # creating a global secondary copies the whole volume
            "fallback_regions": tuple(r for r in getattr(spec, "regions", ()) if r != source),
        }
        settings.update(overrides)
        if "session" not in settings and "client_factory" not in settings and not endpoint_url:
            try:
                settings["session"] = boto3.Session(profile_name=aws.profile)
            except BotoCoreError as exc:  # ProfileNotFound and friends: one line, no traceback
                raise ProviderError(f"AWS profile {aws.profile!r} is not usable: {type(exc).__name__}",
                                    where="aws", hint="configure it in ~/.aws/config (e.g. aws configure sso)") from None
        return cls(**settings)

    # ----------------------------------------------------------------- names

    def secondary_cluster_name(self, region: str) -> str:
        """The secondary cluster's identifier in `region`."""
        name = self._secondary_name
        return name(region) if callable(name) else name.format(region=region)

    def reader_instance_name(self, region: str) -> str:
        """The secondary's one reader instance in `region`."""
        return f"{self.secondary_cluster_name(region)}-reader-1"

    # ------------------------------------------------------------ read-only

    def primary_facts(self) -> PrimaryFacts:
        try:
            global_cluster = self._global_cluster()
            region, cluster_id = self._writer(global_cluster)
            cluster = self._cluster(region, cluster_id)
        except ProviderError as exc:
            return PrimaryFacts(reachable=False, detail=exc.one_line())
        if cluster is None:
            return PrimaryFacts(reachable=False, detail=f"writer cluster {cluster_id} not found in {region}")
        status = cluster.get("Status", "unknown")
        if status != "available":
            return PrimaryFacts(reachable=False, detail=f"writer cluster {cluster_id} in {region} is {status}")
        version = cluster.get("EngineVersion", "")
        members = tuple(m["DBClusterArn"] for m in _members(global_cluster))
        membership = (f"global cluster {self.global_cluster_id} has {len(members)} member(s)" if global_cluster
                      else f"global cluster {self.global_cluster_id} not created yet")
        return PrimaryFacts(
            reachable=True,
            detail=f"{cluster.get('Engine', '?')} {version} writer {cluster_id} in {region}; {membership}",
            server_version=version,
            server_version_num=version_num(version),
            slots=members,
            database_bytes=0,  # Aurora reports no database size through the control plane; 0 = unknown
        )

    def secondary_facts(self, region: str) -> SecondaryFacts:
        # slot_name is the cluster ARN the secondary has (or will have) as a global cluster member,
        # so it compares with PrimaryFacts.slots.
        cluster_id = self.secondary_cluster_name(region)
        cluster = self._cluster(region, cluster_id)
        if cluster is None:
            return SecondaryFacts(region=region, exists=False, running=False,
                                  engine_version_num=version_num(self._target_engine_version()),
                                  free_disk_bytes=None, slot_name=self._future_arn(region, cluster_id))
        instance = self._instance(region, self.reader_instance_name(region))
        running = cluster.get("Status") == "available" and bool(instance) and \
            instance.get("DBInstanceStatus") == "available"
        return SecondaryFacts(region=region, exists=True, running=running,
                              engine_version_num=version_num(cluster.get("EngineVersion", "")),
                              free_disk_bytes=None,  # Aurora storage grows on its own
                              slot_name=cluster["DBClusterArn"])

    def replication_lag(self, region: str) -> ReplicationLag:
        cluster_id = self.secondary_cluster_name(region)
        cluster = self._cluster(region, cluster_id)
        if cluster is None:
            return ReplicationLag(region=region, state="absent", lag_bytes=None, lag_seconds=None)
        if not _is_member(self._global_cluster(), cluster["DBClusterArn"]):
            # Detached: a standalone cluster that no longer receives anything from the writer.
            return ReplicationLag(region=region, state="stopped", lag_bytes=None, lag_seconds=None)
        state = "streaming" if cluster.get("Status") == "available" else "catchup"
        # Aurora replicates storage, not WAL, so there is no byte lag or replay LSN to report.
        return ReplicationLag(region=region, state=state, lag_bytes=None,
                              lag_seconds=self._latest_lag_seconds(region, cluster_id))

    def reader_endpoint(self, region: str) -> str | None:
        answer = call(self._clients("ssm", region), "get_parameter", region, absent={"ParameterNotFound"},
                      Name=READER_PARAMETER.format(region=region))
        return answer["Parameter"]["Value"] if answer else None

    # ----------------------------------------------------------- mutations

    def reserve_replication(self, region: str) -> dict:
        """Ensure the global cluster exists with the primary as a member.

        After a planned switchover another member is the writer; the primary is then still a member, so
        membership (not IsWriter) is what must hold here.
        """
        self._check_account()
        primary = self._cluster(self.source_region, self.primary_cluster_id)
        if primary is None:
            raise ProviderError(f"primary cluster {self.primary_cluster_id} not found in {self.source_region}",
                                where="aws", hint="check primary_cluster_id and source_region in the plan spec")
        global_cluster = self._global_cluster()
        if global_cluster is None:
            log.info("creating global cluster %s from %s", self.global_cluster_id, primary["DBClusterArn"])
            call(self._rds(self.source_region), "create_global_cluster", self.source_region,
                 absent={"GlobalClusterAlreadyExistsFault"},  # a concurrent or crashed run made it: keep it
                 GlobalClusterIdentifier=self.global_cluster_id,
                 SourceDBClusterIdentifier=primary["DBClusterArn"])
            global_cluster = self._global_cluster()
            if global_cluster is None:
                raise ProviderError(f"global cluster {self.global_cluster_id} missing right after it was created",
                                    where="aws")
        if not _is_member(global_cluster, primary["DBClusterArn"]):
            raise ProviderError(
                f"global cluster {self.global_cluster_id} exists but primary {self.primary_cluster_id} "
                f"is not one of its members", where="aws",
                hint="another global database uses this identifier: choose another global_cluster_id")
        writer_region, writer_id = self._writer(global_cluster)
        return {"global_cluster_id": self.global_cluster_id,
                "global_cluster_arn": global_cluster.get("GlobalClusterArn", ""),
                "writer_cluster_id": writer_id, "writer_region": writer_region, "region": region}

    def replication_reserved(self, region: str) -> bool:
        """True when the global cluster exists with the primary as a member (read-only)."""
        primary = self._cluster(self.source_region, self.primary_cluster_id)
        global_cluster = self._global_cluster()
        return bool(primary and global_cluster and _is_member(global_cluster, primary["DBClusterArn"]))

    def release_replication(self, region: str) -> None:
        """Nothing to undo: the global cluster is shared by every region (and holds the primary), so one
        region's rollback must not delete it; detaching the region's secondary is stop_secondary's job."""

    def create_secondary(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        self._check_account()
        cluster_id = self.secondary_cluster_name(region)
        instance_id = self.reader_instance_name(region)
        global_cluster = self._global_cluster()
        if global_cluster is None:
            raise ProviderError(f"global cluster {self.global_cluster_id} does not exist", where="aws",
                                hint="reserve replication (create the global cluster) before creating a secondary")
        writer_region, writer_id = self._writer(global_cluster)
        if region == writer_region:
            raise ProviderError(f"{region} holds the writer {writer_id}; a secondary must live in another region",
                                where="aws")
        cluster = self._cluster(region, cluster_id)
        if cluster is not None:
            self._require_member(region, cluster, global_cluster)
            log.info("secondary cluster %s already exists in %s: keeping it", cluster_id, region)
        else:
            version = self._target_engine_version(writer_region, writer_id, strict=True)
            self._wait_for_global_cluster(progress, checkpoint)
            log.info("creating secondary cluster %s in %s (%s %s)", cluster_id, region, ENGINE, version)
            call(self._rds(region), "create_db_cluster", region, absent={"DBClusterAlreadyExistsFault"},
                 DBClusterIdentifier=cluster_id, Engine=ENGINE, EngineVersion=version,
                 GlobalClusterIdentifier=self.global_cluster_id, Tags=[MANAGED_TAG],
                 **self._cluster_options.get(region, {}))
        if self._instance(region, instance_id) is None:
            log.info("creating reader instance %s (%s) in %s", instance_id, self.db_instance_class, region)
            call(self._rds(region), "create_db_instance", region, absent={"DBInstanceAlreadyExists"},
                 DBInstanceIdentifier=instance_id, DBClusterIdentifier=cluster_id, Engine=ENGINE,
                 DBInstanceClass=self.db_instance_class, Tags=[MANAGED_TAG],
                 **self._instance_options.get(region, {}))
        cluster = self._wait_until_serving(region, progress, checkpoint)
        return self._outputs(region, cluster)

    def start_secondary(self, region: str) -> dict:
        """Aurora secondaries replicate from the moment they are created; starting = waiting until they serve reads."""
        self._existing_member(region)
        cluster = self._wait_until_serving(region, progress=None, checkpoint=None)
        return self._outputs(region, cluster)

    def stop_secondary(self, region: str) -> None:
        """Detach the secondary from the global cluster (it becomes a standalone cluster); returns once AWS
        accepted the detach. Refused while the region's readers still use it."""
        cluster = self._cluster(region, self.secondary_cluster_name(region))
        if cluster is None:
            return
        self._check_account()
        self._refuse_while_reads_use(region, cluster, "detach")
        if _is_member(self._global_cluster(), cluster["DBClusterArn"]):
            self._detach(region, cluster)

    def delete_secondary(self, region: str) -> None:
        """Detach, delete the instances, then the cluster (no final snapshot: the writer holds the data);
        returns when the cluster is gone. Refused while the region's readers still use it."""
        cluster_id = self.secondary_cluster_name(region)
        cluster = self._cluster(region, cluster_id)
        if cluster is None:
            return
        self._check_account()
        self._refuse_while_reads_use(region, cluster, "delete")
        deadline = self._clock() + self._wait_timeout
        detach_requested = False
        while cluster is not None:
            if not detach_requested and _is_member(self._global_cluster(), cluster["DBClusterArn"]):
                self._detach(region, cluster)
                detach_requested = True
            instances_left = self._delete_instances(region, cluster)
            if not instances_left and cluster.get("Status") != "deleting":
                # Refused (InvalidDBClusterStateFault) while the detach or an instance deletion is still
                # in progress: poll and ask again.
                call(self._rds(region), "delete_db_cluster", region,
                     absent=CLUSTER_NOT_FOUND | {"InvalidDBClusterStateFault"},
                     DBClusterIdentifier=cluster_id, SkipFinalSnapshot=True)
            cluster = self._cluster(region, cluster_id)
            if cluster is None:
                return
            if self._clock() >= deadline:
                raise ProviderError(
                    f"secondary cluster {cluster_id} in {region} still present after {self._wait_timeout:.0f} s "
                    f"(status {cluster.get('Status')}, {instances_left} instance(s) left)", where="aws",
                    hint="delete_secondary is idempotent: run it again to keep waiting, or check the RDS console")
            self._sleep(self._poll_interval)

    def route_reads_to_secondary(self, region: str) -> str:
        self._check_account()
        cluster = self._existing_member(region)
        instance = self._instance(region, self.reader_instance_name(region))
        if cluster.get("Status") != "available" or not instance or instance.get("DBInstanceStatus") != "available":
            raise ProviderError(
                f"secondary {cluster['DBClusterIdentifier']} in {region} is not serving reads yet "
                f"(cluster {cluster.get('Status')}, reader {instance.get('DBInstanceStatus') if instance else 'absent'})",
                where="aws", hint="start the secondary and wait for it before routing reads to it")
        endpoint = cluster["ReaderEndpoint"]
        self._publish_reader_endpoint(region, endpoint)
        return endpoint

    def route_reads_to_writer(self, region: str) -> str:
        self._check_account()
        endpoint = self._writer_endpoint()
        self._publish_reader_endpoint(region, endpoint)
        return endpoint

    # ------------------------------------------------------ data verification

    def key_range(self, table: str) -> tuple[int, int]:
        checksummer = self._require_checksummer()
        return checksummer.key_range(self._writer_endpoint(), table)

    def chunk_end(self, table: str, start: int, rows: int) -> int | None:
        return self._require_checksummer().chunk_end(self._writer_endpoint(), table, start, rows)

    def checksum_chunk(self, region: str, table: str, lo: int, hi: int) -> ChunkChecksum:
        checksummer = self._require_checksummer()
        reader = self._existing_member(region)["ReaderEndpoint"]
        return checksummer.checksum_chunk(self._writer_endpoint(), reader, table, lo, hi)

    # ------------------------------------------------------------- helpers

    # --- losing the origin (evacuate-region on the writer's region, DESIGN §6b) ---------------------

    def origin_region(self) -> str:
        """The region whose cluster writes now (AWS marks the writer member; else the configured primary)."""
        return self._writer(self._global_cluster())[0]

    def fail_over_origin(self, to_region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """Make `to_region`'s secondary the global cluster's writer now, accepting the loss of whatever the
        lost writer had not replicated (failover_global_cluster, AllowDataLoss); returns once AWS names it the
        writer. Idempotent: a region that writes already is only confirmed."""
        return self._move_writer(to_region, "failover_global_cluster", {"AllowDataLoss": True}, progress, checkpoint)

    def switch_over_origin(self, to_region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """Move the writer to `to_region` with no data loss (switchover_global_cluster: both sides up, the
        way back after a failover); returns once AWS names it the writer. Idempotent."""
        return self._move_writer(to_region, "switchover_global_cluster", {}, progress, checkpoint)

    def _move_writer(self, to_region: str, operation: str, extra: dict, progress: ProgressFn,
                     checkpoint: CheckpointFn) -> dict:
        self._check_account()
        cluster_id = self.primary_cluster_id if to_region == self.source_region else self.secondary_cluster_name(to_region)
        global_cluster = self._global_cluster()
        if global_cluster is None:
            raise ProviderError(f"global cluster {self.global_cluster_id} not found", where="aws")
        target = self._cluster(to_region, cluster_id)
        if target is None or not _is_member(global_cluster, target["DBClusterArn"]):
            raise ProviderError(f"{to_region} has no member cluster {cluster_id} in {self.global_cluster_id}: nothing "
                                f"to make the writer", where="aws", hint="attach a secondary there first")
        arn = target["DBClusterArn"]
        if self._writer(global_cluster)[0] != to_region:
            log.warning("%s of %s to %s (%s)", operation, self.global_cluster_id, to_region, arn)
            # asked of the target's region: the old writer's region may be the one that is gone
            call(self._rds(to_region), operation, to_region, GlobalClusterIdentifier=self.global_cluster_id,
                 TargetDbClusterIdentifier=arn, **extra)
        deadline = self._clock() + self._wait_timeout
        while True:
            checkpoint()
            global_cluster = self._global_cluster()
            if self._writer(global_cluster)[0] == to_region:
                return {"writer_region": to_region, "writer_cluster": arn, "operation": operation,
                        "data_loss_allowed": bool(extra.get("AllowDataLoss"))}
            if self._clock() >= deadline:
                raise ProviderError(f"{to_region} is not the writer of {self.global_cluster_id} after "
                                    f"{self._wait_timeout:.0f} s ({operation})", where="aws",
                                    hint="the step is idempotent: run it again to keep waiting")
            progress(0, 1)
            self._sleep(self._poll_interval)

    def _check_account(self) -> None:
        """Refuse to change anything in an account other than the one the spec names."""
        if self._expected_account is None or self._account_checked:
            return
        identity = call(self._clients("sts", self.source_region), "get_caller_identity", self.source_region)
        account = (identity or {}).get("Account")
        if account != self._expected_account:
            raise ProviderError(f"the AWS credentials in use belong to account {account}, "
                                f"not {self._expected_account} named in the spec", where="aws",
                                hint="switch profile, or fix account_id in migration.toml")
        self._account_checked = True

    def _rds(self, region: str) -> Any:
        return self._clients("rds", region)

    def _cluster(self, region: str, cluster_id: str) -> dict | None:
        answer = call(self._rds(region), "describe_db_clusters", region, absent=CLUSTER_NOT_FOUND,
                      DBClusterIdentifier=cluster_id)
        clusters = answer.get("DBClusters", []) if answer else []
        return clusters[0] if clusters else None

    def _instance(self, region: str, instance_id: str) -> dict | None:
        answer = call(self._rds(region), "describe_db_instances", region, absent=INSTANCE_NOT_FOUND,
                      DBInstanceIdentifier=instance_id)
        instances = answer.get("DBInstances", []) if answer else []
        return instances[0] if instances else None

    def _global_cluster(self) -> dict | None:
        # Global clusters are not regional; ask the source region, and when its API does not answer (the
        # region lost: evacuate-region's take-over) the other member regions in turn. The identifier is
        # also matched here because some implementations (moto) ignore the GlobalClusterIdentifier filter.
        answer = None
        asked = [self.source_region, *(r for r in self.fallback_regions if r != self.source_region)]
        for position, region in enumerate(asked):
            try:
                answer = call(self._rds(region), "describe_global_clusters", region,
                              absent=GLOBAL_NOT_FOUND, GlobalClusterIdentifier=self.global_cluster_id)
                break
            except TransientProviderError:
                if position == len(asked) - 1:
                    raise
                log.warning("RDS in %s does not answer describe_global_clusters: asking %s", region,
                            asked[position + 1])
        wanted = self.global_cluster_id.lower()
        for candidate in (answer or {}).get("GlobalClusters", []):
            if candidate.get("GlobalClusterIdentifier", "").lower() == wanted:
                return candidate
        return None

    def _future_arn(self, region: str, cluster_id: str) -> str:
        """The ARN a cluster named `cluster_id` in `region` gets: same partition and account as the primary."""
        primary = self._cluster(self.source_region, self.primary_cluster_id)
        if primary is None:
            raise ProviderError(f"primary cluster {self.primary_cluster_id} not found in {self.source_region}",
                                where="aws", hint="check primary_cluster_id and source_region in the plan spec")
        parts = primary["DBClusterArn"].split(":")
        return ":".join([*parts[:3], region, parts[4], "cluster", cluster_id])

    def _writer(self, global_cluster: dict | None) -> tuple[str, str]:
        """(region, cluster id) of the current writer: the member AWS marks as writer, else the configured primary."""
        for member in _members(global_cluster):
            if member.get("IsWriter"):
                return arn_region_and_id(member["DBClusterArn"])
        return self.source_region, self.primary_cluster_id

    @property
    def clients(self):
        """The ClientFactory this adapter calls AWS with (shared with the adapters built beside it)."""
        return self._clients

    def writer_address(self) -> tuple[str, int]:
        """(host, port) of the current writer: the global writer endpoint when AWS provides one (it
        follows switchovers), else the writer cluster's endpoint and port."""
        global_cluster = self._global_cluster()
        region, cluster_id = self._writer(global_cluster)
        cluster = self._cluster(region, cluster_id)
        port = int((cluster or {}).get("Port") or 5432)
        return self._writer_endpoint(), port

    def _writer_endpoint(self) -> str:
        """The global writer endpoint when AWS provides one (it follows switchovers), else the writer cluster's."""
        global_cluster = self._global_cluster()
        if global_cluster and global_cluster.get("Endpoint"):
            return global_cluster["Endpoint"]
        region, cluster_id = self._writer(global_cluster)
        cluster = self._cluster(region, cluster_id)
        if cluster is None or not cluster.get("Endpoint"):
            raise ProviderError(f"writer cluster {cluster_id} not found in {region}", where="aws")
        return cluster["Endpoint"]

    def _target_engine_version(self, writer_region: str | None = None, writer_id: str | None = None,
                               strict: bool = False) -> str:
        """The engine version a new secondary gets: the primary's, checked against `engine_version` when strict."""
        if self.engine_version and not strict:
            return self.engine_version
        if writer_region is None or writer_id is None:
            writer_region, writer_id = self._writer(self._global_cluster())
        writer = self._cluster(writer_region, writer_id)
        if writer is None:
            raise ProviderError(f"writer cluster {writer_id} not found in {writer_region}", where="aws")
        if writer.get("Engine") != ENGINE:
            raise ProviderError(f"writer cluster {writer_id} runs {writer.get('Engine')}, not {ENGINE}", where="aws")
        version = writer.get("EngineVersion", "")
        if self.engine_version and version != self.engine_version:
            raise ProviderError(
                f"writer {writer_id} runs {ENGINE} {version} but secondaries are expected to run {self.engine_version}",
                where="aws", hint="Aurora global members must run one engine version: upgrade the writer or fix the spec")
        return version

    def _require_member(self, region: str, cluster: dict, global_cluster: dict | None) -> None:
        if not _is_member(global_cluster, cluster["DBClusterArn"]):
            raise ProviderError(
                f"cluster {cluster['DBClusterIdentifier']} in {region} exists but is not a member of global "
                f"cluster {self.global_cluster_id} (detached earlier?)", where="aws",
                hint="a detached cluster cannot rejoin: delete the region's secondary (phase rollback) and run again")

    def _existing_member(self, region: str) -> dict:
        cluster_id = self.secondary_cluster_name(region)
        cluster = self._cluster(region, cluster_id)
        if cluster is None:
            raise ProviderError(f"no secondary cluster {cluster_id} in {region}", where="aws",
                                hint="create the secondary first")
        self._require_member(region, cluster, self._global_cluster())
        return cluster

    def _wait_for_global_cluster(self, progress: ProgressFn, checkpoint: CheckpointFn) -> None:
        # A global cluster made from an existing cluster is "modifying" for a while; members can only be
        # added once it is available.
        deadline = self._clock() + self._wait_timeout
        while True:
            checkpoint()
            global_cluster = self._global_cluster()
            status = (global_cluster or {}).get("Status", "absent")
            if status == "available":
                return
            if global_cluster is None or self._clock() >= deadline:
                raise ProviderError(f"global cluster {self.global_cluster_id} is {status}, not available",
                                    where="aws", hint="the step is idempotent: run it again to keep waiting")
            progress(0, 2)
            self._sleep(self._poll_interval)

    def _wait_until_serving(self, region: str, progress: ProgressFn | None, checkpoint: CheckpointFn | None) -> dict:
        """Poll until the secondary cluster and its reader are available; progress counts those two."""
        cluster_id = self.secondary_cluster_name(region)
        instance_id = self.reader_instance_name(region)
        deadline = self._clock() + self._wait_timeout
        seen: tuple[str, str] | None = None
        while True:
            if checkpoint:
                checkpoint()
            cluster = self._cluster(region, cluster_id)
            if cluster is None:
                raise ProviderError(f"secondary cluster {cluster_id} in {region} disappeared while waiting for it",
                                    where="aws")
            instance = self._instance(region, instance_id)
            states = (cluster.get("Status", "unknown"), instance.get("DBInstanceStatus", "unknown") if instance else "absent")
            if states != seen:
                log.info("secondary %s in %s: cluster %s, reader %s", cluster_id, region, *states)
                seen = states
            if states[0] in _BROKEN_CLUSTER_STATES or states[1] in _BROKEN_INSTANCE_STATES or states[1] == "absent":
                raise ProviderError(f"secondary {cluster_id} in {region} cannot serve reads: cluster {states[0]}, "
                                    f"reader {instance_id} {states[1]}", where="aws",
                                    hint="inspect it in the RDS console; delete it (phase rollback) and run again")
            done = sum(state == "available" for state in states)
            if progress:
                progress(done, 2)
            if done == 2:
                return cluster
            if self._clock() >= deadline:
                raise ProviderError(f"secondary {cluster_id} in {region} not available after {self._wait_timeout:.0f} s "
                                    f"(cluster {states[0]}, reader {states[1]})", where="aws",
                                    hint="the step is idempotent: run it again to keep waiting")
            self._sleep(self._poll_interval)

    def _detach(self, region: str, cluster: dict) -> None:
        log.info("detaching %s from global cluster %s", cluster["DBClusterArn"], self.global_cluster_id)
        # Called in the secondary's own region, with its ARN, as the RDS API expects.
        call(self._rds(region), "remove_from_global_cluster", region, absent=CLUSTER_NOT_FOUND | GLOBAL_NOT_FOUND,
             GlobalClusterIdentifier=self.global_cluster_id, DbClusterIdentifier=cluster["DBClusterArn"])

    def _delete_instances(self, region: str, cluster: dict) -> int:
        """Ask AWS to delete every instance of the cluster; returns how many still exist."""
        left = 0
        for member in cluster.get("DBClusterMembers", []):
            instance = self._instance(region, member["DBInstanceIdentifier"])
            if instance is None:
                continue
            left += 1
            if instance.get("DBInstanceStatus") != "deleting":
                # InvalidDBInstanceState: busy (e.g. still creating or the cluster is detaching): ask again next poll.
                call(self._rds(region), "delete_db_instance", region,
                     absent=INSTANCE_NOT_FOUND | {"InvalidDBInstanceState"},
                     DBInstanceIdentifier=member["DBInstanceIdentifier"])
        return left

    def _refuse_while_reads_use(self, region: str, cluster: dict, action: str) -> None:
        current = self.reader_endpoint(region)
        if current and current in {cluster.get("ReaderEndpoint"), cluster.get("Endpoint")}:
            raise ProviderError(
                f"refusing to {action} {cluster['DBClusterIdentifier']} in {region}: the region's readers still use {current}",
                where="aws", hint="route the region's reads to the writer first")

    def _publish_reader_endpoint(self, region: str, endpoint: str) -> None:
        call(self._clients("ssm", region), "put_parameter", region,
             Name=READER_PARAMETER.format(region=region), Value=endpoint, Type="String", Overwrite=True,
             Description="Where this region's game API sends database reads (written by migrate)")

    def _latest_lag_seconds(self, region: str, cluster_id: str) -> float | None:
        end = datetime.now(timezone.utc)
        answer = call(self._clients("cloudwatch", region), "get_metric_data", region,
                      MetricDataQueries=[{
                          "Id": "lag",
                          "MetricStat": {
                              "Metric": {"Namespace": "AWS/RDS", "MetricName": LAG_METRIC,
                                         "Dimensions": [{"Name": "DBClusterIdentifier", "Value": cluster_id}]},
                              "Period": 60, "Stat": "Maximum"},
                          "ReturnData": True}],
                      StartTime=end - timedelta(seconds=self._lag_window), EndTime=end,
                      ScanBy="TimestampDescending")
        samples: list[tuple[datetime, float]] = []
        for result in (answer or {}).get("MetricDataResults", []):
            samples.extend(zip(result.get("Timestamps", []), result.get("Values", [])))
        if not samples:
            return None  # no datapoint is "unknown", never "no lag"
        _, newest_ms = max(samples, key=lambda sample: sample[0])
        return float(newest_ms) / 1000.0

    def _require_checksummer(self) -> SqlChecksummer:
        if self._checksummer is None:
            raise ProviderError(
                "data verification on AWS needs database credentials: set MIGRATE_AWS_DB_DSN_TEMPLATE",
                where="aws", hint="this adapter only reaches the RDS control plane; the SQL checksum runs through a "
                                  "checksummer given database credentials")
        return self._checksummer

    def _outputs(self, region: str, cluster: dict) -> dict:
        return {"region": region, "cluster_id": cluster["DBClusterIdentifier"], "cluster_arn": cluster["DBClusterArn"],
                "instance_id": self.reader_instance_name(region), "reader_endpoint": cluster.get("ReaderEndpoint", ""),
                "engine_version": cluster.get("EngineVersion", ""), "global_cluster_id": self.global_cluster_id}


def _members(global_cluster: dict | None) -> list[dict]:
    return list((global_cluster or {}).get("GlobalClusterMembers", []))


def _is_member(global_cluster: dict | None, cluster_arn: str) -> bool:
    return any(m.get("DBClusterArn") == cluster_arn for m in _members(global_cluster))
