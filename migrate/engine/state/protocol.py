"""The state store: an append-only journal of events and one lease lock per environment.

Both backends (SQLite file, PostgreSQL) implement `StateStore` and pass one conformance suite
(tests/engine/state/test_conformance.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Event:
    """One journal entry. `serial` is assigned by the store: strictly increasing per environment."""

    serial: int  # 1, 2, 3 … per environment, no gaps on a single writer
    env: str  # environment name from the spec (`lab`, `aws`)
    kind: str  # e.g. step_started, step_succeeded, operator_request (see engine/journal.py)
    phase: str | None  # phase name, or None for environment-wide events
    region: str | None  # target region, or None
    step: str | None  # stable step id, or None
    run_id: str | None  # the run (forward or rollback) that wrote it, or None for operator events
    actor: str  # who: user@host
    at: datetime  # UTC time the store accepted it
    data: dict[str, Any] = field(default_factory=dict)  # outputs, messages; never secrets


@dataclass(frozen=True)
class Lock:
    """A lease on an environment. Valid while `expires_at` is in the future."""

    lock_id: str  # opaque id, shown to operators for `migrate unlock --force LOCK_ID`
    env: str  # environment it guards
    holder: str  # user@host:pid of the holder
    operation: str  # what it is doing, e.g. "phase run attach-secondary --region ap-northeast-1"
    run_id: str  # the run that holds it
    acquired_at: datetime  # UTC
    heartbeat_at: datetime  # UTC, refreshed by `heartbeat`
    expires_at: datetime  # UTC; after this another run may take the lock


class StateStore(Protocol):
    """Journal + lock for every environment. All methods are safe to call from several processes."""

    def append(self, env: str, kind: str, *, phase: str | None = None, region: str | None = None,
               step: str | None = None, run_id: str | None = None, actor: str,
               data: dict[str, Any] | None = None) -> Event:
        """Durably append one event and return it with its serial; it is visible to every reader once this returns."""

    def events(self, env: str, *, after: int = 0) -> list[Event]:
        """All events of `env` with serial > `after`, in serial order."""

    def last_serial(self, env: str) -> int:
        """The serial of the newest event of `env`, 0 when the journal is empty."""

    def acquire_lock(self, env: str, *, holder: str, operation: str, run_id: str,
                     ttl_seconds: float) -> Lock:
        """Take the lease on `env`, or raise LockHeld naming the current holder; an expired lease is taken over."""

    def heartbeat(self, lock_id: str, ttl_seconds: float) -> Lock:
        """Extend the lease; raise LockLost if it is no longer ours (expired and taken, or force-unlocked)."""

    def release_lock(self, lock_id: str) -> None:
        """Give the lease back; a no-op when it is already gone."""

    def current_lock(self, env: str) -> Lock | None:
        """The unexpired lease on `env`, or None."""

    def force_unlock(self, env: str, lock_id: str) -> Lock:
        """Break the lease with this id regardless of holder; raise LockNotFound if no such lease exists."""

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
