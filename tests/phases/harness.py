"""One lifecycle and crash harness for every phase (DESIGN §7, like pgroll's one harness for every
operation). A phase module declares what its phase looks like from the outside (`PhaseUnderTest`:
how to tell it is applied and that nothing is left, read from the real world, not the journal) and
gets:

- `lifecycle`: apply → verify → rollback → apply → verify, and a run of a finished phase is
  already-done;
- `crash_at_every_point_in_turn`: the `migrate` CLI SIGKILLs itself (MIGRATE_FAULT) before, inside
  and after every step, one run per point, each resuming the last; the next run reaches the same
  verified end and each step ran exactly once more than it died;
- `crash_at_every_undo_point_in_turn`: the same for the rollback, down to nothing left.

Only the run that dies is a subprocess (the process boundary is the point: nothing tidies up after a
SIGKILL); resuming, reading the journal and rolling back happen in-process through the engine's
service functions, as the CLI would call them (each `migrate` start costs ~1.5 s of CPU)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.engine import services
from tests.cli_helpers import migrate
from tests.conftest import SPEC

POINTS = ("before", "inside", "after")
UNDO_POINTS = ("undo-before", "undo-inside", "undo-after")


@dataclass(frozen=True)
class PhaseUnderTest:
    """What the harness needs to know about one phase in one region."""

    name: str  # the phase's name, as on the command line
    region: str | None  # the target region (None for a global phase)
    step_ids: tuple[str, ...]  # every step, in order
    applied: Callable[[Any], None]  # asserts, from the lab's real processes, that the phase is in place
    nothing_left: Callable[[Any], None]  # asserts that no trace of the phase is left
    # step → the checkpoints `inside:` dies at (e.g. "@3": after two chunks were journaled; a tuple for
    # several, each its own run); default the first
    inside_at: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    # steps whose undo passes a checkpoint (undo-inside can only die there; most undos are one call)
    undo_inside: tuple[str, ...] = ()
    # steps also crashed before and after them (None: every step). Elsewhere only inside, which must
    # then stand after the step's action: "after" would repeat that state, and "before" (started, nothing
    # done) is the engine's own resume, the same for every step (tests/engine/test_runner.py). Undo: every
    # step dies after its undo (the undo repeated must be harmless), only these before it.
    boundaries: tuple[str, ...] | None = None
    # steps never crashed: they only read (watch-players skips without a recorded baseline, and no test
    # records one on the crash chains), so a crash there is the engine's own resume of a finished step
    uncrashed: tuple[str, ...] = ("watch-players",)

    def _boundary(self, step: str) -> bool:
        return self.boundaries is None or step in self.boundaries

    def inside_checkpoints(self, step: str) -> tuple[str, ...]:
        """The `@n` suffixes `inside:` dies at for `step` ("" is the first checkpoint)."""
        at = self.inside_at.get(step, "")
        return (at,) if isinstance(at, str) else at

    def crash_faults(self) -> list[tuple[str, str]]:
        """Every (MIGRATE_FAULT, step) a run can die at, in order: before, inside (at each checkpoint
        named) and after each step."""
        return [(f"{point}:{step}{at}", step) for step in self.step_ids if step not in self.uncrashed
                for point in POINTS if point == "inside" or self._boundary(step)
                for at in (self.inside_checkpoints(step) if point == "inside" else ("",))]

    def undo_crash_points(self) -> list[tuple[str, str]]:
        """Every (point, step) a rollback can die at, in the order a rollback reaches them."""
        return [(point, step) for step in reversed(self.step_ids) if step not in self.uncrashed
                for point in UNDO_POINTS
                if (point != "undo-inside" or step in self.undo_inside)
                and (point != "undo-before" or self._boundary(step))]

    def cli_target(self) -> list[str]:
        return [self.name] + (["--region", self.region] if self.region else [])


@contextmanager
def session() -> Iterator[services.Session]:
    """An engine session on the test's spec and journal (MIGRATE_SPEC / MIGRATE_STATE)."""
    opened = services.open_session(Path(os.environ.get("MIGRATE_SPEC", SPEC)), "lab")
    try:
        yield opened
    finally:
        opened.close()


