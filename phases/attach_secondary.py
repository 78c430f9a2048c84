"""Phase attach-secondary: add a region's secondary to the global database and read from it locally.

On AWS this is an Aurora Global Database secondary cluster; in the lab, a PostgreSQL 15 physical
standby seeded by pg_basebackup through the emulated WAN link. The phase speaks only to the
GlobalDatabase Protocol, so both run the same steps, checks and rollback."""

from __future__ import annotations

import time
from dataclasses import dataclass

from migrate.phasekit.checks import lag_within_budget
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.phasekit.players_gate import WatchPlayers
from migrate.errors import ProviderError, VerifyFailed
from migrate.providers.protocols import GlobalDatabase

TABLE = "players"


def _gdb(target: Target) -> GlobalDatabase:
    return target.providers.global_database


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _per_env(target: Target, lab: str, aws: str) -> str:
    """The exact action for the environment the plan is for (reviewers read one, not both)."""
    return aws if target.env.kind == "aws" else lab


# --- steps --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReserveReplication:
    id: str = "reserve-replication"
    title: str = "Reserve a replication channel on the writer"

    def describe(self, target: Target) -> list[str]:
        slot = f"migrate_{target.region.replace('-', '_')}"
        return [_per_env(target,
                         f"create physical replication slot '{slot}' on the {target.spec.source_region} writer",
                         f"ensure global cluster game-global exists with game-{target.spec.source_region} as a member "
                         f"(rds:CreateGlobalCluster if absent)")]

    def describe_undo(self, target: Target) -> list[str]:
        return [_per_env(target, "drop the replication slot (terminating its walsender first)",
                         "nothing: the global cluster is shared by every region")]

    def apply(self, ctx: StepContext) -> dict:
        outputs = _gdb(ctx.target).reserve_replication(ctx.target.region)
        ctx.checkpoint()  # the slot exists but is not yet journaled: a real crash point
        return outputs

    def verify(self, ctx: StepContext) -> None:
        if not _gdb(ctx.target).replication_reserved(ctx.target.region):
            raise VerifyFailed(f"no replication channel for {ctx.target.region} on the writer after reserving it")

    def undo(self, ctx: StepContext) -> None:
        _gdb(ctx.target).release_replication(ctx.target.region)


@dataclass(frozen=True)
class SeedSecondary:
    id: str = "seed-secondary"
    title: str = "Seed the secondary with a copy of the writer"

    def describe(self, target: Target) -> list[str]:
        return [_per_env(target,
                         f"pg_basebackup -X stream -S <slot> through the {target.spec.source_region}↔{target.region} "
                         f"WAN link into a .partial folder, then rename it and write per-node settings",
                         f"rds:CreateDBCluster game-{target.region} in {target.region} with "
                         f"GlobalClusterIdentifier=game-global and the writer's engine version, "
                         f"plus one reader instance; wait until available")]

    def describe_undo(self, target: Target) -> list[str]:
        return [_per_env(target, f"stop and remove {target.region}'s data directory",
                         f"delete game-{target.region}'s instances, then the cluster (SkipFinalSnapshot)")]

    def apply(self, ctx: StepContext) -> dict:
        return _gdb(ctx.target).create_secondary(ctx.target.region, ctx.progress, ctx.checkpoint)

    def verify(self, ctx: StepContext) -> None:
        if not _gdb(ctx.target).secondary_facts(ctx.target.region).exists:
            raise VerifyFailed(f"no secondary copy present in {ctx.target.region} after seeding")

    def undo(self, ctx: StepContext) -> None:
        _gdb(ctx.target).delete_secondary(ctx.target.region)


@dataclass(frozen=True)
class StartSecondary:
    id: str = "start-secondary"
    title: str = "Start the secondary replaying from the writer"

    def describe(self, target: Target) -> list[str]:
        return [_per_env(target, f"pg_ctl start {target.region}'s hot standby, streaming from the writer",
                         f"wait until game-{target.region} is available and replicating")]

    def describe_undo(self, target: Target) -> list[str]:
        return [_per_env(target, f"pg_ctl stop -m fast {target.region}'s standby",
                         f"rds:RemoveFromGlobalCluster game-{target.region}")]

    def apply(self, ctx: StepContext) -> dict:
        outputs = _gdb(ctx.target).start_secondary(ctx.target.region)
        ctx.checkpoint()  # running but not journaled
        return outputs

    def verify(self, ctx: StepContext) -> None:
        lag = _gdb(ctx.target).replication_lag(ctx.target.region)
        if lag.state not in ("streaming", "catchup"):
            raise VerifyFailed(f"{ctx.target.region}'s secondary is {lag.state}, not replicating")

    def undo(self, ctx: StepContext) -> None:
        _gdb(ctx.target).stop_secondary(ctx.target.region)


