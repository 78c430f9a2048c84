"""The one runner that executes phases: forward (apply) and backward (rollback).

Every step is journaled before and after it runs, so a crash anywhere resumes: steps recorded as
applied are skipped, the step in flight is applied again (steps are idempotent), and a rollback
undoes every step that was touched, in reverse, itself journaled and resumable."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from migrate.engine import faults, journal
from migrate.engine.controls import RunControls
from migrate.phasekit.model import CheckResult, Phase, Step, Target
from migrate.engine.reporting import Reporter
from migrate.engine.retry import call_with_retries
from migrate.engine.state.protocol import StateStore
from migrate.errors import (Aborted, MigrateError, PointOfNoReturn, PreflightFailed, StepFailed,
                            VerifyFailed)


@dataclass
class RunOutcome:
    """What a run did, for the renderer and the JSON envelope."""

    action: str  # "apply" or "rollback"
    phase: str
    region: str | None
    run_id: str
    status: str  # succeeded, already-done, rolled-back, nothing-to-roll-back, aborted
    steps: list[dict[str, Any]] = field(default_factory=list)  # {id, title, result}
    preflight: list[CheckResult] = field(default_factory=list)
    verify: list[CheckResult] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # step id → outputs
    duration_s: float = 0.0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "phase": self.phase, "region": self.region,
                "run_id": self.run_id, "status": self.status, "steps": self.steps,
                "preflight": [c.to_json() for c in self.preflight],
                "verify": [c.to_json() for c in self.verify], "outputs": self.outputs,
                "duration_s": round(self.duration_s, 3), "note": self.note}


class _Ctx:
    """StepContext handed to one step for one attempt."""

    def __init__(self, runner: "Runner", step: Step, undoing: bool) -> None:
        self._runner, self._step, self._undoing = runner, step, undoing
        self.target = runner.target

    def checkpoint(self) -> None:
        faults.maybe_die("undo-inside" if self._undoing else "inside", self._step.id)
        self._runner.controls.checkpoint()

    def progress(self, done: int, total: int | None, note: str = "") -> None:
        self._runner.reporter.step_progress(self._step.id, done, total, note)

    def save(self, **values: Any) -> None:
        self._runner.journal(journal.STEP_PROGRESS, step=self._step.id, data=values)
        self.target.state.step(self._step.id).progress.update(values)

    @property
    def saved(self) -> dict[str, Any]:
        return dict(self.target.state.step(self._step.id).progress)

    def outputs_of(self, step_id: str) -> dict[str, Any]:
        return dict(self.target.state.step(step_id).outputs)

    def record_gate(self, result: dict[str, Any]) -> None:
        self._runner.journal(journal.GATE, step=None, data={"step": self._step.id, **result})
        self.target.state.gates.append({"step": self._step.id, **result})

    def hold_for_human(self, reason: str) -> None:
        self._runner.controls.hold_for_human(reason)


class Runner:
    """Runs one phase in one region under an already-held lock (or none, for in-memory tests)."""

    def __init__(self, store: StateStore, phase: Phase, target: Target, controls: RunControls,
                 reporter: Reporter, actor: str, run_id: str | None = None,
                 retry_attempts: int = 5) -> None:
        self.store, self.phase, self.target = store, phase, target
        self.controls, self.reporter, self.actor = controls, reporter, actor
        self.run_id = run_id or controls.run_id or uuid.uuid4().hex
        self.retry_attempts = retry_attempts
        controls.announce = lambda kind, data: self.journal(kind, data=data)

    # --- journaling -------------------------------------------------------------------------
    def journal(self, kind: str, *, step: str | None = None, data: dict | None = None) -> None:
        self.store.append(self.target.env.name, kind, phase=self.phase.name,
                          region=self.target.region, step=step, run_id=self.run_id,
                          actor=self.actor, data=data or {})

    def _retrying(self, fn):
        return call_with_retries(fn, attempts=self.retry_attempts, on_retry=self.reporter.note)

    # --- forward ----------------------------------------------------------------------------
    def apply(self) -> RunOutcome:
        started = time.monotonic()
        state = self.target.state
        steps = self.phase.steps(self.target)
        outcome = RunOutcome("apply", self.phase.name, self.target.region, self.run_id, "succeeded")
        resumed = any(state.step(s.id).touched for s in steps)
        if state.status == "succeeded" and all(state.step(s.id).status == journal.APPLIED for s in steps):
            outcome.status = "already-done"
            outcome.verify = self._verify_phase(journal_it=False)
            outcome.steps = [{"id": s.id, "title": s.title, "result": "skipped"} for s in steps]
            outcome.note = "every step is already applied; nothing to do"
            outcome.duration_s = time.monotonic() - started
            return outcome

        if journal.begins_attempt(state):
            state.started_at = datetime.now(timezone.utc)  # as the fold will read the RUN_STARTED below
        self.journal(journal.RUN_STARTED, data={"resumed": resumed, "action": "apply"})
        try:
            outcome.preflight = self._preflight()
            for step in steps:
                outcome.steps.append(self._apply_step(step))
            outcome.verify = self._verify_phase(journal_it=True)
            failed = [c for c in outcome.verify if c.ok is not True]
            if failed:
                raise VerifyFailed(f"phase verification failed: {failed[0].check_id}: {failed[0].detail}",
                                   hint=failed[0].remediation)
        except Aborted as exc:
            self.journal(journal.RUN_ABORTED, data={"reason": exc.message})
            self.reporter.note("abort requested: rolling back what this phase changed")
            rollback = self.rollback(already_started=True)
            outcome.status, outcome.steps = "aborted", outcome.steps + rollback.steps
            outcome.note = "aborted by operator; rollback completed"
            outcome.duration_s = time.monotonic() - started
            return outcome
        except MigrateError as exc:
            self.journal(journal.RUN_FAILED, data={"error": exc.one_line(), "code": exc.code})
            raise
        outcome.outputs = {s.id: self.target.state.step(s.id).outputs for s in steps}
        self.journal(journal.RUN_SUCCEEDED)
        outcome.duration_s = time.monotonic() - started
        return outcome

    def _preflight(self) -> list[CheckResult]:
        results = [check.run(self.target) for check in self.phase.preflight(self.target)]
        self.journal(journal.PREFLIGHT, data={"results": [r.to_json() for r in results]})
        self.reporter.checks("preflight", results)
        failed = [r for r in results if r.ok is not True]
        if failed:
            first = failed[0]
            raise PreflightFailed(
                f"preflight failed: {first.check_id}: {first.detail}"
                + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
                hint=first.remediation, details={"failed": [r.to_json() for r in failed]})
        return results

    def _apply_step(self, step: Step) -> dict[str, Any]:
        st = self.target.state.step(step.id)
        if st.status == journal.APPLIED:
            self.reporter.step_finished(step.id, "skipped")
            return {"id": step.id, "title": step.title, "result": "skipped"}
        self.controls.checkpoint(force_poll=True)
        self.reporter.step_started(step.id, step.title, "apply")
        self.journal(journal.STEP_STARTED, step=step.id, data={"title": step.title})
        st.status = journal.APPLYING
        faults.maybe_die("before", step.id)
        ctx = _Ctx(self, step, undoing=False)
        try:
            outputs = self._retrying(lambda: step.apply(ctx)) or {}
            st.outputs = dict(outputs)  # verify may read its own outputs
            step.verify(ctx)
        except (Aborted, KeyboardInterrupt):
            raise
        except MigrateError as exc:
            self.journal(journal.STEP_FAILED, step=step.id, data={"error": exc.one_line(), "code": exc.code})
            st.status = journal.FAILED
            self.reporter.step_finished(step.id, "failed")
            raise StepFailed(f"step {step.id} failed: {exc.one_line()}",
                             hint=exc.hint or f"fix the cause, then re-run to resume from {step.id}, "
                                              f"or roll back with `migrate phase rollback {self.phase.name}"
                                              + (f" --region {self.target.region}`" if self.target.region else "`"),
                             details={"step": step.id, "run_id": self.run_id, "cause": exc.to_json()}) from exc
        faults.maybe_die("after", step.id)
        self.journal(journal.STEP_SUCCEEDED, step=step.id, data={"outputs": outputs})
        st.status = journal.APPLIED
        self.reporter.step_finished(step.id, "applied")
        return {"id": step.id, "title": step.title, "result": "applied"}

    def _verify_phase(self, journal_it: bool) -> list[CheckResult]:
        results = [check.run(self.target) for check in self.phase.verify(self.target)]
        if journal_it:
            self.journal(journal.VERIFY, data={"results": [r.to_json() for r in results]})
        self.reporter.checks("verify", results)
        return results

    # --- backward ---------------------------------------------------------------------------
    def rollback(self, already_started: bool = False) -> RunOutcome:
        """Undo every touched step in reverse order; refuses past a point of no return."""
        started = time.monotonic()
        state = self.target.state
        steps = self.phase.steps(self.target)
        outcome = RunOutcome("rollback", self.phase.name, self.target.region, self.run_id, "rolled-back")
        ponr = self.phase.point_of_no_return
        if ponr and state.step(ponr).touched:
            raise PointOfNoReturn(
                f"{self.phase.name} passed its point of no return ({ponr}); the tool will not roll it back",
                hint=f"follow the runbook {self.phase.runbook}")
        to_undo = [s for s in reversed(steps) if state.step(s.id).touched]
        if not to_undo:
            outcome.status = "nothing-to-roll-back"
            outcome.note = "no step of this phase has been applied; nothing to undo"
            outcome.steps = [{"id": s.id, "title": s.title, "result": "not-touched"} for s in reversed(steps)]
            outcome.duration_s = time.monotonic() - started
            return outcome
        # Once undo has begun, an abort must not stop it halfway: that would leave things worse.
        self.controls.honour_abort = False
        self.journal(journal.ROLLBACK_STARTED, data={"steps": [s.id for s in to_undo],
                                                     "after_abort": already_started})
        try:
            for step in reversed(steps):
                if step in to_undo:
                    outcome.steps.append(self._undo_step(step))
                else:
                    outcome.steps.append({"id": step.id, "title": step.title, "result": "not-touched"})
        except MigrateError as exc:
            self.journal(journal.ROLLBACK_FAILED, data={"error": exc.one_line(), "code": exc.code})
            raise
        self.journal(journal.ROLLBACK_SUCCEEDED)
        outcome.duration_s = time.monotonic() - started
        return outcome

    def _undo_step(self, step: Step) -> dict[str, Any]:
        st = self.target.state.step(step.id)
        self.reporter.step_started(step.id, step.title, "undo")
        self.journal(journal.UNDO_STARTED, step=step.id)
        st.status = journal.UNDOING
        faults.maybe_die("undo-before", step.id)
        ctx = _Ctx(self, step, undoing=True)
        try:
            self._retrying(lambda: step.undo(ctx))
        except MigrateError as exc:
            self.journal(journal.UNDO_FAILED, step=step.id, data={"error": exc.one_line(), "code": exc.code})
            self.reporter.step_finished(step.id, "failed")
            raise StepFailed(f"undo of step {step.id} failed: {exc.one_line()}",
                             hint=exc.hint or "fix the cause and run the rollback again: it resumes here",
                             details={"step": step.id, "run_id": self.run_id}) from exc
        faults.maybe_die("undo-after", step.id)
        self.journal(journal.UNDO_SUCCEEDED, step=step.id)
        st.status, st.outputs, st.progress = journal.UNDONE, {}, {}
        self.reporter.step_finished(step.id, "undone")
        return {"id": step.id, "title": step.title, "result": "undone"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
