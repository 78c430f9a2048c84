"""Phases that are in the programme but not built yet. They describe what they will do (so a
reviewer reads the whole programme in `migrate plan`) and refuse to run, saying so plainly."""

from __future__ import annotations

from dataclasses import dataclass

from migrate.phasekit.model import Check, CheckResult, Step, Target
from migrate.errors import PhaseNotBuilt


@dataclass(frozen=True)
class _SketchStep:
    """A step of a phase not built yet: it can be described, never run."""

    id: str
    title: str
    undo_text: str

    def describe(self, target: Target) -> list[str]:
        return [f"(not built yet) {self.title}"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"(not built yet) {self.undo_text}"]

    def apply(self, ctx):
        raise PhaseNotBuilt(f"step {self.id} is not built yet")

    def verify(self, ctx) -> None:
        raise PhaseNotBuilt(f"step {self.id} is not built yet")

    def undo(self, ctx) -> None:
        raise PhaseNotBuilt(f"step {self.id} is not built yet")


def _sketch_check(check_id: str, description: str) -> Check:
    return Check(check_id, description, "not built yet",
                 lambda t: CheckResult(check_id, None, "not built yet"))


@dataclass(frozen=True)
class PlannedPhase:
    """A catalogue entry (DESIGN §5) whose implementation is still to come."""

    name: str
    summary: str
    regional: bool
    sketch_steps: tuple[tuple[str, str, str], ...]  # (id, does, undo)
    sketch_preflight: tuple[str, ...]
    rollback_text: tuple[str, ...]
    point_of_no_return: str | None = None
    built: bool = False

    @property
    def runbook(self) -> str:
        return f"runbooks/{self.name}.md"

    def preflight(self, target: Target) -> list[Check]:
        return [_sketch_check(f"pre-{i}", text) for i, text in enumerate(self.sketch_preflight, 1)]

    def steps(self, target: Target) -> list[Step]:
        return [_SketchStep(i, t, u) for i, t, u in self.sketch_steps]

    def verify(self, target: Target) -> list[Check]:
        return []

    def rollback_summary(self, target: Target) -> list[str]:
        return list(self.rollback_text)

    def not_built_error(self, built: list[str]) -> PhaseNotBuilt:
        """The refusal to run it; `built`: the phases that are (the engine's registry knows)."""
        return PhaseNotBuilt(f"phase '{self.name}' is not built yet: it is planned, not implemented",
                             hint=f"see `migrate plan --phase {self.name}` for what it will do; "
                                  f"built so far: {', '.join(built)}")


PLANNED: dict[str, PlannedPhase] = {}  # every phase of the catalogue is built
