"""What phases may ask of the world. Phases import only this module; adapters (aws/, lab/) implement it.

Every method is idempotent unless its contract says otherwise, and raises only project errors
(ProviderError, TransientProviderError for retryable ones)."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Callable, Protocol

ProgressFn = Callable[[int, int | None], None]  # (done, total or None when unknown)
CheckpointFn = Callable[[], None]  # call often in long work: honours pause/abort and fault injection


@dataclass(frozen=True)
class PrimaryFacts:
    """Read-only facts about the global database's writer."""

    reachable: bool  # False when the writer could not be reached; the other fields are then defaults
    detail: str = ""  # why unreachable, or a one-line summary
    server_version: str = ""  # e.g. "15.20"
    server_version_num: int = 0  # e.g. 150020
    wal_level: str = ""  # must be "replica" or "logical" for physical replication (lab)
    max_wal_senders: int = 0
    wal_senders_in_use: int = 0
    slots: tuple[str, ...] = ()  # names of existing replication slots (lab) / members (AWS)
    database_bytes: int = 0  # size of the data to copy to a new secondary


@dataclass(frozen=True)
class SecondaryFacts:
    """Read-only facts about a target region's secondary and its host."""

    region: str
    exists: bool  # a copy (data directory / cluster) is present
    running: bool  # serving reads
    engine_version_num: int  # version the secondary would run (binaries / engine version)
    free_disk_bytes: int | None  # room where its data would live; None when not applicable (AWS)
    slot_name: str  # the replication slot / membership name this region uses


@dataclass(frozen=True)
class ReplicationLag:
    """One sample of a secondary's replication state."""

    region: str
    state: str  # "streaming", "catchup", "stopped" or "absent"
    lag_bytes: int | None  # writer LSN minus replay LSN; None when unknown
    lag_seconds: float | None  # time since the last replayed commit when the writer is ahead, else 0
    replay_lsn: str | None = None  # e.g. "0/3000148"


@dataclass(frozen=True)
class ChunkChecksum:
    """Checksum of one key range, on writer and secondary, taken at the same LSN."""

    table: str
    lo: int  # inclusive lower key
    hi: int  # exclusive upper key
    lsn: str  # the LSN both sides were compared at
    writer_rows: int
    secondary_rows: int
    writer_digest: str
    secondary_digest: str
    attempts: int = 1  # >1 when concurrent writes forced a re-read

    @property
    def matches(self) -> bool:
        return (self.writer_rows, self.writer_digest) == (self.secondary_rows, self.secondary_digest)


