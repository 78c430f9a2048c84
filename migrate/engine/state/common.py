"""What both state backends share: the JSON encoding of event data and the lock messages operators
read (so a refusal reads the same whichever backend holds the journal)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.redact import redact_data  # one list of secret shapes for the game's logs and this journal
from migrate.engine.state.protocol import Lock
from migrate.errors import LockHeld, LockLost, LockNotFound



def iso(at: datetime) -> str:
    """`2026-11-23T05:00:00Z`: what operators see in lock messages."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_data(data: dict[str, Any] | None) -> str:
    """The payload as JSON text with secrets masked (app/redact.py: a DSN password, a token or a key in
    an error message must not outlive the run in the journal); TypeError/ValueError (before anything is
    written) if it is not JSON."""
    # allow_nan=False: NaN is not JSON, and PostgreSQL's jsonb would refuse what SQLite accepted.
    return json.dumps(redact_data(data or {}), separators=(",", ":"), allow_nan=False)


def lock_held(lock: Lock) -> LockHeld:
    """The refusal a second acquirer gets: who holds `lock`, doing what, since when, and its id."""
    return LockHeld(
        f"environment '{lock.env}' is locked by {lock.holder} ({lock.operation}) since "
        f"{iso(lock.acquired_at)}; lock id {lock.lock_id}",
        hint=f"wait for that run to finish (its lease expires at {iso(lock.expires_at)} unless it "
             f"renews it); if it is dead: migrate unlock --force {lock.lock_id}",
        details={"env": lock.env, "holder": lock.holder, "operation": lock.operation,
                 "run_id": lock.run_id, "lock_id": lock.lock_id,
                 "acquired_at": iso(lock.acquired_at), "expires_at": iso(lock.expires_at)})


def lock_lost(lock_id: str, env: str | None, ended_at: datetime | None, how: str | None) -> LockLost:
    """What a holder hears when its lease ended under it (`env` None: the id never existed)."""
    if env is None:
        message = f"lock id {lock_id} does not exist"
    else:
        message = f"lock {lock_id} on environment '{env}' is no longer held: {how} at {iso(ended_at)}"
    return LockLost(message, hint="stop mutating; check `migrate status` before running again",
                    details={"lock_id": lock_id, "env": env, "how": how,
                             "ended_at": iso(ended_at) if ended_at else None})


def lock_not_found(env: str, lock_id: str, current: Lock | None) -> LockNotFound:
    """`unlock --force` named a lease that is not live on `env`; points at the `current` one."""
    now = f"; the current lock id is {current.lock_id}" if current else "; it is not locked"
    return LockNotFound(f"environment '{env}' has no lock with id {lock_id}{now}",
                        hint="see `migrate status` for the current lock id",
                        details={"env": env, "lock_id": lock_id,
                                 "current_lock_id": current.lock_id if current else None})


def taken_over_how(new: Lock) -> str:
    """How an expired lease ended, recorded on it so its old holder's LockLost can say so."""
    return f"it expired and was taken over by {new.holder} (lock id {new.lock_id})"
