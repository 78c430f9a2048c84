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

Not here yet: deleting, after the cutovers have soaked, the rows each home shard no longer owns. The
origin's copy of a cut-over home is, until then, both the cutover's way back (the reverse stream) and
what the other regions read that home from; it can go only once the new shard has its own
secondaries in those regions (issue 11)."""

from __future__ import annotations

from migrate.phasekit.model import Check, CheckResult, Phase, Target
from migrate.phasekit.schema_steps import (ApplyRevision, apps_breaking_at, branch_applied_check, schema_of,
                                           squawk_check)
from migrate.providers.schema_source import branch_revisions

BRANCH = "contract"
EXPAND_PHASE, BACKFILL_STEP = "expand-schema", "backfill-handle-claims"


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
        ]

    def steps(self, target: Target) -> list:
        return [ApplyRevision(r, BRANCH) for r in branch_revisions(BRANCH)]

    def verify(self, target: Target) -> list[Check]:
        return [Check("contract-head-applied", "contract@head is applied on the writer", "resume",
                      lambda t: branch_applied_check(t, "contract-head-applied", BRANCH)),
                Check("handles-claimed", "every player's handle is held by the authority", "investigate", _claims)]

    def rollback_summary(self, target: Target) -> list[str]:
        return [f"none past {_first_removal()}: the point of no return; restore per {self.runbook}"]


PHASE: Phase = ContractSchema()
