"""What expand-schema and contract-schema share: applying one Alembic revision of a branch as a step,
waiting (journaled, live) while a secondary lags over the budget, squawk over the exact SQL a branch
still has to run, and each region's app generation against the branch's revisions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from migrate.errors import ProviderError, StepFailed, VerifyFailed
from migrate.phasekit.checks import lag_within_budget
from migrate.phasekit.model import CheckResult, StepContext, Target
from migrate.providers.protocols import SchemaRevision, SchemaStore
from migrate.providers.sql_lint import lint_sql

BASELINE = "0001_baseline"
BRANCHES = ("expand", "contract")


def schema_of(target: Target) -> SchemaStore:
    """The environment's schema adapter; a one-line refusal where there is none yet."""
    schema = target.providers.schema
    if schema is None:
        raise ProviderError(f"the {target.env.name} environment names no database credentials for the schema",
                            hint=f"set database_secret_id (a Secrets Manager secret holding the Aurora "
                                 f"credentials as RDS JSON) in [environments.{target.env.name}.aws]; "
                                 f"runbooks/{target.phase}.md")
    return schema


def applied_upto(branch: list[SchemaRevision], applied: set[str]) -> int:
    """How many of the branch's revisions (root first) the database holds: a revision is applied when it
    or one after it on the branch is in alembic_version."""
    ids = [r.id for r in branch]
    positions = [ids.index(rev) for rev in applied if rev in ids]
    return max(positions) + 1 if positions else 0


def reached(schema: SchemaStore) -> set[str]:
    """Every revision the writer holds: those in alembic_version and all they imply (the revisions they
    revise and depend on). A database at c001 alone holds all of expand, which c001 depends on."""
    known = {r.id: r for name in BRANCHES for r in schema.branch(name)}
    seen, todo = set(), list(schema.applied())
    while todo:
        rev = todo.pop()
        if rev in seen:
            continue
        seen.add(rev)
        if rev in known:
            todo += [known[rev].revises, *known[rev].depends_on]
    return seen


def current_start(applied: set[str]) -> str:
    """Where `alembic upgrade <start>:<target> --sql` starts for this database: every revision it is at
    (a database on two branches is at both; starting from one would show the other's SQL again)."""
    return ",".join(sorted(applied)) or BASELINE


def revision_sql(sql: str, revision_id: str) -> str:
    """From offline upgrade SQL, the session settings before the first revision and the block of
    `revision_id` alone (Alembic marks each with `-- Running upgrade A -> B`)."""
    marker = "-- Running upgrade "
    preamble = sql.split("BEGIN;", 1)[0]
    blocks = sql.split(marker)[1:]
    mine = [b.rstrip().removesuffix("BEGIN;") for b in blocks if b.split("\n", 1)[0].endswith(f"-> {revision_id}")]
    return preamble + "BEGIN;\n\n" + "".join(marker + b for b in mine)


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


@dataclass(frozen=True)
class ApplyRevision:
    """One revision of `branch`: upgrade to it once every secondary is within the lag budget (lock
    timeout set by the app's env.py; a lock wait that gives up is a transient error the runner
    retries with backoff); undo downgrades to the one before it."""

    revision: SchemaRevision
    branch: str

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
        schema = schema_of(target)
        sql = revision_sql(schema.upgrade_sql(current_start(schema.applied()), self.revision.id), self.revision.id)
        findings = lint_sql(sql)
        statements = [line for line in sql.splitlines() if line.strip() and not line.startswith("--")]
        return statements + (["squawk: clean"] if not findings else [f"squawk: {f.one_line()}" for f in findings])

    def _position(self, schema: SchemaStore) -> tuple[int, int]:
        """(this revision's index on the branch, how many of the branch's revisions `schema` holds)."""
        branch = schema.branch(self.branch)
        return [r.id for r in branch].index(self.revision.id), applied_upto(branch, reached(schema))

    def _needed_by(self, target: Target) -> list[str]:
        """Applied revisions of other branches that depend on any revision of this branch: a rollback (last
        revision first) would stop at that one half way, so it is refused at its first undo, changing nothing."""
        schema = schema_of(target)
        ours, holds = {r.id for r in schema.branch(self.branch)}, reached(schema)
        return [r.id for name in BRANCHES if name != self.branch for r in schema.branch(name)
                if r.id in holds and ours.intersection(r.depends_on)]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        changed = []
        for name, schema in writers(ctx.target, self.branch):
            mine, done = self._position(schema)
            if done > mine:
                continue
            wait_for_secondaries(ctx, f"before {self.revision.id} on {name}")
            started = time.monotonic()
            schema.upgrade(self.revision.id)
            changed.append({"writer": name, "seconds": round(time.monotonic() - started, 3)})
            ctx.checkpoint()  # applied on this writer, not journaled yet: a real crash point
        ctx.checkpoint()
        return {"revision": self.revision.id, "applied_on": changed} if changed else {
            "revision": self.revision.id, "already_applied": True}

    def verify(self, ctx: StepContext) -> None:
        missing = [name for name, schema in writers(ctx.target, self.branch)
                   if self._position(schema)[1] <= self._position(schema)[0]]
        if missing:
            raise VerifyFailed(f"{self.revision.id} is not applied on {', '.join(missing)}")

    def undo(self, ctx: StepContext) -> None:
        needing = self._needed_by(ctx.target)
        if needing:
            raise StepFailed(f"cannot undo {self.revision.id}: {', '.join(needing)} (another branch) is applied and "
                             f"depends on it; downgrading it would silently take that with it",
                             where=ctx.target.phase, hint="contract-schema is never rolled back; see its runbook")
        homes = schema_of(ctx.target).home_writers()
        if self.branch == "expand" and homes:
            raise StepFailed(f"cannot undo {self.revision.id}: {', '.join(homes)} write their homes (cutover), and "
                             f"the expand schema holds their fence and home epochs", where=ctx.target.phase,
                             hint="roll those cutovers back first (`migrate phase rollback cutover --region R`)")
        for name, schema in reversed(writers(ctx.target, self.branch)):
            mine, done = self._position(schema)
            if done > mine + 1:
                raise StepFailed(f"cannot undo {self.revision.id} on {name}: {done} revisions of the {self.branch} "
                                 f"branch are applied, a later one is still in place", where=ctx.target.phase,
                                 hint="roll back the whole phase (it undoes the revisions last first)")
            if done == mine + 1:
                schema.downgrade(self.revision.revises)
            ctx.checkpoint()


