"""Phase contract-schema (global): drop what only the old app (v1) needed, once no region runs it
(DESIGN §5). The point of no return of the programme's schema work.

Steps: one per revision of the Alembic `contract` branch (app/migrations/contract), each applied once
every secondary is within the lag budget and journaled, exactly as expand-schema applies its own
(migrate/phasekit/schema_steps.py). Today the branch drops expand's handle-claims sync trigger
(c001): v2 apps claim handles at the authority themselves.

Preflight refuses unless expand-schema (its backfill included) is recorded as succeeded in the journal
and holds on the writer (expand@head applied, every player's handle claimed), and unless no region
runs an app that a contract revision breaks (`/health` names each app's generation and the first
revision it cannot survive; the refusal names the regions still on v1); and squawk passes over the
exact SQL `upgrade <current>:contract@head` would run.

Rollback is refused once the first revision that removes anything has been started: what it drops
(a v1 app's safety net) cannot be put back by the tool while v2 apps write without it. The runbook
(runbooks/contract-schema.md) gives the restore path.

Every writer is changed: the origin and each region's promoted home writer (logical replication
carries no DDL), the home writers first (a column contract drops leaves the reverse streams'
publishers before their subscriber, migrate/phasekit/schema_steps.writers).

Last, `prune-foreign-rows`: each home writer still holds the copy of every other home's rows it was
staged with, stale since its cutover (fenced, never read). Once every cutover has run `soak_seconds`
(preflight), they are deleted in keyset batches, each journaled (resumable from the last id), paused
while a secondary lags. The origin keeps its copy of every cut-over home: it is both the cutover's way
back (the reverse stream) and what the other regions read that home from, until the new shard has its
own secondaries there (issue 11)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from migrate.errors import VerifyFailed
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.phasekit.players_gate import WatchPlayers
from migrate.phasekit.schema_steps import (ApplyRevision, apps_breaking_at, branch_applied_check, schema_of,
                                           squawk_check, wait_for_secondaries)
from migrate.providers.schema_source import branch_revisions

BRANCH = "contract"
EXPAND_PHASE, BACKFILL_STEP = "expand-schema", "backfill-handle-claims"
PRUNE_BATCH = 5000  # rows looked at per batch (a few ms of deletes on a home writer)


def _first_removal() -> str:
    """The first revision after the branch's (empty) root: from there on nothing is rolled back."""
    revisions = branch_revisions(BRANCH)
    return revisions[1].id if len(revisions) > 1 else revisions[0].id


def _expand_recorded(t: Target) -> CheckResult:
    """expand-schema succeeded in the journal, its backfill applied, and the writer still shows it."""
    journal = getattr(t, "journal", None)
    if journal is None:
        return CheckResult("expand-recorded", None, "cannot read expand-schema's state: this target carries no "
                           "journal", "the engine must pass the journal state to targets (Target.journal)")
    expand = journal.phase(EXPAND_PHASE, None)
    if expand.status != "succeeded" or expand.step(BACKFILL_STEP).status != "applied":
        return CheckResult("expand-recorded", False,
                           f"expand-schema is {expand.status} (backfill {expand.step(BACKFILL_STEP).status}) in "
                           f"the journal", "run `migrate phase run expand-schema` to the end first")
    head = branch_applied_check(t, "expand-recorded", "expand")
    if not head.ok:
        return CheckResult("expand-recorded", False, f"the journal says expand-schema succeeded but the writer "
                           f"disagrees: {head.detail}", "find out who downgraded it; re-run expand-schema")
    missing = schema_of(t).handle_claims_missing()
    return CheckResult("expand-recorded", missing == 0,
                       f"expand-schema succeeded (journal) and holds on the writer; {missing} handles unclaimed",
                       "re-run expand-schema's backfill (roll the phase back and run it again)")


def _apps_on_v2(t: Target) -> CheckResult:
    breaking, seen, unknown = apps_breaking_at(t, BRANCH)
    if breaking:
        return CheckResult("apps-past-v1", False, "; ".join(breaking + unknown),
                           "deploy app v2 to those regions first (`migrate lab deploy --region R "
                           "--app-generation 2` in the lab; the ECS service's task definition on AWS)")
    if unknown:
        return CheckResult("apps-past-v1", None, "; ".join(unknown),
                           "an app that cannot say its generation may be v1: bring it back first")
    if not seen:
        return CheckResult("apps-past-v1", None, "no region's app answers", "start the apps first")
    return CheckResult("apps-past-v1", True, "no running app needs what contract drops: " + ", ".join(seen))


def _claims(t: Target) -> CheckResult:
    missing = schema_of(t).handle_claims_missing()
    return CheckResult("handles-claimed", missing == 0, f"{missing} players' handles not held by the authority",
                       "the apps claim handles themselves now: find the writer that bypassed them")


