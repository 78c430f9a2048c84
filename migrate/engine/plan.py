"""The Plan value: a frozen, JSON-serialisable description of what the programme (or one phase)
would do next, stamped with the journal serial and spec digest it was made from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from migrate.engine import journal
from migrate.engine.journal import JournalState
from migrate.phasekit.model import Target
from migrate.errors import PlanFileError, StalePlan

PLAN_FORMAT = "migrate.plan/v1"


@dataclass(frozen=True)
class StepPlan:
    """One step: what apply and undo would do, and its journaled status."""

    id: str
    title: str
    status: str  # journal status: pending, applying, applied, failed, undoing, undone
    actions: tuple[str, ...]
    undo: tuple[str, ...]
    will_run: bool  # True when `phase run` would apply it (not already applied)


@dataclass(frozen=True)
class PhasePlan:
    """One phase in one region as the programme schedules it."""

    quarter: str
    phase: str
    region: str | None
    summary: str
    built: bool
    status: str  # journal status of the phase: not-started, running, succeeded, …
    pending: bool  # True when running it would change something
    preflight: tuple[str, ...]  # "id: description"
    steps: tuple[StepPlan, ...]
    verify: tuple[str, ...]
    rollback: tuple[str, ...]
    point_of_no_return: str | None
    runbook: str


@dataclass(frozen=True)
class Plan:
    """The whole plan; compare `journal_serial` and `spec_digest` before acting on a saved one."""

    format: str
    env: str
    spec_digest: str
    journal_serial: int
    created_at: str  # ISO 8601 UTC
    phases: tuple[PhasePlan, ...]

    @property
    def changes_pending(self) -> bool:
        return any(p.pending for p in self.phases)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["changes_pending"] = self.changes_pending
        return data

    def includes(self, phase: str, region: str | None) -> bool:
        return any(p.phase == phase and p.region == region for p in self.phases)


def phase_plan(phase, target: Target, quarter: str) -> PhasePlan:
    """Describe one phase for one target from the journal state; no side effects."""
    state = target.state
    steps = []
    for step in phase.steps(target):
        st = state.step(step.id)
        steps.append(StepPlan(step.id, step.title, st.status, tuple(step.describe(target)),
                              tuple(step.describe_undo(target)), st.status != journal.APPLIED))
    done = state.status == "succeeded" and not any(s.will_run for s in steps)
    return PhasePlan(
        quarter=quarter, phase=phase.name, region=target.region, summary=phase.summary,
        built=phase.built, status=state.status, pending=not done,
        preflight=tuple(f"{c.id}: {c.description}" for c in phase.preflight(target)),
        steps=tuple(steps),
        verify=tuple(f"{c.id}: {c.description}" for c in phase.verify(target)),
        rollback=tuple(phase.rollback_summary(target)),
        point_of_no_return=phase.point_of_no_return, runbook=phase.runbook)


def build_plan(env: str, spec_digest: str, state: JournalState, phases: list[PhasePlan]) -> Plan:
    return Plan(PLAN_FORMAT, env, spec_digest, state.serial,
                datetime.now(timezone.utc).isoformat(timespec="seconds"), tuple(phases))


def save_plan(plan: Plan, path: Path) -> None:
    """Write the plan as JSON (atomically: a half-written plan file never exists)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(plan.to_json(), indent=2) + "\n")
    tmp.replace(path)


def load_plan(path: Path) -> dict[str, Any]:
    """Read a saved plan; PlanFileError naming the file when it is missing or not a plan."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PlanFileError(f"plan file not found: {path}", hint="make one with `migrate plan --out FILE`") from exc
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}",
                            hint="make a fresh one with `migrate plan --out FILE`") from exc
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise PlanFileError(f"{path}: not a migrate plan (format {data.get('format') if isinstance(data, dict) else None!r}, "
                            f"expected {PLAN_FORMAT!r})", hint="make one with `migrate plan --out FILE`")
    return data


def check_not_stale(saved: dict[str, Any], *, env: str, spec_digest: str, serial: int,
                    phase: str, region: str | None, path: Path) -> None:
    """Refuse a saved plan made for another environment, spec or journal state, or without this phase."""
    if saved.get("env") != env:
        raise StalePlan(f"{path} was made for environment '{saved.get('env')}', not '{env}'",
                        hint="make a new plan with `migrate plan --out FILE` for this environment")
    if saved.get("spec_digest") != spec_digest:
        raise StalePlan(f"{path} is stale: migration.toml changed since the plan was made",
                        hint="review a fresh plan: `migrate plan --out FILE`")
    if saved.get("journal_serial") != serial:
        raise StalePlan(f"{path} is stale: made at journal serial {saved.get('journal_serial')}, "
                        f"the journal is now at {serial}",
                        hint="something ran since the plan was reviewed; review a fresh plan: `migrate plan --out FILE`")
    if not any(p.get("phase") == phase and p.get("region") == region for p in saved.get("phases", [])):
        raise StalePlan(f"{path} does not include {phase}" + (f" in {region}" if region else ""),
                        hint="make a plan that includes it: `migrate plan --phase ... --region ... --out FILE`")
