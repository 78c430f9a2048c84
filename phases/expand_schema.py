"""Phase expand-schema (global): the schema home-region writers need, added under live load without
breaking any region's app (DESIGN §5).

Steps: one per revision of the Alembic `expand` branch (app/migrations/expand), applied one at a time
and each journaled, under a lock timeout (a lock wait that gives up is retried by the runner, with
backoff, instead of queueing players behind the DDL); then `backfill-handle-claims`, which copies the
existing players' handles into the handle authority in keyset batches, journaling the last id after
each batch (a killed run resumes there) and pausing while any secondary lags over the lag budget (the
backfill's WAL must not push a region's reads further behind), shown live with rows/s and ETA. Each
revision waits the same way before its DDL.

Preflight lints the exact SQL `alembic upgrade <current>:expand@head --sql` would run with squawk (a
finding fails with its rule and line; an exception needs a reason written above it), and asks every
region's app which generation it runs and which schema that generation works with.

Rollback: each revision's downgrade, last first (the backfill's rows go with the handle_claims table)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from migrate.errors import ProviderError, StepFailed, VerifyFailed
from migrate.phasekit.checks import lag_within_budget
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.providers.protocols import SchemaRevision, SchemaStore
from migrate.providers.schema_source import branch_revisions
from migrate.providers.sql_lint import lint_sql

BRANCH = "expand"
BASELINE = "0001_baseline"
BACKFILL_STEP = "backfill-handle-claims"
BATCH_ROWS = 2000  # one short transaction per batch: a few ms of row locks, a few hundred kB of WAL


def _schema(target: Target) -> SchemaStore:
    schema = target.providers.schema
    if schema is None:
        raise ProviderError(f"the {target.env.kind} environment has no schema adapter yet",
                            hint="expand-schema runs in the lab; on AWS it needs the Aurora writer's "
                                 "credentials from Secrets Manager (runbooks/expand-schema.md)")
    return schema


def applied_upto(branch: list[SchemaRevision], applied: set[str]) -> int:
    """How many of the branch's revisions (root first) the database holds: a revision is applied when it
    or one after it on the branch is in alembic_version."""
    ids = [r.id for r in branch]
    positions = [ids.index(rev) for rev in applied if rev in ids]
    return max(positions) + 1 if positions else 0


def _start(branch: list[SchemaRevision], applied: set[str]) -> str:
    done = applied_upto(branch, applied)
    return branch[done - 1].id if done else BASELINE


def _secondaries_lagging(target: Target) -> dict[str, str]:
    """region → why it is over the lag budget, for every attached secondary (absent ones are skipped)."""
    gdb = target.providers.global_database
    over = {}
    for region in target.spec.target_regions:
        lag = gdb.replication_lag(region)
        if lag.state == "absent":
            continue
        if not lag_within_budget(target, lag):
            over[region] = (f"{lag.state}, lag {lag.lag_seconds if lag.lag_seconds is not None else '?'} s / "
                            f"{lag.lag_bytes if lag.lag_bytes is not None else '?'} bytes")
    return over


def wait_for_secondaries(ctx: StepContext, where: str, position: tuple[int, int] = (0, 1)) -> None:
    """Return once every attached secondary is within the lag budget; while one is not, pause here:
    journaled once when the pause begins and once when it ends, shown live, re-checked every poll
    interval, and still pausable/abortable (checkpoints)."""
    t, timings = ctx.target, ctx.target.env.timings
    paused_since: float | None = None
    while True:
        ctx.checkpoint()
        lagging = _secondaries_lagging(t)
        if not lagging:
            break
        if paused_since is None:
            paused_since = time.monotonic()
            ctx.save(lag_pauses=int(ctx.saved.get("lag_pauses", 0)) + 1, paused={"at": where, "lagging": lagging})
        ctx.progress(*position, "PAUSED: " + "; ".join(f"{r} {why}" for r, why in lagging.items())
                     + f" (over the budget of {timings.lag_budget_seconds:g} s); goes on by itself")
        time.sleep(timings.poll_interval_seconds)
    if paused_since is not None:
        ctx.save(resumed={"at": where, "paused_seconds": round(time.monotonic() - paused_since, 1)})


# --- steps --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplyRevision:
    """One expand revision: upgrade to it; undo downgrades to the one before it."""

    revision: SchemaRevision

    @property
    def id(self) -> str:
        return self.revision.id

    @property
    def title(self) -> str:
        return f"Alembic upgrade to {self.revision.id}: {self.revision.title}"

    def describe(self, target: Target) -> list[str]:
        return [f"alembic upgrade {self.revision.revises}:{self.revision.id} on the players' writer once every "
                f"secondary is within the lag budget, lock_timeout set (a lock wait that gives up is retried "
                f"with backoff)", self.revision.title]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"alembic downgrade {self.revision.id} → {self.revision.revises}"]

    def rehearse(self, target: Target) -> list[str]:
        """The SQL this revision runs and squawk's verdict on it (for --dry-run)."""
        sql = _schema(target).upgrade_sql(self.revision.revises, self.revision.id)
        findings = lint_sql(sql)
        statements = [line for line in sql.splitlines() if line.strip() and not line.startswith("--")]
        return statements + (["squawk: clean"] if not findings else [f"squawk: {f.one_line()}" for f in findings])

    def _position(self, target: Target) -> tuple[int, int]:
        """(this revision's index on the branch, how many of the branch's revisions are applied)."""
        schema = _schema(target)
        branch = schema.branch(BRANCH)
        return [r.id for r in branch].index(self.revision.id), applied_upto(branch, schema.applied())

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        mine, done = self._position(ctx.target)
        if done > mine:
            ctx.checkpoint()
            return {"revision": self.revision.id, "already_applied": True}
        wait_for_secondaries(ctx, f"before {self.revision.id}")
        started = time.monotonic()
        _schema(ctx.target).upgrade(self.revision.id)
        ctx.checkpoint()  # applied, not journaled yet: a real crash point
        return {"revision": self.revision.id, "seconds": round(time.monotonic() - started, 3)}

    def verify(self, ctx: StepContext) -> None:
        mine, done = self._position(ctx.target)
        if done <= mine:
            raise VerifyFailed(f"{self.revision.id} is not applied on the writer")

    def undo(self, ctx: StepContext) -> None:
        mine, done = self._position(ctx.target)
        if done > mine + 1:
            raise StepFailed(f"cannot undo {self.revision.id}: {done} revisions of the expand branch are applied, "
                             f"a later one is still in place", where="expand-schema",
                             hint="roll back the whole phase (it undoes the revisions last first)")
        if done == mine + 1:
            _schema(ctx.target).downgrade(self.revision.revises)
        ctx.checkpoint()