class GlobalDatabase(Protocol):
    """An Aurora Global Database (AWS) or its lab stand-in: a PostgreSQL primary with physical standbys."""

    def primary_facts(self) -> PrimaryFacts:
        """Read-only facts about the writer; an unreachable writer gives reachable=False, never raises."""

    def secondary_facts(self, region: str) -> SecondaryFacts:
        """Read-only facts about the region's secondary and where it would live."""

    def reserve_replication(self, region: str) -> dict:
        """Make the writer keep changes for `region` (lab: physical slot; AWS: global cluster present); returns outputs to journal."""

    def replication_reserved(self, region: str) -> bool:
        """True when the writer keeps changes for `region` (lab: its slot exists; AWS: global cluster with the primary); read-only."""

    def release_replication(self, region: str) -> None:
        """Undo reserve_replication; a no-op when nothing is reserved."""

    def create_secondary(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """Seed the region's copy (lab: base backup through the WAN; AWS: secondary cluster in the global cluster); a complete copy is kept."""

    def delete_secondary(self, region: str) -> None:
        """Remove the region's copy and everything it stored; a no-op when absent."""

    def start_secondary(self, region: str) -> dict:
        """Start replaying from the writer and serving reads; returns outputs (endpoint, ids)."""

    def stop_secondary(self, region: str) -> None:
        """Stop (lab) or detach from the global cluster (AWS); a no-op when already stopped."""

    def replication_lag(self, region: str) -> ReplicationLag:
        """One read-only sample of the region's replication state; state="absent" when there is no secondary."""

    def key_range(self, table: str) -> tuple[int, int]:
        """(min id, max id + 1) of `table` on the writer; (0, 0) when empty."""

    def chunk_end(self, table: str, start: int, rows: int) -> int | None:
        """The id after the first `rows` rows with id >= start on the writer (the exclusive end of a
        chunk of `rows` rows); None when fewer are left. Ids are sparse (a block per home writer)."""

    def checksum_chunk(self, region: str, table: str, lo: int, hi: int) -> ChunkChecksum:
        """Checksum rows lo <= id < hi on writer and the region's secondary at one LSN; read-only."""

    def route_reads_to_secondary(self, region: str) -> str:
        """Point the region's readers at its local secondary; returns the reader endpoint."""

    def route_reads_to_writer(self, region: str) -> str:
        """Point the region's readers back at the writer; returns the endpoint now used."""

    def reader_endpoint(self, region: str) -> str | None:
        """Where the region's readers currently read (None when the region has no readers configured)."""


# --- stand-up-region ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiEndpoint:
    """Where a region's API answers."""

    region: str
    host: str  # what Route 53 health checkers and records point at (lab: 127.0.0.1)
    port: int  # lab: the app's port; AWS: 443 on the ALB
    url: str  # base URL a client in the region would use, e.g. http://127.0.0.1:8123


@dataclass(frozen=True)
class HealthResult:
    """One probe of a region's API /health."""

    ok: bool
    detail: str  # status code and body summary, or the error
    latency_ms: float | None = None
    app: dict | None = None  # the app's generation and schema range ({"generation", "requires", "breaks_at"}), when it said


class Infrastructure(Protocol):
    """The region's foundation (AWS: the Terraform root; lab: its folders)."""

    def commands(self, region: str, dry_run: bool) -> list[str]:
        """The exact commands apply would run (for plans); no side effects."""

    def preflight(self, region: str) -> list[tuple[str, bool, str]]:
        """Read-only checks (name, ok, detail): tools present, names free, quotas, CIDR."""

    def rehearse(self, region: str, checkpoint: CheckpointFn) -> list[str]:
        """What apply would change, computed without changing anything (terraform init + plan); summary lines."""

    def apply(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """Create or update the foundation; idempotent; returns its outputs (ids, endpoints)."""

    def destroy(self, region: str, checkpoint: CheckpointFn) -> None:
        """Remove the foundation; a no-op when absent."""


class RegionRuntime(Protocol):
    """The region's stateful cache and stateless API (lab: processes; AWS: ElastiCache and ECS)."""

    def ensure_cache(self, region: str) -> dict:
        """The region's Redis exists and answers; idempotent; returns its endpoint."""

    def remove_cache(self, region: str) -> None:
        """Remove the region's Redis and its data; a no-op when absent."""

    def cache_ready(self, region: str) -> bool:
        """True when the region's Redis answers; read-only."""

    def deploy_api(self, region: str) -> ApiEndpoint:
        """Run the API in the region (receiving no player traffic yet); idempotent."""

    def remove_api(self, region: str) -> None:
        """Stop and remove the region's API; a no-op when absent."""

    def api_endpoint(self, region: str) -> ApiEndpoint | None:
        """Where the region's API answers, or None when not deployed; read-only."""

    def api_health(self, region: str, through_geography: str | None = None) -> HealthResult:
        """Probe /health (in the lab through the named geography's WAN link); read-only."""

    def image_available(self) -> tuple[bool, str]:
        """Whether the API build to deploy exists (lab: the app package imports; AWS: the ECR image)."""


class ObjectStore(Protocol):
    """S3 buckets for assets, with cross-region replication from the source bucket."""

    def bucket_name(self, region: str) -> str:
        """The assets bucket name of `region` (pure)."""

    def bucket_exists(self, region: str) -> bool:
        """Read-only."""

    def ensure_bucket(self, region: str) -> dict:
        """Create the region's bucket (versioned, private) if absent; returns its name."""

    def ensure_replication(self, source_region: str, region: str) -> dict:
        """Replicate the source bucket into the region's bucket (a rule keyed by region); idempotent."""

    def remove_replication(self, source_region: str, region: str) -> None:
        """Drop that region's rule from the source bucket; other regions' rules stay."""

    def replication_regions(self, source_region: str) -> list[str]:
        """Regions the source bucket currently replicates to; read-only."""

    def delete_bucket(self, region: str) -> None:
        """Empty and delete the region's bucket; a no-op when absent."""


class Dns(Protocol):
    """Route 53: the API name's records and health checks. Routing is scoped per player geography: the API
    name answers each geography with its own pool name, whose records pick the region (aws/dns.py)."""

    def pool(self, geography: str) -> Dns:
        """The same adapter bound to `geography`'s pool name: weights and records there; pure."""

    def geography_front(self) -> dict[str, str]:
        """geography → the pool name the API name answers its players with ({} when unscoped); read-only."""

    def ensure_geography_front(self, source_region: str, homes: Mapping[str, str],
                               endpoints: Mapping[str, ApiEndpoint]) -> dict:
        """Scope the API name by geography, every pool holding the source (idempotent; one swap batch, no
        player changes region); returns what changed."""

    def ensure_health_check(self, region: str, endpoint: ApiEndpoint) -> str:
        """An HTTP health check on the region's /health, found by its caller reference; returns its id."""

    def delete_health_check(self, region: str) -> None:
        """A no-op when absent."""

    def health_check_id(self, region: str) -> str | None:
        """Read-only."""

    def set_weight(self, region: str, weight: int, endpoint: ApiEndpoint | None = None) -> dict:
        """UPSERT the region's weighted record of this name (SetIdentifier '<region>[-<geography>]-weighted');
        returns the change info."""

    def delete_weighted(self, region: str) -> None:
        """Remove the region's weighted record; a no-op when absent."""

    def weights(self) -> dict[str, int]:
        """region → weight of every weighted record of this name (the API name, or the pool's); read-only."""


@dataclass(frozen=True)
class SchemaRevision:
    """One Alembic revision of the game's schema (app/migrations)."""

    id: str  # the revision id, e.g. e001_home_epoch
    revises: str  # the revision it follows
    title: str  # the first line of its docstring
    depends_on: tuple[str, ...] = ()  # revisions of other branches it needs applied first (contract → expand)


class SchemaStore(Protocol):
    """The game's schema at the writer of the players' data: Alembic revisions, run as the app ships them."""

    def branch(self, name: str) -> list[SchemaRevision]:
        """The branch's revisions ("expand" or "contract"), root to head, read from the app's migrations."""

    def applied(self) -> set[str]:
        """Revision ids in the writer's alembic_version (empty when Alembic never ran there)."""

    def upgrade_sql(self, start: str, target: str) -> str:
        """The SQL `upgrade start:target` would run (offline, nothing touched): for squawk and --dry-run."""

    def upgrade(self, target: str) -> None:
        """Apply revisions up to `target` under the lock timeout; TransientProviderError when a lock wait gave up."""

    def downgrade(self, target: str) -> None:
        """Undo revisions down to `target`; TransientProviderError when a lock wait gave up."""

    def backfill_handle_claims(self, after_id: int, batch: int) -> tuple[int | None, int]:
        """Claim the handles of the next `batch` players with id > after_id; (last id seen, None when none
        were left; claims inserted). Idempotent: a handle already claimed by its player is skipped."""

    def handle_claims_missing(self) -> int:
        """How many players' handles the authority does not hold for them (0 once the backfill is complete)."""

    def home_writers(self) -> list[str]:
        """Regions whose own promoted home writer (cutover) holds a copy of the schema too; [] where none."""

    def at_home_writer(self, region: str) -> SchemaStore:
        """The same store against `region`'s home writer (logical replication carries no DDL: each writer
        is changed on its own)."""

    def prune_foreign_rows(self, home: str, after_id: int, batch: int) -> tuple[int | None, int]:
        """On a home writer: delete the next `batch` rows by id after `after_id` that another home owns;
        (last id looked at, None when none were left; rows deleted). Idempotent."""

    def foreign_rows(self, home: str) -> int:
        """How many rows of other homes this writer still holds; read-only."""


class HomeWriters(Protocol):
    """A region's own writer for the players it homes (cutover, DESIGN §5 and §9): staged as a standby
    of the origin, fenced, promoted, fed back to the origin by a logical stream, routed to by every
    region's apps. `database` names a writer: "origin" or a region (its home writer)."""

    def stage(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """The region's future writer as a running standby of the origin, logical decoding on, fenced for every other home; idempotent."""

    def staged(self, region: str) -> bool:
        """Whether the region's future (or promoted) writer exists."""

    def logical_decoding_ready(self, region: str) -> tuple[bool, str]:
        """(ok, why): logical decoding is (or will be, by staging) on wherever the region's cutover decodes; read-only."""

    def replay_lsn(self, region: str) -> str | None:
        """The staged writer's replayed WAL position; None when it is not a running standby."""

    def discard(self, region: str) -> None:
        """Stop and remove the region's future or promoted writer and the origin's slot for it; idempotent."""

    def fenced(self, database: str) -> set[str]:
        """The homes whose writes `database` refuses now."""

    def set_fence(self, database: str, home: str, on: bool) -> None:
        """Fence (or unfence) `home` on `database`; returns once every new statement there sees it; idempotent."""

    def barrier(self, database: str, home: str) -> dict:
        """After `database`'s fence for `home`: wait out every transaction that wrote before it (ending
        stragglers); what it did, with "writable_until": the epoch time after which it took none of the home's writes."""

    def marker_lsn(self) -> str:
        """The origin's position now, as the staged writer can be compared with it (read after the barrier: every write of the fenced home is below it): an LSN, or "marker:<n>" where replicas report none (Aurora)."""

    def wait_replayed(self, region: str, lsn: str, timeout: float, checkpoint: CheckpointFn) -> None:
        """Return once the region's staged writer has replayed `lsn` (a marker_lsn answer); TransientProviderError past `timeout`."""

    def is_writer(self, region: str) -> bool:
        """Whether the region's home writer runs and is out of recovery (promoted)."""

    def promote(self, region: str) -> dict:
        """Promote the staged writer, confirmed out of recovery; fence it for the other homes, then unfence its own; drop the origin's slot for it; idempotent."""

    def add_shard_secondaries(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """Secondaries of the region's new shard elsewhere, and what the region needs to read the other shards locally; returns once they serve; idempotent."""

    def remove_shard_secondaries(self, region: str) -> None:
        """Remove what add_shard_secondaries made; idempotent."""

    def filter_in_replica_identity(self, region: str) -> tuple[bool, str]:
        """(ok, why): a row filter on home_region is allowed on the region's writer (replica identity covers it)."""

    def prepare_reverse_stream(self, region: str) -> dict:
        """On the home's writer, the publication of its rows and the slot that keeps every change for the origin; idempotent."""

    def start_reverse_stream(self, region: str) -> dict:
        """Stream the home's rows from its writer back to the origin, from the slot on (no initial copy); idempotent."""

    def reverse_stream(self, region: str) -> dict | None:
        """The reverse stream's state ({"enabled", "streaming", "lag_bytes"}); None when there is none."""

    def drain_reverse_stream(self, region: str, timeout: float, checkpoint: CheckpointFn) -> str:
        """Return once the origin has confirmed everything the home's writer wrote; that position."""

    def stop_reverse_stream(self, region: str) -> None:
        """Remove the reverse stream (both ends); idempotent."""

    def warm_writes(self, region: str, on: bool) -> None:
        """Every region's apps connect to the home's future writer ahead of routing (nothing routed), or stop."""

    def route_writes(self, region: str, to_home_writer: bool) -> None:
        """Every region's apps send the home's writes to its own writer (or back to the origin); idempotent."""

    def writes_routed(self, region: str) -> dict[str, bool]:
        """App region → whether it sends the home's writes to the home's own writer."""

    def writer_reachable(self, region: str) -> tuple[bool, str]:
        """(answers as a writer where the other regions reach it, why); a lost or cut-off writer gives False; read-only."""

    def abandon_reverse_stream(self, region: str) -> dict:
        """Drop the origin's side of the reverse stream, leaving the lost writer alone; how far it had come; idempotent."""

    def recent_writes(self, database: str, home: str, since: float) -> dict[int, float]:
        """player id → last write time (epoch s) of `home`'s rows on `database` written at or after `since`; read-only."""


class OriginFailover(Protocol):
    """The origin's loss (DESIGN §6b): the global database's writer moved to a secondary elsewhere. AWS:
    Aurora's failover_global_cluster (data loss allowed) and switchover_global_cluster (the way back);
    the lab does not emulate it."""

    def origin_region(self) -> str:
        """The region whose cluster writes now; read-only."""

    def fail_over_origin(self, to_region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """Make `to_region`'s secondary the writer now, losing what the lost writer had not replicated; idempotent."""

    def switch_over_origin(self, to_region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        """Move the writer to `to_region` with no data loss (both sides up); idempotent."""


class HomeServing(Protocol):
    """Which region serves a home's players (their score submits, tickets and sessions' home), and
    the home's state in that region's cache: leaderboard entries and matchmaking tickets (cutover's
    re-home step, DESIGN §2, §5). A home's rows move with HomeWriters; this moves the rest."""

    def serving(self, home: str) -> str:
        """The region whose apps serve `home`'s players now (their score submits and tickets)."""

    def serve(self, home: str, region: str) -> None:
        """Every region's apps send `home`'s players to `region` from now on; returns once written; idempotent."""

    def home_epoch(self, home: str) -> int:
        """The epoch `home`'s players write under now (1 until the home is first taken over); read-only."""

    def take_over(self, home: str, region: str, from_epoch: int) -> int:
        """`region` serves `home` under epoch `from_epoch` + 1 (sessions and writes of older epochs are refused
        in every region from now on); the new epoch; a no-op returning the epoch when it is past `from_epoch`."""

    def move_state(self, home: str, source: str, target: str) -> dict:
        """Move `home`'s leaderboard entries and tickets from `source`'s cache to `target`'s, none lost or
        doubled (a best only improves; a waiting ticket keeps its id and its place); idempotent; counts."""

    def state_counts(self, home: str, region: str) -> dict:
        """How many of `home`'s leaderboard entries and waiting tickets `region`'s cache holds."""