def writers(t: Target, branch: str) -> list[tuple[str, SchemaStore]]:
    """Every writer of players' rows, as (name, its schema), in the order `branch` changes them. Logical
    replication carries no DDL and the home writers publish to the origin (the reverse streams): what
    expand adds reaches the subscriber (the origin) first, what contract drops leaves the publishers
    (the home writers) first, so no stream ever carries a column its subscriber lacks."""
    schema = schema_of(t)
    homes = [(f"{r}'s home writer", schema.at_home_writer(r)) for r in schema.home_writers()]
    origin = [("the origin", schema)]
    return origin + homes if branch == "expand" else homes + origin


def squawk_check(t: Target, branch_name: str) -> CheckResult:
    """squawk over the exact SQL `alembic upgrade <last applied>:<branch>@head --sql` would run."""
    schema = schema_of(t)
    branch = schema.branch(branch_name)
    if applied_upto(branch, reached(schema)) == len(branch):
        return CheckResult("squawk-lint", True, f"{branch_name}@head ({branch[-1].id}) is applied: no SQL left to run")
    start = current_start(schema.applied())
    findings = lint_sql(schema.upgrade_sql(start, f"{branch_name}@head"))
    if findings:
        return CheckResult("squawk-lint", False, f"{len(findings)} finding(s) in upgrade {start}:{branch_name}@head: "
                           + "; ".join(f.one_line() for f in findings[:5]),
                           "fix the revision, or write `-- why: …` above a `-- squawk-ignore <rule>`")
    return CheckResult("squawk-lint", True, f"upgrade {start}:{branch_name}@head is squawk-clean (PostgreSQL 15)")


def branch_applied_check(t: Target, check_id: str, branch_name: str) -> CheckResult:
    """Every revision of the branch is applied on every writer (the origin, and each home writer)."""
    counts = []
    short = []
    for name, schema in writers(t, branch_name):
        branch = schema.branch(branch_name)
        done = applied_upto(branch, reached(schema))
        counts.append(f"{name} {done}/{len(branch)}")
        if done != len(branch):
            short.append(name)
    head = schema_of(t).branch(branch_name)[-1].id
    return CheckResult(check_id, not short, f"{branch_name} revisions applied (head {head}): " + ", ".join(counts),
                       "resume the phase")


def apps_breaking_at(t: Target, branch_name: str) -> tuple[list[str], list[str], list[str]]:
    """(regions whose app breaks at a revision of the branch, with why; every region's app as seen;
    regions whose app could not be asked, with why). A region with no app running is not counted."""
    runtime = t.providers.runtime
    revisions = {r.id for r in schema_of(t).branch(branch_name)}
    breaking, seen, unknown = [], [], []
    for region in t.spec.regions:
        if runtime.api_endpoint(region) is None:
            continue
        health = runtime.api_health(region)
        if not health.ok:
            unknown.append(f"{region}: app unhealthy ({health.detail})")
            continue
        app = health.app or {"generation": 1, "breaks_at": None}
        if app.get("breaks_at") in revisions:
            breaking.append(f"{region} runs app v{app.get('generation')}, which breaks at {app['breaks_at']}")
        seen.append(f"{region} v{app.get('generation')}")
    return breaking, seen, unknown