@dataclass(frozen=True)
class PruneForeignRows:
    id: str = "prune-foreign-rows"
    title: str = "Delete, on each home writer, the rows of other homes (stale copies since its cutover)"

    def describe(self, target: Target) -> list[str]:
        return [f"on each promoted home writer, in batches of {PRUNE_BATCH} ids (journaled, resumable): DELETE the "
                f"rows whose home_region is another home's (the fence's trigger bypassed as replication does; "
                f"the reverse stream's row filter carries none of it), paused while a secondary lags",
                "the origin keeps every home's rows: the cutovers' way back and the other regions' reads"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing: the rows were stale copies (each home's own writer and the origin hold the real ones)"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        schema = schema_of(ctx.target)
        done: dict[str, Any] = dict(ctx.saved.get("pruned") or {})
        for region in schema.home_writers():
            store = schema.at_home_writer(region)
            state = dict(done.get(region) or {"after_id": 0, "deleted": 0, "finished": False})
            started = time.monotonic()
            while not state["finished"]:
                wait_for_secondaries(ctx, f"pruning {region}'s home writer")
                last, deleted = store.prune_foreign_rows(region, int(state["after_id"]), PRUNE_BATCH)
                state = {"after_id": state["after_id"] if last is None else last,
                         "deleted": state["deleted"] + deleted, "finished": last is None}
                done[region] = state
                ctx.save(pruned=done)
                ctx.progress(int(state["deleted"]), None, f"{region}'s home writer: {state['deleted']} rows of other "
                             f"homes deleted, up to id {state['after_id']}")
                ctx.checkpoint()
            done[region] = {**state, "seconds": round(time.monotonic() - started, 3)}
        ctx.checkpoint()
        return {"pruned": done}

    def verify(self, ctx: StepContext) -> None:
        schema = schema_of(ctx.target)
        left = {r: schema.at_home_writer(r).foreign_rows(r) for r in schema.home_writers()}
        if any(left.values()):
            raise VerifyFailed(f"home writers still hold other homes' rows: {left}")

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()


def _cutovers_soaked(t: Target) -> CheckResult:
    journal = getattr(t, "journal", None)
    if journal is None:
        return CheckResult("cutovers-soaked", None, "no journal to read the cutovers from", "")
    soak = float(t.env.timings.soak_seconds)
    now = datetime.now(timezone.utc)
    young, soaked = [], []
    for region in t.spec.target_regions:
        cut = journal.phase("cutover", region)
        if cut.status in ("not-started", "rolled-back"):
            continue
        if cut.status != "succeeded":
            young.append(f"{region}'s cutover is {cut.status}")
            continue
        age = (now - cut.updated_at).total_seconds() if cut.updated_at else 0.0
        (soaked if age >= soak else young).append(f"{region} cut over {age:.0f} s ago")
    return CheckResult("cutovers-soaked", not young,
                       "; ".join(young + soaked) or "no cutover yet: no home writer to prune",
                       f"let every cutover run {soak:g} s (timings.soak_seconds) before its writer's stale rows go")


class ContractSchema:
    """contract-schema: the contract branch's revisions, once no region runs v1; no way back."""

    name = "contract-schema"
    summary = "Alembic contract revisions (what only v1 needed), once expand and its backfill are recorded and no region runs v1"
    built = True
    regional = False
    runbook = "runbooks/contract-schema.md"

    @property
    def point_of_no_return(self) -> str:
        return _first_removal()

    def preflight(self, target: Target) -> list[Check]:
        return [
            Check("expand-recorded", "expand-schema and its backfill succeeded (journal) and hold on the writer",
                  "run expand-schema", _expand_recorded),
            Check("apps-past-v1", "no region runs an app that a contract revision breaks", "deploy v2",
                  _apps_on_v2),
            Check("squawk-lint", "the SQL of upgrade <current>:contract@head passes squawk", "fix the revision",
                  lambda t: squawk_check(t, BRANCH)),
            Check("cutovers-soaked", "every cutover has run timings.soak_seconds (its writer's stale rows go last)",
                  "wait", _cutovers_soaked),
        ]

    def steps(self, target: Target) -> list:
        return [*(ApplyRevision(r, BRANCH) for r in branch_revisions(BRANCH)), PruneForeignRows(), WatchPlayers()]

    def verify(self, target: Target) -> list[Check]:
        return [Check("contract-head-applied", "contract@head is applied on the writer", "resume",
                      lambda t: branch_applied_check(t, "contract-head-applied", BRANCH)),
                Check("handles-claimed", "every player's handle is held by the authority", "investigate", _claims)]

    def rollback_summary(self, target: Target) -> list[str]:
        return [f"none past {_first_removal()}: the point of no return; restore per {self.runbook}"]


PHASE: Phase = ContractSchema()
