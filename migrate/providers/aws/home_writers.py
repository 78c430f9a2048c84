"""HomeWriters on Aurora PostgreSQL (cutover, DESIGN §5 and §9): a region's home shard is its own
secondary of the origin's global cluster, detached and made the writer of a global cluster of its own.

- Stage: before the fence, so Aurora's detach (minutes, no LSN for where it stopped) is off the players'
  path. Checked: the region's secondary (`game-<region>`, made by attach-secondary) is a serving member,
  and `rds.logical_replication = 1` is in force on it and on the origin. Then the origin's forward
  publication and slot (providers/home_writer_sql), the origin's reverse streams of other homes paused
  (the copy inherits them disabled: started there, one could take its home's slot), the catch-up marker
  awaited on the secondary's reader (so it holds everything before the slot, and the pause),
  `remove_from_global_cluster`, waited until AWS shows a standalone writer. On that writer: every home
  fenced, the inherited subscriptions dropped, the forward subscription from the origin's slot (its
  replay trigger absorbs the overlap); the reverse streams resumed at the origin (from their slots:
  nothing missed, minutes late). Last, `create_global_cluster` from it (`game-home-<region>`, the name
  Terraform's import block adopts).
- Fence, barrier, reverse stream: the same SQL as the lab (providers/home_writer_sql,
  providers/home_fence: a fence is a sequence per home, which Aurora takes; its parameter groups take
  no custom setting).
- Catch-up: the origin's LSN after the barrier, until the forward slot's subscriber confirms it.
- Promote: no RDS call. The origin's forward publication leaves the home out (so the reverse stream's
  rows never loop), the id sequences are carried (a logical stream carries none), and the copy is
  handed its home (the other homes' sequences set, its own cleared).
- Shard secondaries: a secondary of the new shard in every other region (`game-home-<region>-in-<other>`,
  one reader each, as Terraform's `home_shard_secondaries` names them), and in the region a new
  secondary of the origin's global cluster (`game-home-<origin>-in-<region>`).
- Routing: the home writers map (home → "host=… port=…" of its writer; the apps complete it from their
  WRITER_DSN, whose user and password they keep) in an SSM parameter in every region
  ("/game/<region>/api/home-writers", WRITERS_PARAMETER), through providers/aws/ssm_map.
- Discard (a rollback after staging): the origin's forward slot dropped. Once detached: the region's
  reads moved to the origin's writer, the shard's secondaries and its global cluster removed, the
  detached cluster deleted, a new secondary of the origin's global cluster attached in the region (a
  full copy: hours on AWS) and the reads moved back.

Every AWS call goes through `clients.call` and every database error through `_errors`, so only
ProviderError / TransientProviderError leave this module."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers import home_writer_sql as sql
from migrate.providers.aws.database_access import DatabaseAccess
from migrate.providers.aws.global_database import (
    CLUSTER_NOT_FOUND,
    GLOBAL_NOT_FOUND,
    INSTANCE_NOT_FOUND,
    MANAGED_TAG,
    AwsGlobalDatabase,
    _is_member,
    _members,
)
from migrate.providers.aws.clients import call
from migrate.providers.aws.ssm_map import SsmJsonMap
from migrate.providers.home_fence import fenced_homes, set_fenced
from migrate.providers.protocols import CheckpointFn, ProgressFn

log = logging.getLogger(__name__)

WHERE = "aws home writers"
ORIGIN = "origin"
MARKER_PREFIX = "marker:"
WARM_PREFIX = "warm:"
LOGICAL_REPLICATION = "rds.logical_replication"
APP_POLL_SECONDS = 1.0  # the apps' WRITERS_POLL_SECONDS default: the held writes wait one poll after routing flips
MARKER_POLL_S = 0.05
LOGICAL_HINT = ("set rds.logical_replication = 1 ahead (pending-reboot), reboot the cluster's instances in a quiet "
                "window, then run the cutover again")  # the home's writes are held while the marker is awaited: poll closely


def _nothing(*_args: Any) -> None:
    return None


class AwsHomeWriters:
    """HomeWriters on Aurora (see the module docstring)."""

    def __init__(
        self,
        db: AwsGlobalDatabase,
        access: DatabaseAccess | None,
        regions: Sequence[str],
        *,
        shard_cluster_id: str = "game-home-{region}",
        shard_secondary_id: str = "game-home-{home}-in-{region}",
        writers_parameter: str = "/game/{region}/api/home-writers",
        address: Callable[[str, int], tuple[str, int]] | None = None,
        app_poll_seconds: float = APP_POLL_SECONDS,
        propagation_margin: float = 2.0,
        catch_up_timeout: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        db: the origin's global database adapter (its clients, names, polling and waits are reused).
        access: the game database's credentials (Secrets Manager); None: every SQL step refuses in one line.
        regions: every region of the spec, the source first.
        shard_cluster_id / shard_secondary_id: names of a home shard's global cluster and of its secondaries.
        address: where this host reaches an endpoint (host, port) → (host, port); tests map moto's names to
            a local PostgreSQL; None: as named.
        """
        self.db, self.access, self.regions = db, access, tuple(regions)
        self._shard_id, self._secondary_id = shard_cluster_id, shard_secondary_id
        self._address = address or (lambda host, port: (host, port))
        self._catch_up_timeout = catch_up_timeout
        self._sleep, self._clock = sleep, clock
        self.writers = SsmJsonMap(self.regions, db.clients, writers_parameter, what="home writers map", where=WHERE,
                                  propagation_seconds=app_poll_seconds * 1.2 + propagation_margin, sleep=sleep)

    # ---- names ---------------------------------------------------------------------------------------

    def shard_cluster_name(self, region: str) -> str:
        """The global cluster of `region`'s home shard (pure)."""
        return self._shard_id.format(region=region)

    def shard_secondary_name(self, home: str, region: str) -> str:
        """The secondary, in `region`, of `home`'s shard (pure)."""
        return self._secondary_id.format(home=home, region=region)

    # ---- helpers ---------------------------------------------------------------------------------------

    def _known(self, region: str, operation: str) -> None:
        if region == self.db.source_region or region not in self.regions:
            raise ProviderError(f"{region}: {operation}: not a region a cutover can give a writer", where=WHERE,
                                hint="one of " + ", ".join(r for r in self.regions if r != self.db.source_region))

    def _cluster(self, region: str) -> dict | None:
        """The region's cluster: the origin's secondary there, or the shard writer it became."""
        return self.db._cluster(region, self.db.secondary_cluster_name(region))

    def _require_cluster(self, region: str, operation: str) -> dict:
        cluster = self._cluster(region)
        if cluster is None:
            raise ProviderError(f"{region}: {operation}: no cluster {self.db.secondary_cluster_name(region)}",
                                where=WHERE, hint=f"run attach-secondary for {region} first")
        return cluster

    def _detached(self, cluster: dict) -> bool:
        return not _is_member(self.db._global_cluster(), cluster["DBClusterArn"])

    @contextlib.contextmanager
    def _errors(self, prefix: str) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "authentication failed" in text:
                raise ProviderError(f"{prefix}: {text}", where=WHERE,
                                    hint="check the credentials in the database secret") from None
            raise TransientProviderError(f"{prefix}: {text}", where=WHERE) from None
        except psycopg.Error as exc:
            raise ProviderError(f"{prefix}: {str(exc).strip().splitlines()[0]}", where=WHERE) from None

    def _dsn(self, host: str, port: int) -> str:
        if self.access is None:
            raise ProviderError("the spec names no database_secret_id: the cutover's SQL cannot reach Aurora",
                                where=WHERE, hint="set [environments.NAME.aws] database_secret_id")
        return self.access.dsn(*self._address(host, port))

    def _connect(self, host: str, port: int, timeout: float = 10) -> psycopg.Connection:
        dsn = self._dsn(host, port)
        assert self.access is not None
        return psycopg.connect(dsn, password=self.access.password(), autocommit=True, connect_timeout=timeout)

    def _origin(self) -> psycopg.Connection:
        return self._connect(*self.db.writer_address())

    def _writer_endpoint(self, region: str, cluster: dict) -> tuple[str, int]:
        if not self._detached(cluster):
            raise ProviderError(f"{region}: {cluster['DBClusterIdentifier']} is still a secondary of "
                                f"{self.db.global_cluster_id}: it has no writer yet", where=WHERE,
                                hint="promote it first (the cutover's promote step)")
        return cluster["Endpoint"], int(cluster.get("Port") or 5432)

    def _database(self, database: str, operation: str, *, write: bool) -> psycopg.Connection:
        """A connection to "origin" or to a region's cluster (its writer, or its reader while a secondary and only reading)."""
        if database == ORIGIN:
            return self._origin()
        self._known(database, operation)
        cluster = self._require_cluster(database, operation)
        if write or self._detached(cluster):
            return self._connect(*self._writer_endpoint(database, cluster))
        return self._connect(cluster["ReaderEndpoint"], int(cluster.get("Port") or 5432))

    def _wait(self, condition: Callable[[], bool], what: str, timeout: float, checkpoint: CheckpointFn,
              poll: float) -> None:
        deadline = self._clock() + timeout
        while not condition():
            checkpoint()
            if self._clock() > deadline:
                raise TransientProviderError(f"timed out after {timeout:g} s waiting for {what}", where=WHERE,
                                             hint="the step is idempotent: run it again to keep waiting")
            self._sleep(poll)

    def promoted(self) -> dict[str, Callable[[], str]]:
        """region → its promoted home writer's DSN (no password: DatabaseAccess supplies it), for the schema
        phases, which change every writer."""
        found: dict[str, Callable[[], str]] = {}
        for region in self.regions:
            if region != self.db.source_region and self.is_writer(region):
                cluster = self._require_cluster(region, "home writers")
                found[region] = lambda cluster=cluster, region=region: self._dsn(*self._writer_endpoint(region, cluster))
        return found

    # ---- staging -----------------------------------------------------------------------------------------

    def logical_replication(self, region: str, cluster: dict) -> tuple[bool, str]:
        """(ok, why): `rds.logical_replication` is 1 in the cluster's parameter group and in force (in sync)."""
        group = cluster.get("DBClusterParameterGroup")
        if not group:
            return False, f"{cluster['DBClusterIdentifier']} has no cluster parameter group"
        value, marker = None, None
        while True:
            page = call(self.db._rds(region), "describe_db_cluster_parameters", region,
                        absent={"DBParameterGroupNotFound"}, DBClusterParameterGroupName=group, Source="user",
                        **({"Marker": marker} if marker else {})) or {}
            for parameter in page.get("Parameters", []):
                if parameter.get("ParameterName") == LOGICAL_REPLICATION:
                    value = parameter.get("ParameterValue")
            marker = page.get("Marker")
            if not marker:
                break
        if value != "1":
            return False, f"{LOGICAL_REPLICATION} is {value or 'unset'} in {group}"
        pending = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])
                   if m.get("DBClusterParameterGroupStatus", "in-sync") != "in-sync"]
        if pending:
            return False, f"{LOGICAL_REPLICATION} = 1 in {group} waits for a reboot of {', '.join(pending)}"
        return True, f"{LOGICAL_REPLICATION} = 1 in {group}, in force"

    def _origin_cluster(self) -> dict:
        cluster = self.db._cluster(self.db.source_region, self.db.primary_cluster_id)
        if cluster is None:
            raise ProviderError(f"no primary cluster {self.db.primary_cluster_id} in {self.db.source_region}",
                                where=WHERE, hint="check primary_cluster_id and source_region in the plan spec")
        return cluster

    def _origin_source(self) -> str:
        """The conninfo the copy's forward subscription reaches the origin's writer with (password included:
        PostgreSQL keeps it in pg_subscription, readable by superusers only)."""
        host, port = self._address(*self.db.writer_address())
        assert self.access is not None
        return make_conninfo(self.access.dsn(host, port), password=self.access.password(), connect_timeout=10)

    def logical_decoding_ready(self, region: str) -> tuple[bool, str]:
        """(ok, why): `rds.logical_replication = 1` in force on the region's cluster (it publishes the reverse
        stream) and on the origin's (the forward stream); read-only."""
        self._known(region, "logical decoding")
        cluster = self._cluster(region)
        if cluster is None:
            return False, f"{region} has no cluster {self.db.secondary_cluster_name(region)} (attach-secondary makes it)"
        found = []
        for where, each in ((region, cluster), (self.db.source_region, self._origin_cluster())):
            ok, why = self.logical_replication(where, each)
            if not ok:
                return False, f"{where}: {why}"
            found.append(f"{where}: {why}")
        return True, "; ".join(found)

    def stage(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict[str, Any]:
        """The region's secondary detached ahead of the fence and kept current by the forward stream
        (module docstring); idempotent: a run killed anywhere resumes where it stopped."""
        self._known(region, "stage writer")
        cluster = self._require_cluster(region, "stage writer")
        detached_now = not self._detached(cluster)
        with self._errors("origin: forward stream"), self._origin() as origin:
            if detached_now:
                cluster = self.db._existing_member(region)
                facts = self.db.secondary_facts(region)
                if not facts.running:
                    raise ProviderError(f"{region}: stage writer: {cluster['DBClusterIdentifier']} is not serving "
                                        f"(cluster {cluster.get('Status')})", where=WHERE,
                                        hint="wait until it serves (attach-secondary still building it, or a "
                                             "detach this step asked for still running), then run it again")
                ok, why = self.logical_decoding_ready(region)
                if not ok:
                    where_, _, why = why.partition(": ")
                    raise ProviderError(f"{where_}: stage writer: {why}", where=WHERE, hint=LOGICAL_HINT)
                forward = sql.prepare_forward(origin, region)
                paused = sql.pause_reverse_streams(origin)
                # the slot keeps every change from its start; the copy must hold everything before it
                # (and the paused streams, which it must inherit disabled)
                marker = f"{MARKER_PREFIX}{sql.set_marker(origin)}"
                self.wait_replayed(region, marker, self._catch_up_timeout, checkpoint)
                checkpoint()
                self.db._detach(region, cluster)
            elif not sql.forward_prepared(origin, region):
                raise ProviderError(f"{region}: stage writer: {cluster['DBClusterIdentifier']} is detached but the "
                                    f"origin has no slot {sql.forward_name(region)}: what it missed since is lost "
                                    f"to it", where=WHERE,
                                    hint="roll the cutover back (it rebuilds the region's secondary), then run it again")
            else:
                forward, marker, paused = {"slot": sql.forward_name(region)}, None, []
        self._wait(lambda: self.is_writer(region), f"{region}'s cluster to leave {self.db.global_cluster_id} as a "
                   f"writer", self.db._wait_timeout, checkpoint, self.db._poll_interval)
        cluster = self._require_cluster(region, "stage writer")
        with self._errors(f"{region}: forward stream"), self._connect(*self._writer_endpoint(region, cluster)) as copy:
            if sql.in_recovery(copy):
                raise TransientProviderError(f"{region}: stage writer: AWS shows a writer but it is still in recovery",
                                             where=WHERE)
            inherited = sql.drop_inherited_subscriptions(copy, keep=sql.forward_name(region))
            subscribed = copy.execute("SELECT 1 FROM pg_subscription WHERE subname = %s",
                                      (sql.forward_name(region),)).fetchone() is not None
            if not subscribed:  # before its first subscription, so never after a hand-over
                for home in self.regions:
                    set_fenced(copy, home, True)  # nothing routes a write to it yet: nothing may land either
            sql.subscribe_forward(copy, region, self._origin_source().replace("'", "''"))
        with self._errors("origin: resume the reverse streams"), self._origin() as origin:
            resumed = sql.resume_reverse_streams(origin)
        shard = self.shard_cluster_name(region)
        call(self.db._rds(region), "create_global_cluster", region, absent={"GlobalClusterAlreadyExistsFault"},
             GlobalClusterIdentifier=shard, SourceDBClusterIdentifier=cluster["DBClusterArn"])
        progress(1, 1)
        return {"cluster_id": cluster["DBClusterIdentifier"], "cluster_arn": cluster["DBClusterArn"],
                "detached": detached_now, "forward_stream": forward, "caught_up_to": marker,
                "inherited_subscriptions_dropped": inherited, "reverse_streams_paused": paused or resumed,
                "shard_global_cluster": shard}

    def staged(self, region: str) -> bool:
        """The region's copy detached (its forward stream may be gone: an evacuation drops it, and the
        region's return still has to list and discard that copy)."""
        cluster = self._cluster(region)
        return cluster is not None and self._detached(cluster)

    def replay_lsn(self, region: str) -> str | None:
        return None  # an Aurora secondary replicates storage and reports no replay LSN (the marker stands in)

    # ---- fences ----------------------------------------------------------------------------------------------

    def fenced(self, database: str) -> set[str]:
        with self._errors(f"{database}: read fences"), self._database(database, "read fences", write=False) as conn:
            return fenced_homes(conn)

    def set_fence(self, database: str, home: str, on: bool) -> None:
        operation = f"{'fence' if on else 'unfence'} {home}"
        with self._errors(f"{database}: {operation}"), self._database(database, operation, write=True) as conn:
            set_fenced(conn, home, on)

    def barrier(self, database: str, home: str) -> dict[str, Any]:
        with self._errors(f"{database}: barrier for {home}"), \
                self._database(database, "barrier", write=True) as conn:
            return sql.barrier(conn, WHERE, f"{database}: barrier for {home}")

    # ---- catch-up and promotion -------------------------------------------------------------------------------

    def marker_lsn(self) -> str:
        """The origin's WAL position now: once the forward stream's subscriber confirms it, the copy holds
        every write committed before it."""
        with self._errors("origin: catch-up marker"), self._origin() as conn:
            return sql.current_lsn(conn)

    def wait_replayed(self, region: str, lsn: str, timeout: float, checkpoint: CheckpointFn) -> None:
        """An LSN: until the region's copy confirms it on the forward stream. A catch-up marker
        ("marker:<value>", staging's, before the detach): until the secondary's reader shows it."""
        if lsn.startswith(MARKER_PREFIX):
            marker = int(lsn.removeprefix(MARKER_PREFIX))
            with self._errors(f"{region}: wait for the marker {marker}"), \
                    self._database(region, "wait for replay", write=False) as conn:
                self._wait(lambda: sql.marker_seen(conn, marker), f"{region} to show the origin's marker {marker}",
                           timeout, checkpoint, MARKER_POLL_S)
            return
        with self._errors(f"{region}: wait for {lsn} on the forward stream"), self._origin() as conn:
            def applied() -> bool:
                done = sql.forward_confirmed(conn, region, lsn)
                if done is None:
                    raise ProviderError(f"{region}: wait for replay: the origin has no slot {sql.forward_name(region)}",
                                        where=WHERE, hint="run stage-writer (it makes the forward stream)")
                return done
            self._wait(applied, f"{region}'s copy to apply the origin's writes up to {lsn}", timeout, checkpoint,
                       MARKER_POLL_S)

    def is_writer(self, region: str) -> bool:
        cluster = self._cluster(region)
        return bool(cluster and cluster.get("Status") == "available" and self._detached(cluster)
                    and any(m.get("IsClusterWriter") for m in cluster.get("DBClusterMembers", [])))

    def promote(self, region: str) -> dict[str, Any]:
        """Hand the detached copy its home: the origin's forward stream leaves the home out, its id sequences
        are carried over, and the copy unfences its home (the others stay fenced); idempotent. The copy was
        detached by staging: nothing here waits on RDS."""
        self._known(region, "promote")
        cluster = self._require_cluster(region, "promote")
        if not self._detached(cluster):
            raise ProviderError(f"{region}: promote: {cluster['DBClusterIdentifier']} is still a secondary of "
                                f"{self.db.global_cluster_id}", where=WHERE,
                                hint="run stage-writer first (it detaches the secondary ahead of the fence)")
        promoting_from = time.time()
        with self._errors(f"{region}: promote"), self._origin() as origin, \
                self._connect(*self._writer_endpoint(region, cluster)) as copy:
            if sql.in_recovery(copy):
                raise TransientProviderError(f"{region}: promote: AWS shows a writer but it is still in recovery",
                                             where=WHERE)
            if region not in fenced_homes(origin):  # handed over now, the home would have two writers
                raise ProviderError(f"{region}: promote: the origin still takes {region}'s writes", where=WHERE,
                                    hint="fence the origin and catch up first (the cutover's fence-origin and "
                                         "catch-up steps)")
            row_filter = sql.forward_drops_home(origin, region)
            if row_filter is None:
                raise ProviderError(f"{region}: promote: the origin has no forward publication "
                                    f"{sql.forward_name(region)}", where=WHERE,
                                    hint="roll the cutover back and run it again (staging makes the forward stream)")
            carried = sql.take_home_from_stream(origin, copy, region)
        return {"cluster_arn": cluster["DBClusterArn"], "shard_global_cluster": self.shard_cluster_name(region),
                "promoting_from": promoting_from, "forward_filter": row_filter, "id_sequences": carried}

    # ---- the shard's secondaries ----------------------------------------------------------------------------

    def _shard_global(self, region: str) -> dict | None:
        shard = self.shard_cluster_name(region)
        answer = call(self.db._rds(region), "describe_global_clusters", region, absent=GLOBAL_NOT_FOUND,
                      GlobalClusterIdentifier=shard)
        return next((g for g in (answer or {}).get("GlobalClusters", [])
                     if g.get("GlobalClusterIdentifier", "").lower() == shard.lower()), None)

    def _secondaries_wanted(self, region: str) -> list[tuple[str, str, str]]:
        """(cluster region, cluster id, global cluster id) of every secondary the region's cutover adds."""
        wanted = [(other, self.shard_secondary_name(region, other), self.shard_cluster_name(region))
                  for other in self.regions if other != region]
        # the region's own copy of the origin's shard, which its secondary was until the detach
        wanted.append((region, self.shard_secondary_name(self.db.source_region, region), self.db.global_cluster_id))
        return wanted

    def add_shard_secondaries(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict[str, Any]:
        """A secondary of the new shard in every other region, and in the region one of the origin's
        shard; returns once each serves (a full copy each: hours on AWS). Idempotent."""
        self._known(region, "shard secondaries")
        if self._shard_global(region) is None:
            raise ProviderError(f"{region}: shard secondaries: no global cluster {self.shard_cluster_name(region)}",
                                where=WHERE, hint="promote first (the cutover's promote step)")
        wanted = self._secondaries_wanted(region)
        version = self._require_cluster(region, "shard secondaries").get("EngineVersion")
        for where, cluster_id, global_id in wanted:
            rds = self.db._rds(where)
            if self.db._cluster(where, cluster_id) is None:
                call(rds, "create_db_cluster", where, absent={"DBClusterAlreadyExistsFault"},
                     DBClusterIdentifier=cluster_id, Engine="aurora-postgresql", EngineVersion=version,
                     GlobalClusterIdentifier=global_id, Tags=[MANAGED_TAG],
                     **self.db._cluster_options.get(where, {}))
            if self.db._instance(where, f"{cluster_id}-reader-1") is None:
                call(rds, "create_db_instance", where, absent={"DBInstanceAlreadyExists"},
                     DBInstanceIdentifier=f"{cluster_id}-reader-1", DBClusterIdentifier=cluster_id,
                     Engine="aurora-postgresql", DBInstanceClass=self.db.db_instance_class, Tags=[MANAGED_TAG],
                     **self.db._instance_options.get(where, {}))

        def serving() -> bool:
            done = 0
            for where, cluster_id, _ in wanted:
                cluster = self.db._cluster(where, cluster_id)
                instance = self.db._instance(where, f"{cluster_id}-reader-1")
                done += bool(cluster and instance and cluster.get("Status") == "available"
                             and instance.get("DBInstanceStatus") == "available")
            progress(done, len(wanted))
            return done == len(wanted)
        self._wait(serving, f"{region}'s shard secondaries to serve", self.db._wait_timeout, checkpoint,
                   self.db._poll_interval)
        return {"secondaries": [f"{cluster_id} in {where}" for where, cluster_id, _ in wanted]}

    def remove_shard_secondaries(self, region: str) -> None:
        """Every secondary the region's cutover added, deleted (detached from its global cluster first); idempotent."""
        self._known(region, "remove shard secondaries")
        for where, cluster_id, global_id in self._secondaries_wanted(region):
            cluster = self.db._cluster(where, cluster_id)
            if cluster is None:
                continue
            call(self.db._rds(where), "remove_from_global_cluster", where, absent=CLUSTER_NOT_FOUND | GLOBAL_NOT_FOUND,
                 GlobalClusterIdentifier=global_id, DbClusterIdentifier=cluster["DBClusterArn"])
            for member in cluster.get("DBClusterMembers", []):
                call(self.db._rds(where), "delete_db_instance", where,
                     absent=INSTANCE_NOT_FOUND | {"InvalidDBInstanceState"},
                     DBInstanceIdentifier=member["DBInstanceIdentifier"])
            call(self.db._rds(where), "delete_db_cluster", where,
                 absent=CLUSTER_NOT_FOUND | {"InvalidDBClusterStateFault"},
                 DBClusterIdentifier=cluster_id, SkipFinalSnapshot=True)

    def discard(self, region: str) -> None:
        """The forward stream's publication and slot dropped at the origin (a slot nobody reads keeps WAL
        there for ever). While the region's cluster is still a secondary, nothing else. Once detached: the
        region read from the origin's writer, the shard's secondaries and global cluster removed, the
        detached cluster deleted, a new secondary of the origin's global cluster attached (a full copy: hours
        on AWS) and read from again. Idempotent."""
        self._known(region, "discard writer")
        cluster = self._cluster(region)
        if cluster is not None and self.is_writer(region):
            try:  # its subscription first, or it reconnects to the slot being dropped
                with self._connect(*self._writer_endpoint(region, cluster), timeout=5) as copy:
                    sql.drop_forward(copy, None, region)
            except psycopg.Error as exc:  # the origin ends its walsender below, and the copy is deleted next
                log.warning("%s: the detached copy does not answer (%s): its forward subscription is left to "
                            "the cluster's deletion", region, str(exc).strip().splitlines()[0] if str(exc).strip()
                            else type(exc).__name__)
        with self._errors("origin: drop the forward stream"), self._origin() as origin:
            sql.drop_forward(None, origin, region)
            sql.resume_reverse_streams(origin)  # a staging killed during the detach left them paused
        if cluster is not None and not self._detached(cluster):
            return
        self.db.route_reads_to_writer(region)
        self.remove_shard_secondaries(region)
        shard = self._shard_global(region)
        if shard is not None:
            for member in _members(shard):
                call(self.db._rds(region), "remove_from_global_cluster", region,
                     absent=CLUSTER_NOT_FOUND | GLOBAL_NOT_FOUND,
                     GlobalClusterIdentifier=shard["GlobalClusterIdentifier"], DbClusterIdentifier=member["DBClusterArn"])
            call(self.db._rds(region), "delete_global_cluster", region, absent=GLOBAL_NOT_FOUND,
                 GlobalClusterIdentifier=shard["GlobalClusterIdentifier"])
        self.db.delete_secondary(region)
        self.db.create_secondary(region, _nothing, _nothing)
        self.db.route_reads_to_secondary(region)

    # ---- the reverse stream ------------------------------------------------------------------------------------

    def filter_in_replica_identity(self, region: str) -> tuple[bool, str]:
        with self._errors(f"{region}: replica identity"), \
                self._database(region, "replica identity", write=False) as conn:
            return sql.filter_in_replica_identity(conn)

    def prepare_reverse_stream(self, region: str) -> dict[str, Any]:
        # one connection for the check and the slot: it crosses the link while the home's writes are held
        with self._errors(f"{region}: reverse stream"), self._database(region, "reverse stream", write=True) as conn:
            ok, why = sql.filter_in_replica_identity(conn)
            if not ok:
                raise ProviderError(f"{region}: reverse stream: {why}", where=WHERE,
                                    hint="apply expand-schema first (e005: players' replica identity)")
            return sql.prepare_publication(conn, region)

    def _source(self, region: str) -> str:
        """The conninfo the origin's subscription reaches the home's writer with (its password included:
        PostgreSQL keeps it in pg_subscription, readable by superusers only)."""
        host, port = self._address(*self._writer_endpoint(region, self._require_cluster(region, "reverse stream")))
        assert self.access is not None
        return make_conninfo(self.access.dsn(host, port), password=self.access.password(), connect_timeout=10)

    def start_reverse_stream(self, region: str) -> dict[str, Any]:
        prepared = self.prepare_reverse_stream(region)
        with self._errors(f"{region}: reverse stream"), self._origin() as conn:
            sql.subscribe(conn, region, self._source(region).replace("'", "''"))
        return {**prepared, "subscription": sql.stream_name(region)}

    def reverse_stream(self, region: str) -> dict[str, Any] | None:
        with self._errors(f"{region}: reverse stream state"):
            with self._origin() as conn:
                state = sql.subscription_state(conn, region)
            if state is None:
                return None
            lag = None
            if self.is_writer(region):
                with self._database(region, "reverse stream state", write=True) as conn:
                    lag = sql.slot_lag_bytes(conn, region)
        return {"enabled": state[0], "streaming": state[1], "lag_bytes": lag}

    def drain_reverse_stream(self, region: str, timeout: float, checkpoint: CheckpointFn) -> str:
        with self._errors(f"{region}: drain reverse stream"), \
                self._database(region, "drain reverse stream", write=True) as conn:
            target = sql.current_lsn(conn)

            def drained() -> bool:
                done = sql.confirmed(conn, region, target)
                if done is None:
                    raise ProviderError(f"{region}: drain reverse stream: no slot {sql.stream_name(region)} on the "
                                        f"home writer", where=WHERE)
                return done
            self._wait(drained, f"the origin to confirm {region}'s writes up to {target}", timeout, checkpoint,
                       MARKER_POLL_S * 4)
        return target

    def stop_reverse_stream(self, region: str) -> None:
        alive = self.is_writer(region)
        with self._errors(f"{region}: stop reverse stream"):
            with self._origin() as conn:
                sql.drop_subscription(conn, region, publisher_alive=alive)
            if alive:
                with self._database(region, "stop reverse stream", write=True) as conn:
                    sql.drop_publication(conn, region)

    # ---- routing ---------------------------------------------------------------------------------------------

    def _writer_entry(self, region: str) -> str:
        """The home writer as the apps reach it: host and port, and a name of this cluster (a rollback deletes
        it and a later cutover makes another at the same address: the apps' pools to the old one must go)."""
        cluster = self._require_cluster(region, "route writes")
        host, port = self._writer_endpoint(region, cluster)
        return make_conninfo(host=host, port=port,
                             application_name=f"game-home-{cluster.get('DbClusterResourceId', 'cluster')[-12:].lower()}")

    def _route(self, key: str, entry: str | None) -> None:
        def update(current: dict[str, Any]) -> dict[str, Any]:
            if entry is None:
                current.pop(key, None)
            else:
                current[key] = entry
            return current
        self.writers.change(update)

    def warm_writes(self, region: str, on: bool) -> None:
        """Every region's apps connect to the home's future writer ahead of routing (or stop): staging
        detached it, so it has a writer endpoint (a cluster still a secondary has none: nothing is warmed)."""
        self._known(region, "warm writes")
        cluster = self._cluster(region)
        if on and (cluster is None or not self._detached(cluster)):
            return
        self._route(WARM_PREFIX + region, self._writer_entry(region) if on else None)

    def route_writes(self, region: str, to_home_writer: bool) -> None:
        self._known(region, "route writes")
        self._route(region, self._writer_entry(region) if to_home_writer else None)

    def writes_routed(self, region: str) -> dict[str, bool]:
        routed = {}
        for each in self.regions:
            try:
                routed[each] = region in self.writers.read(each)
            except TransientProviderError:
                routed[each] = False  # a region whose SSM does not answer is not known to send them there
        return routed

    # ---- a lost writer (evacuate-region) ----------------------------------------------------------------------

    def writer_reachable(self, region: str) -> tuple[bool, str]:
        cluster = self._cluster(region)
        if cluster is None or not self._detached(cluster):
            return False, f"{region} has no home writer"
        host, port = self._writer_endpoint(region, cluster)
        try:
            with self._connect(host, port, timeout=3) as conn:
                conn.execute("SET statement_timeout = '3s'")
                recovering = sql.in_recovery(conn)
        except psycopg.Error as exc:
            return False, f"{region}'s home writer does not answer: {str(exc).strip().splitlines()[0]}"
        if recovering:
            return False, f"{region}'s home writer answers but is in recovery"
        return True, f"{region}'s home writer answers at {host}"

    def abandon_reverse_stream(self, region: str) -> dict[str, Any]:
        """The lost writer's reverse stream abandoned (home_writer_sql.abandon_subscription), and the origin's
        forward slot for it dropped: a slot nobody reads keeps the origin's WAL for as long as the region is
        lost (the copy is discarded on the region's return: staging makes a new one)."""
        with self._errors(f"{region}: abandon reverse stream"), self._origin() as conn:
            abandoned = sql.abandon_subscription(conn, region)
            sql.drop_forward(None, conn, region)
        return {**abandoned, "forward_stream_dropped": sql.forward_name(region)}

    def recent_writes(self, database: str, home: str, since: float) -> dict[int, float]:
        with self._errors(f"{home}: recent writes on {database}"), \
                self._database(database, "recent writes", write=False) as conn:
            return sql.recent_writes(conn, home, since)
