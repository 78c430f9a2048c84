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

from migrate.errors import VerifyFailed
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.phasekit.schema_steps import (ApplyRevision, apps_breaking_at, branch_applied_check, schema_of,
                                           squawk_check, wait_for_secondaries)
from migrate.phasekit.players_gate import WatchPlayers
from migrate.providers.schema_source import branch_revisions

BRANCH = "expand"
BACKFILL_STEP = "backfill-handle-claims"
BATCH_ROWS = 2000  # one short transaction per batch: a few ms of row locks, a few hundred kB of WAL


# --- steps --------------------------------------------------------------------------------------
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
        schema = schema_of(t)
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
        missing = schema_of(ctx.target).handle_claims_missing()
        if missing:
            raise VerifyFailed(f"{missing} players' handles are not held for them by handle_claims")

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()  # the claims go with the table (e004's downgrade)


# --- checks -------------------------------------------------------------------------------------
def _apps_compatible(t: Target) -> CheckResult:
    breaking, seen, unknown = apps_breaking_at(t, BRANCH)
    if breaking or unknown:
        return CheckResult("apps-compatible", False, "; ".join(breaking + unknown), "fix or redeploy those apps first")
    return CheckResult("apps-compatible", True, "every running app works with the expanded schema: "
                       + ", ".join(seen))


def _claims(t: Target) -> CheckResult:
    missing = schema_of(t).handle_claims_missing()
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
            Check("squawk-lint", "the SQL of upgrade <current>:expand@head passes squawk", "fix the revision",
                  lambda t: squawk_check(t, BRANCH)),
            Check("apps-compatible", "every region's app works with the expanded schema", "redeploy", _apps_compatible),
        ]  # replication lag is not a preflight refusal: every step waits for it (a resume mid-lag goes on)

    def steps(self, target: Target) -> list:
        # from the migrations the app ships, so a plan lists them before anything is connected
        return [ApplyRevision(r, BRANCH) for r in branch_revisions(BRANCH)] + [BackfillHandleClaims(), WatchPlayers()]

    def verify(self, target: Target) -> list[Check]:
        return [Check("expand-head-applied", "expand@head is applied on the writer", "resume",
                      lambda t: branch_applied_check(t, "expand-head-applied", BRANCH)),
                Check("handles-claimed", "every player's handle is held by the authority", "resume", _claims)]

    def rollback_summary(self, target: Target) -> list[str]:
        return ["alembic downgrade each expand revision, last first, to the baseline (handle_claims and its "
                "backfilled rows go with e004)"]


PHASE: Phase = ExpandSchema()
