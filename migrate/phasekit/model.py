"""The shapes every phase is made of: Target, Check, Step and Phase.

A phase is data: ordered steps with stable ids, read-only checks, and an optional point of no
return. The runner (engine/runner.py) is the only code that executes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from migrate.errors import MigrateError
from migrate.providers.bundle import Providers  # noqa: F401 (phases name the bundle from here too)

if TYPE_CHECKING:
    from migrate.engine.journal import PhaseState
    from migrate.spec import EnvironmentSpec, Spec


@dataclass
class Target:
    """Everything a phase needs to describe, check or act on one region of one environment."""

    spec: "Spec"
    env: "EnvironmentSpec"
    phase: str
    region: str | None  # None for global phases (schema)
    state: "PhaseState"  # the journal's view of this phase in this region, at run start
    providers_source: "Providers | Callable[[], Providers] | None" = None  # None while only describing
    journal: Any = None  # the whole environment's JournalState, for checks on other phases' status

    @property
    def providers(self) -> Providers:
        """The adapters, built on first use (so a no-op rollback never needs the lab or AWS)."""
        if callable(self.providers_source):
            self.providers_source = self.providers_source()
        if self.providers_source is None:
            raise RuntimeError("this target was made for describing only; it has no providers")
        return self.providers_source


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ok True/False, or None when it could not decide (inconclusive)."""

    check_id: str
    ok: bool | None
    detail: str  # the measured value or reason, one line
    remediation: str = ""  # what an operator does when it fails

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check_id, "ok": self.ok, "detail": self.detail,
                "remediation": self.remediation}


@dataclass(frozen=True)
class Check:
    """A read-only check with a fixed id, a description for plans and a remediation hint."""

    id: str
    description: str
    remediation: str
    evaluate: Callable[[Target], CheckResult] = field(compare=False)

    def run(self, target: Target) -> CheckResult:
        """Evaluate; an unexpected exception becomes a failed result naming it, never a crash."""
        try:
            return self.evaluate(target)
        except MigrateError as exc:  # the environment answered with an explained error: pass it on as it is
            return CheckResult(self.id, False, exc.message, exc.hint or self.remediation)
        except Exception as exc:  # noqa: BLE001 — a broken check must report, not crash the run
            return CheckResult(self.id, False, f"check raised {type(exc).__name__}: {exc}",
                               self.remediation)


class StepContext(Protocol):
    """What the runner gives a step while it applies or undoes."""

    target: Target

    def checkpoint(self) -> None:
        """Honour pause/abort requests and fault injection; call it often during long work."""

    def progress(self, done: int, total: int | None, note: str = "") -> None:
        """Report progress for the operator's progress bar (not journaled)."""

    def save(self, **values: Any) -> None:
        """Journal resumable progress; it is in `saved` on the next attempt of this step."""

    @property
    def saved(self) -> dict[str, Any]:
        """Progress journaled by earlier attempts of this step (empty after an undo)."""

    def outputs_of(self, step_id: str) -> dict[str, Any]:
        """Outputs recorded by an earlier step of this phase in this region."""

    def record_gate(self, result: dict[str, Any]) -> None:
        """Journal one gate evaluation ({verdict, values, reason, ...}); shown by `migrate status`."""

    def hold_for_human(self, reason: str) -> None:
        """Pause here (journaled) until `migrate resume` (returns) or `migrate abort` (raises Aborted)."""


class Step(Protocol):
    """One idempotent unit of change with its compensation."""

    id: str  # stable: journaled, used in fault injection, never renamed
    title: str  # one line for humans

    def describe(self, target: Target) -> list[str]:
        """The actions apply would take, for plans; no side effects."""

    def describe_undo(self, target: Target) -> list[str]:
        """The actions undo would take, for plans; no side effects."""

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        """Make the change; safe to repeat after a crash at any point; returns outputs to journal."""

    def verify(self, ctx: StepContext) -> None:
        """Raise VerifyFailed unless the step's postcondition holds; read-only."""

    def undo(self, ctx: StepContext) -> None:
        """Remove what apply made; safe to repeat, and safe when apply never ran or half ran."""


class Rehearsable(Protocol):
    """Optional ability of a step: show what apply would change by asking the provider, without changing it."""

    def rehearse(self, target: Target) -> list[str]:
        """Lines describing the provider's own plan (e.g. `terraform plan`); must not change anything."""


class Phase(Protocol):
    """One phase of the programme."""

    name: str  # one of DESIGN §10
    summary: str  # one line
    built: bool  # False: in the catalogue, not implemented yet
    regional: bool  # True when it runs once per target region
    point_of_no_return: str | None  # step id after which rollback is refused
    runbook: str  # path of the runbook an operator follows when the tool cannot

    def preflight(self, target: Target) -> list[Check]:
        """Read-only checks that must pass before any step runs."""

    def steps(self, target: Target) -> list[Step]:
        """Ordered steps; ids stable across releases."""

    def verify(self, target: Target) -> list[Check]:
        """Read-only checks of the phase's end state."""

    def rollback_summary(self, target: Target) -> list[str]:
        """What rollback does, for plans."""