@dataclass(frozen=True)
class WaitCatchUp:
    id: str = "wait-catch-up"
    title: str = "Wait until replication lag is within budget"

    def describe(self, target: Target) -> list[str]:
        t = target.env.timings
        return [f"poll replication lag every {t.poll_interval_seconds:g}s until it is ≤ "
                f"{t.lag_budget_seconds:g}s and ≤ {_fmt_bytes(t.lag_budget_bytes)}, "
                f"failing after {t.catch_up_timeout_seconds:g}s"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing (read-only)"]

    def apply(self, ctx: StepContext) -> dict:
        t, gdb, region = ctx.target.env.timings, _gdb(ctx.target), ctx.target.region
        deadline = time.monotonic() + t.catch_up_timeout_seconds
        first_bytes = None
        while True:
            ctx.checkpoint()
            lag = gdb.replication_lag(region)
            if lag_within_budget(ctx.target, lag):
                return {"lag_seconds": lag.lag_seconds, "lag_bytes": lag.lag_bytes,
                        "replay_lsn": lag.replay_lsn}
            if lag.lag_bytes is not None:
                first_bytes = first_bytes if first_bytes is not None else max(lag.lag_bytes, 1)
                ctx.progress(max(first_bytes - lag.lag_bytes, 0), first_bytes,
                             f"lag {_fmt_bytes(lag.lag_bytes)}, {lag.lag_seconds}s")
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"{region} did not catch up within {t.catch_up_timeout_seconds:g}s: state {lag.state}, "
                    f"lag {_fmt_bytes(lag.lag_bytes)} / {lag.lag_seconds}s",
                    hint="check the WAN link and the writer's write rate; re-run to keep waiting")
            time.sleep(min(t.poll_interval_seconds, 0.5))

    def verify(self, ctx: StepContext) -> None:
        pass  # apply returns only once the postcondition held

    def undo(self, ctx: StepContext) -> None:
        pass


