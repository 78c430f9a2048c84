"""Journal event kinds and the fold that turns the journal into current state.

State is never stored separately: it is always `fold(events)`, so a crash at any point leaves a
journal from which the next run knows exactly which steps are done and which one was in flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from migrate.engine.state.protocol import Event

RUN_STARTED = "run_started"
PREFLIGHT = "preflight"
STEP_STARTED = "step_started"
STEP_PROGRESS = "step_progress"
STEP_SUCCEEDED = "step_succeeded"
STEP_FAILED = "step_failed"
VERIFY = "verify"
RUN_SUCCEEDED = "run_succeeded"
RUN_FAILED = "run_failed"
RUN_ABORTED = "run_aborted"
ROLLBACK_STARTED = "rollback_started"
UNDO_STARTED = "undo_started"
UNDO_SUCCEEDED = "undo_succeeded"
UNDO_FAILED = "undo_failed"
ROLLBACK_SUCCEEDED = "rollback_succeeded"
ROLLBACK_FAILED = "rollback_failed"
OPERATOR_REQUEST = "operator_request"
LOCK_BROKEN = "lock_broken"
RUN_PAUSED = "run_paused"  # the running phase acknowledged a pause request
RUN_RESUMED = "run_resumed"
BASELINE = "baseline"  # the players' p95 per geography before the programme changed anything (gates compare to it)
GATE = "gate"  # one gate evaluation: verdict (pass / fail / inconclusive), measured values, reason

# Step statuses
PENDING = "pending"
APPLYING = "applying"  # started, not yet recorded as done: re-applied on resume
APPLIED = "applied"
FAILED = "failed"
UNDOING = "undoing"
UNDONE = "undone"
UNDO_FAILED_STATUS = "undo-failed"


@dataclass
class StepState:
    """What the journal says about one step of one phase in one region."""

    status: str = PENDING
    outputs: dict[str, Any] = field(default_factory=dict)  # from the last successful apply
    progress: dict[str, Any] = field(default_factory=dict)  # saved by the step for resumable work
    error: str | None = None  # message of the last failure
    updated_at: datetime | None = None

    @property
    def touched(self) -> bool:
        """True when apply has at least started since the last completed undo."""
        return self.status not in (PENDING, UNDONE)


@dataclass
class PhaseState:
    """What the journal says about one phase in one region."""

    phase: str
    region: str | None
    status: str = "not-started"  # not-started, running, succeeded, failed, aborted, rolling-back, rolled-back, rollback-failed
    steps: dict[str, StepState] = field(default_factory=dict)
    last_run_id: str | None = None
    last_error: str | None = None
    updated_at: datetime | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None  # when its current attempt first ran (a resume keeps it; a rollback ends it)

    def step(self, step_id: str) -> StepState:
        return self.steps.setdefault(step_id, StepState())


def begins_attempt(ps: PhaseState) -> bool:
    """Whether an apply starting now begins a new attempt of the phase (nothing started yet, or the last
    one rolled back or finished), rather than resuming one: its `started_at` is then now."""
    return ps.started_at is None or ps.status in ("rolled-back", "succeeded")


def target_key(phase: str, region: str | None) -> str:
    return f"{phase}@{region}" if region else phase


@dataclass
class JournalState:
    """The fold of a whole environment's journal."""

    serial: int = 0
    phases: dict[str, PhaseState] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None  # the latest recorded baseline: {"p95_ms": {geo: ms}, "window": …}

    def phase(self, phase: str, region: str | None) -> PhaseState:
        key = target_key(phase, region)
        if key not in self.phases:
            self.phases[key] = PhaseState(phase=phase, region=region)
        return self.phases[key]


_RUN_STATUS = {
    RUN_STARTED: "running",
    RUN_SUCCEEDED: "succeeded",
    RUN_FAILED: "failed",
    RUN_ABORTED: "aborted",
    ROLLBACK_STARTED: "rolling-back",
    ROLLBACK_SUCCEEDED: "rolled-back",
    ROLLBACK_FAILED: "rollback-failed",
}
_STEP_STATUS = {
    STEP_STARTED: APPLYING,
    STEP_SUCCEEDED: APPLIED,
    STEP_FAILED: FAILED,
    UNDO_STARTED: UNDOING,
    UNDO_SUCCEEDED: UNDONE,
    UNDO_FAILED: UNDO_FAILED_STATUS,
}


def fold(events: Iterable[Event]) -> JournalState:
    """Replay events in serial order into the current state."""
    state = JournalState()
    for ev in events:
        state.serial = max(state.serial, ev.serial)
        if ev.kind == BASELINE:
            state.baseline = dict(ev.data)
        if ev.phase is None:
            continue
        ps = state.phase(ev.phase, ev.region)
        ps.updated_at = ev.at
        if ev.kind == RUN_STARTED and begins_attempt(ps):
            ps.started_at = ev.at
        if ev.kind in _RUN_STATUS:
            ps.status = _RUN_STATUS[ev.kind]
            ps.last_run_id = ev.run_id or ps.last_run_id
            if ev.kind in (RUN_FAILED, ROLLBACK_FAILED, RUN_ABORTED):
                ps.last_error = ev.data.get("error") or ev.data.get("reason")
            elif ev.kind in (RUN_STARTED, ROLLBACK_STARTED):
                ps.last_error = None
        if ev.step is None:
            if ev.kind == GATE:
                ps.gates.append(ev.data)
            continue
        st = ps.step(ev.step)
        st.updated_at = ev.at
        if ev.kind == STEP_PROGRESS:
            st.progress.update(ev.data)
        elif ev.kind in _STEP_STATUS:
            st.status = _STEP_STATUS[ev.kind]
            if ev.kind == STEP_SUCCEEDED:
                st.outputs = dict(ev.data.get("outputs", {}))
                st.error = None
            elif ev.kind in (STEP_FAILED, UNDO_FAILED):
                st.error = ev.data.get("error")
            elif ev.kind == UNDO_SUCCEEDED:
                # A completed undo means the next apply starts from scratch.
                st.outputs, st.progress, st.error = {}, {}, None
    return state


def operator_requests(events: Iterable[Event], run_id: str) -> list[str]:
    """Actions (pause / resume / abort) addressed to `run_id`, oldest first."""
    return [ev.data["action"] for ev in events
            if ev.kind == OPERATOR_REQUEST and ev.data.get("run_id") == run_id]