def last_serial() -> int:
    """The serial of the journal's newest event (0 when empty): events after it are the test's own."""
    with session() as s:
        return max((e.serial for e in services.history(s, 0)), default=0)


def journal_kinds(phase: str | None = None, since: int = 0) -> list[tuple[str, str | None]]:
    """(kind, step) of the test's journal events after serial `since` (of `phase` only when named),
    oldest first, read in-process."""
    with session() as s:
        return [(e.kind, e.step) for e in services.history(s, 0)
                if e.serial > since and (phase is None or e.phase == phase)]


def wait_for_event(predicate: Callable[[Any], bool], what: str, timeout: float = 120.0) -> Any:
    """The first journal event matching `predicate`, polling the test's journal in-process (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session() as s:
            found = next((e for e in services.history(s, 0) if predicate(e)), None)
        if found is not None:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def lifecycle(phase: PhaseUnderTest, lab) -> None:
    """apply → verify → rollback → apply → verify; then running it again has nothing to do."""
    with session() as s:
        first = services.run_phase(s, phase.name, phase.region)
        assert first.status == "succeeded" and all(c.ok for c in first.verify), first.to_json()
        phase.applied(lab)
        back = services.rollback_phase(s, phase.name, phase.region)
        assert back.status == "rolled-back", back.to_json()
        assert [step["result"] for step in back.steps] == ["undone"] * len(phase.step_ids)
        phase.nothing_left(lab)
        assert services.rollback_phase(s, phase.name, phase.region).status == "nothing-to-roll-back"
        again = services.run_phase(s, phase.name, phase.region)
        assert again.status == "succeeded" and all(c.ok for c in again.verify), again.to_json()
        phase.applied(lab)
        assert services.run_phase(s, phase.name, phase.region).status == "already-done"


def die_at(phase: PhaseUnderTest, fault: str, *command: str) -> None:
    """Run `migrate phase run|rollback …` in a subprocess that SIGKILLs itself at `fault`."""
    killed = migrate("phase", *command, *phase.cli_target(), "--yes", env={"MIGRATE_FAULT": fault})
    assert killed.returncode == -signal.SIGKILL, f"{fault}: exit {killed.returncode}\n{killed.stderr}"


def crash_at_every_point_in_turn(phase: PhaseUnderTest, lab) -> None:
    """One run after another, each dying at the next point (before, inside, after every step, in order) and
    each resuming what the one before it left; an unfaulted run then reaches the same verified end.

    Chained rather than one fresh apply per point: every point is still a resume from exactly that
    state, at a third of the cost (a step is applied once, not once per point before it). A step is
    started by the three runs that die at it and once more by the run that finishes it."""
    since = last_serial()
    faults = phase.crash_faults()
    for fault, _ in faults:
        die_at(phase, fault, "run")
    with session() as s:
        resumed = services.run_phase(s, phase.name, phase.region)
        assert resumed.status == "succeeded" and all(c.ok for c in resumed.verify), resumed.to_json()
    phase.applied(lab)
    events = journal_kinds(phase.name, since)
    assert [k for k, _ in events].count("run_started") == len(faults) + 1, events
    assert events[-1][0] == "run_succeeded", events
    for step in phase.step_ids:
        died = sum(1 for _, at in faults if at == step)
        assert events.count(("step_started", step)) == died + 1, (step, events)


def crash_at_every_undo_point_in_turn(phase: PhaseUnderTest, lab) -> None:
    """Applied; one rollback after another, each dying at the next undo point (before, inside where the
    undo has a checkpoint, after undoing every step, last step first); an unfaulted rollback then leaves
    nothing. Each step's undo is started by the rollbacks that die at it and once more by the one that
    finishes it."""
    with session() as s:
        assert services.run_phase(s, phase.name, phase.region).status in ("succeeded", "already-done")
    since = last_serial()
    points = phase.undo_crash_points()
    for point, step in points:
        die_at(phase, f"{point}:{step}", "rollback")
    with session() as s:
        assert services.rollback_phase(s, phase.name, phase.region).status == "rolled-back"
    phase.nothing_left(lab)
    events = journal_kinds(phase.name, since)
    assert events[-1][0] == "rollback_succeeded", events
    for step in phase.step_ids:
        died = sum(1 for _, at in points if at == step)
        assert events.count(("undo_started", step)) == died + 1, (step, events)