@dataclass(frozen=True)
class VerifyData:
    id: str = "verify-data"
    title: str = "Verify the data: chunked checksums of players at one LSN"

    def describe(self, target: Target) -> list[str]:
        return [f"checksum {TABLE} in chunks of {target.env.timings.verify_chunk_rows} rows on the writer and on "
                f"{target.region}'s secondary at the same LSN; resumable chunk by chunk"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing (read-only); forget the verified chunks"]

    def apply(self, ctx: StepContext) -> dict:
        gdb, region = _gdb(ctx.target), ctx.target.region
        chunk = ctx.target.env.timings.verify_chunk_rows
        saved = ctx.saved
        lo, hi = saved.get("range") or gdb.key_range(TABLE)
        if "range" not in saved:
            ctx.save(range=[lo, hi], verified_upto=lo, rows=0, chunks=0, mismatches=[])
            saved = ctx.saved
        position, rows, chunks = saved["verified_upto"], saved["rows"], saved["chunks"]
        mismatches = list(saved["mismatches"])
        while position < hi:
            ctx.checkpoint()
            # A chunk is `chunk` rows, found by key (ids are sparse: each home writer allocates from its
            # own block far above the others, so a chunk of ids could hold nothing for a long way).
            end = min(gdb.chunk_end(TABLE, position, chunk) or hi, hi)
            result = gdb.checksum_chunk(region, TABLE, position, end)
            if not result.matches:
                mismatches.append({"lo": position, "hi": end, "lsn": result.lsn,
                                   "writer_rows": result.writer_rows,
                                   "secondary_rows": result.secondary_rows})
            position, rows, chunks = end, rows + result.writer_rows, chunks + 1
            ctx.save(verified_upto=position, rows=rows, chunks=chunks, mismatches=mismatches)
            ctx.progress(chunks, None, f"{rows} rows compared, up to id {position} of {hi - 1}")
        mismatches = self._recheck(ctx, mismatches)
        if mismatches:
            first = mismatches[0]
            raise VerifyFailed(f"{len(mismatches)} chunk(s) of {TABLE} differ between the writer and "
                               f"{region}; first ids {first['lo']}..{first['hi']}",
                               hint="roll back the phase and attach again; keep the journal for the post-mortem")
        return {"rows": rows, "chunks": chunks, "range": [lo, hi], "mismatches": 0,
                "rechecked": ctx.saved.get("rechecked", 0)}

    RECHECK_PASSES = 3

    def _recheck(self, ctx: StepContext, mismatches: list[dict]) -> list[dict]:
        """Compare mismatched chunks again a few times: under heavy writes a chunk can change between
        the writer's snapshot and the replica's pause; only a difference that persists is real."""
        gdb, region = _gdb(ctx.target), ctx.target.region
        for attempt in range(1, self.RECHECK_PASSES + 1):
            if not mismatches:
                break
            time.sleep(min(ctx.target.env.timings.poll_interval_seconds * attempt, 5.0))
            still = []
            for m in mismatches:
                ctx.checkpoint()
                if not gdb.checksum_chunk(region, TABLE, m["lo"], m["hi"]).matches:
                    still.append(m)
            ctx.save(mismatches=still, rechecked=ctx.saved.get("rechecked", 0) + len(mismatches))
            mismatches = still
        return mismatches

    def verify(self, ctx: StepContext) -> None:
        pass  # apply raises on any mismatch

    def undo(self, ctx: StepContext) -> None:
        pass


@dataclass(frozen=True)
class RouteReadsLocal:
    id: str = "route-reads-local"
    title: str = "Point the region's reads at its local secondary"

    def describe(self, target: Target) -> list[str]:
        return [_per_env(target, f"write {target.region} → its standby's DSN into the lab's readers.json",
                         f"ssm:PutParameter /migrate/{target.region}/db/reader-endpoint = the secondary's reader endpoint")]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"point {target.region}'s reads back at the writer"]

    def apply(self, ctx: StepContext) -> dict:
        endpoint = _gdb(ctx.target).route_reads_to_secondary(ctx.target.region)
        ctx.checkpoint()  # readers moved but not journaled
        return {"reader_endpoint": endpoint}

    def verify(self, ctx: StepContext) -> None:
        want = ctx.target.state.step(self.id).outputs.get("reader_endpoint")
        have = _gdb(ctx.target).reader_endpoint(ctx.target.region)
        if want is not None and have != want:
            raise VerifyFailed(f"{ctx.target.region}'s readers use {have}, expected {want}")

    def undo(self, ctx: StepContext) -> None:
        _gdb(ctx.target).route_reads_to_writer(ctx.target.region)


# --- checks -------------------------------------------------------------------------------------
def _writer_reachable(t: Target) -> CheckResult:
    f = _gdb(t).primary_facts()
    return CheckResult("writer-reachable", f.reachable,
                       f"writer {t.spec.source_region} {'reachable, PostgreSQL ' + f.server_version if f.reachable else 'unreachable: ' + f.detail}",
                       "start the writer (lab: `migrate lab up`) or check network and credentials")


def _wal_settings(t: Target) -> CheckResult:
    f = _gdb(t).primary_facts()
    if not f.reachable:
        return CheckResult("wal-settings", False, "writer unreachable", "see writer-reachable")
    if not f.wal_level:
        return CheckResult("wal-settings", True, "managed by Aurora")
    free = f.max_wal_senders - f.wal_senders_in_use
    ok = f.wal_level in ("replica", "logical") and free >= 1
    return CheckResult("wal-settings", ok,
                       f"wal_level={f.wal_level}, wal senders free {free}/{f.max_wal_senders}",
                       "set wal_level=replica and raise max_wal_senders on the writer, then restart it")


def _slot_free(t: Target) -> CheckResult:
    f = _gdb(t).primary_facts()
    slot = _gdb(t).secondary_facts(t.region).slot_name
    ours = t.state.step("reserve-replication").touched
    ok = f.reachable and (slot not in f.slots or ours)
    detail = (f"channel '{slot}' " + ("free" if slot not in f.slots else
                                      "held by this phase's earlier run" if ours else "already in use"))
    return CheckResult("replication-slot-free", ok, detail,
                       f"another attach of {t.region} holds '{slot}': roll it back, or drop the slot if it is stale")