@dataclass(frozen=True)
class BackfillHandleClaims:
    id: str = BACKFILL_STEP
    title: str = "Copy every existing player's handle into the handle authority, in keyset batches"

    def describe(self, target: Target) -> list[str]:
        t = target.env.timings
        return [f"INSERT INTO handle_claims … SELECT the next {BATCH_ROWS} players by id (FOR SHARE), ON CONFLICT "
                f"DO NOTHING; the last id journaled after each batch (a killed run resumes there)",
                f"before each batch: every attached secondary within {t.lag_budget_seconds:g} s / "
                f"{t.lag_budget_bytes} bytes of lag, else pause (journaled) and re-check every "
                f"{t.poll_interval_seconds:g} s"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing here: the copied claims go with handle_claims when e004 is downgraded"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        t = ctx.target
        schema = _schema(t)
        lo, hi = t.providers.global_database.key_range("players")
        last = int(ctx.saved.get("last_id", lo - 1))
        copied = int(ctx.saved.get("copied", 0))
        started, first, copied_here = time.monotonic(), last, 0
        while True:
            wait_for_secondaries(ctx, f"after id {last}", (max(0, last - lo + 1), max(1, hi - lo)))
            batch_last, inserted = schema.backfill_handle_claims(last, BATCH_ROWS)
            if batch_last is None:
                break
            last, copied, copied_here = batch_last, copied + inserted, copied_here + inserted
            ctx.save(last_id=last, copied=copied)
            elapsed = max(time.monotonic() - started, 1e-6)
            ids_per_s = (last - first) / elapsed
            eta = f"{max(0, hi - 1 - last) / ids_per_s:.0f} s" if ids_per_s > 0 else "?"
            ctx.progress(max(0, last - lo + 1), max(1, hi - lo),
                         f"up to id {last}: {copied} claimed, {copied_here / elapsed:,.0f} rows/s, ETA {eta}")
        return {"last_id": last, "copied": copied, "lag_pauses": int(ctx.saved.get("lag_pauses", 0)),
                "seconds": round(time.monotonic() - started, 2)}

    def verify(self, ctx: StepContext) -> None:
        missing = _schema(ctx.target).handle_claims_missing()
        if missing:
            raise VerifyFailed(f"{missing} players' handles are not held for them by handle_claims")

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()  # the claims go with the table (e004's downgrade)


# --- checks -------------------------------------------------------------------------------------
def _lint(t: Target) -> CheckResult:
    schema = _schema(t)
    branch = schema.branch(BRANCH)
    start = _start(branch, schema.applied())
    if start == branch[-1].id:
        return CheckResult("squawk-lint", True, f"{BRANCH}@head ({start}) is applied: no SQL left to run")
    findings = lint_sql(schema.upgrade_sql(start, f"{BRANCH}@head"))
    if findings:
        return CheckResult("squawk-lint", False, f"{len(findings)} finding(s) in upgrade {start}:{BRANCH}@head: "
                           + "; ".join(f.one_line() for f in findings[:5]),
                           "fix the revision, or write `-- why: …` above a `-- squawk-ignore <rule>`")
    return CheckResult("squawk-lint", True, f"upgrade {start}:{BRANCH}@head is squawk-clean (PostgreSQL 15)")


def _apps_compatible(t: Target) -> CheckResult:
    runtime = t.providers.runtime
    branch = {r.id for r in _schema(t).branch(BRANCH)}
    seen, problems = [], []
    for region in t.spec.regions:
        if runtime.api_endpoint(region) is None:
            continue
        health = runtime.api_health(region)
        if not health.ok:
            problems.append(f"{region}: app unhealthy ({health.detail})")
            continue
        app = health.app or {"generation": 1, "breaks_at": None}
        if app.get("breaks_at") in branch:
            problems.append(f"{region}: app v{app.get('generation')} breaks at {app['breaks_at']}, an expand revision")
        seen.append(f"{region} v{app.get('generation')}")
    if problems:
        return CheckResult("apps-compatible", False, "; ".join(problems), "fix or redeploy those apps first")
    return CheckResult("apps-compatible", True, "every running app works with the expanded schema: "
                       + ", ".join(seen))


def _expand_head(t: Target) -> CheckResult:
    schema = _schema(t)
    branch = schema.branch(BRANCH)
    done = applied_upto(branch, schema.applied())
    return CheckResult("expand-head-applied", done == len(branch),
                       f"{done} of {len(branch)} expand revisions applied (head {branch[-1].id})", "resume the phase")


def _claims(t: Target) -> CheckResult:
    missing = _schema(t).handle_claims_missing()
    return CheckResult("handles-claimed", missing == 0, f"{missing} players' handles not held by the authority",
                       "resume the phase (the backfill picks up from its last batch)")


class ExpandSchema:
    """expand-schema: additive revisions one by one, then the lag-throttled handle backfill."""

    name = "expand-schema"
    summary = "Alembic expand revisions one by one (squawk-linted, lock_timeout + retry), then a lag-throttled backfill"
    built = True
    regional = False
    point_of_no_return = None
    runbook = "runbooks/expand-schema.md"

    def preflight(self, target: Target) -> list[Check]:
        return [
            Check("squawk-lint", "the SQL of upgrade <current>:expand@head passes squawk", "fix the revision", _lint),
            Check("apps-compatible", "every region's app works with the expanded schema", "redeploy", _apps_compatible),
        ]  # replication lag is not a preflight refusal: every step waits for it (a resume mid-lag goes on)

    def steps(self, target: Target) -> list:
        # from the migrations the app ships, so a plan lists them before anything is connected
        return [ApplyRevision(r) for r in branch_revisions(BRANCH)] + [BackfillHandleClaims()]

    def verify(self, target: Target) -> list[Check]:
        return [Check("expand-head-applied", "expand@head is applied on the writer", "resume", _expand_head),
                Check("handles-claimed", "every player's handle is held by the authority", "resume", _claims)]

    def rollback_summary(self, target: Target) -> list[str]:
        return ["alembic downgrade each expand revision, last first, to the baseline (handle_claims and its "
                "backfilled rows go with e004)"]


PHASE: Phase = ExpandSchema()
