"""Every error the project raises on purpose. Each carries a stable code and the fields an
operator needs; the CLI renders them as one line (plus a hint) and exits non-zero."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MigrateError(Exception):
    """Base of every expected failure: `code` is stable across releases, `message` is one line."""

    message: str
    hint: str | None = None
    where: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    code = "MIGRATE_ERROR"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def one_line(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "where": self.where,
                "hint": self.hint, "details": self.details}


class SpecError(MigrateError):
    """The plan spec (migration.toml) is unreadable or invalid; nothing was written."""

    code = "SPEC_INVALID"


class UsageError(MigrateError):
    """A command-line argument names something that does not exist or is out of range."""

    code = "USAGE"


class UnknownPhase(UsageError):
    code = "UNKNOWN_PHASE"


class UnknownRegion(UsageError):
    code = "UNKNOWN_REGION"


class PhaseNotBuilt(MigrateError):
    """The phase is in the programme but its implementation has not been built yet."""

    code = "PHASE_NOT_BUILT"


class LockHeld(MigrateError):
    """Another mutating run holds the environment's lock."""

    code = "LOCK_HELD"


class LockLost(MigrateError):
    """This run's lease expired or was broken with `unlock --force` while it ran."""

    code = "LOCK_LOST"


class LockNotFound(MigrateError):
    code = "LOCK_NOT_FOUND"


class StalePlan(MigrateError):
    """A saved plan was made from a journal state that has since moved."""

    code = "PLAN_STALE"


class PlanFileError(MigrateError):
    code = "PLAN_FILE_INVALID"


class PreflightFailed(MigrateError):
    """One or more read-only preflight checks failed; no step ran."""

    code = "PREFLIGHT_FAILED"


class StepFailed(MigrateError):
    """A step's apply or verify failed; the journal holds where it stopped."""

    code = "STEP_FAILED"


class VerifyFailed(MigrateError):
    """A postcondition does not hold."""

    code = "VERIFY_FAILED"


class PointOfNoReturn(MigrateError):
    """Rollback is refused because the phase passed its point of no return."""

    code = "POINT_OF_NO_RETURN"


class Aborted(MigrateError):
    """An operator asked for abort; the run stopped at its next checkpoint."""

    code = "ABORTED"


class NothingRunning(MigrateError):
    code = "NOTHING_RUNNING"


class StateStoreError(MigrateError):
    """The journal or lock backend could not be reached or is inconsistent."""

    code = "STATE_STORE"


class ProviderError(MigrateError):
    """An external system (AWS, PostgreSQL, a lab process) refused or failed a request."""

    code = "PROVIDER"


class TransientProviderError(ProviderError):
    """A provider failure worth retrying (throttling, a connection reset, a timeout)."""

    code = "PROVIDER_TRANSIENT"


class LabError(MigrateError):
    """The local lab could not be built, started or inspected."""

    code = "LAB"