def _disk_room(t: Target) -> CheckResult:
    s, f = _gdb(t).secondary_facts(t.region), _gdb(t).primary_facts()
    if s.free_disk_bytes is None:
        return CheckResult("disk-room", True, "storage managed by Aurora")
    need = 2 * f.database_bytes
    return CheckResult("disk-room", s.free_disk_bytes >= need,
                       f"{_fmt_bytes(s.free_disk_bytes)} free, need {_fmt_bytes(need)} (2× the database)",
                       "free disk space where the lab lives, or set MIGRATE_LAB_DIR elsewhere")


def _versions_equal(t: Target) -> CheckResult:
    s, f = _gdb(t).secondary_facts(t.region), _gdb(t).primary_facts()
    ok = f.reachable and s.engine_version_num // 100 == f.server_version_num // 100
    return CheckResult("engine-versions-equal", ok,
                       f"writer {f.server_version_num}, secondary {s.engine_version_num}",
                       "install the writer's PostgreSQL major version for the secondary (Aurora: pin engine_version)")


def _no_foreign_copy(t: Target) -> CheckResult:
    s = _gdb(t).secondary_facts(t.region)
    ours = t.state.step("seed-secondary").touched
    ok = not s.exists or ours
    return CheckResult("no-foreign-copy", ok,
                       "no copy present" if not s.exists else
                       "copy present from this phase's earlier run" if ours else
                       f"a copy already exists in {t.region} that this journal did not create",
                       "remove it by hand after checking what it is, or use the journal that created it")


def _replicating(t: Target) -> CheckResult:
    lag = _gdb(t).replication_lag(t.region)
    return CheckResult("replicating-within-budget", lag_within_budget(t, lag),
                       f"state {lag.state}, lag {lag.lag_seconds}s / {_fmt_bytes(lag.lag_bytes)}",
                       "see `migrate status`; wait, or check the WAN link")


def _reads_local(t: Target) -> CheckResult:
    want = t.state.step("route-reads-local").outputs.get("reader_endpoint")
    have = _gdb(t).reader_endpoint(t.region)
    return CheckResult("reads-local", want is not None and have == want,
                       f"{t.region} reads from {have}", "re-run the phase")


def _data_verified(t: Target) -> CheckResult:
    out = t.state.step("verify-data").outputs
    return CheckResult("data-verified", out.get("mismatches") == 0 and "rows" in out,
                       f"{out.get('rows', 0)} rows in {out.get('chunks', 0)} chunks matched",
                       "re-run the phase")


class AttachSecondary:
    """attach-secondary: the region gets a replicating copy of the writer and reads from it."""

    name = "attach-secondary"
    summary = "Add the region's Aurora Global Database secondary, verify its data, read from it locally"
    built = True
    regional = True
    point_of_no_return = None
    runbook = "runbooks/attach-secondary.md"

    def preflight(self, target: Target) -> list[Check]:
        return [
            Check("writer-reachable", "the writer answers", "start the writer", _writer_reachable),
            Check("wal-settings", "WAL level and free WAL senders allow a new standby",
                  "set wal_level=replica, raise max_wal_senders", _wal_settings),
            Check("replication-slot-free", "the region's replication channel is free",
                  "roll back the other attach or drop the stale slot", _slot_free),
            Check("disk-room", "room for the copy (2× the database)", "free disk", _disk_room),
            Check("engine-versions-equal", "secondary runs the writer's engine version",
                  "install the same major version", _versions_equal),
            Check("no-foreign-copy", "no copy in the region that this journal did not make",
                  "remove it by hand", _no_foreign_copy),
        ]

    def steps(self, target: Target):
        return [ReserveReplication(), SeedSecondary(), StartSecondary(), WaitCatchUp(),
                VerifyData(), RouteReadsLocal(), WatchPlayers()]

    def verify(self, target: Target) -> list[Check]:
        return [
            Check("replicating-within-budget", "the secondary streams within the lag budget",
                  "wait or check the link", _replicating),
            Check("data-verified", "every chunk of players matched", "re-run", _data_verified),
            Check("reads-local", "the region reads from its local secondary", "re-run", _reads_local),
        ]

    def rollback_summary(self, target: Target) -> list[str]:
        return [f"point {target.region}'s reads back at the writer", "stop/detach the secondary",
                "delete its copy", "release the replication channel"]


PHASE: Phase = AttachSecondary()
