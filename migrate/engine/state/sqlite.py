"""SQLite state store: one file shared by every process on the machine (the default backend).

Also holds the error builders both backends share, so operators see identical messages whichever
store they use."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from migrate.engine.state.protocol import Event, Lock
from migrate.errors import StateStoreError

from migrate.engine.state.common import (encode_data, lock_held, lock_lost, lock_not_found,
                                         taken_over_how)


# ---- SQLite ------------------------------------------------------------------------------------

# Times are integer microseconds since the epoch so round-trips are exact and comparisons are cheap.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    env TEXT NOT NULL, serial INTEGER NOT NULL, kind TEXT NOT NULL, phase TEXT, region TEXT,
    step TEXT, run_id TEXT, actor TEXT NOT NULL, at_us INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (env, serial));
CREATE TABLE IF NOT EXISTS lock (
    lock_id TEXT PRIMARY KEY, env TEXT NOT NULL, holder TEXT NOT NULL, operation TEXT NOT NULL,
    run_id TEXT NOT NULL, acquired_us INTEGER NOT NULL, heartbeat_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL, ended_us INTEGER, ended_how TEXT);
-- Ended leases stay as history (so LockLost can say what happened); at most one live one per env.
CREATE UNIQUE INDEX IF NOT EXISTS lock_live_per_env ON lock (env) WHERE ended_us IS NULL;
"""

_LOCK_COLUMNS = "lock_id, env, holder, operation, run_id, acquired_us, heartbeat_us, expires_us"


def _now_us() -> int:
    return time.time_ns() // 1000


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _lock(row: tuple) -> Lock:
    lock_id, env, holder, operation, run_id, acquired, beat, expires = row[:8]
    return Lock(lock_id, env, holder, operation, run_id, _dt(acquired), _dt(beat), _dt(expires))


class SqliteStateStore:
    """Journal and lease lock in one SQLite file; safe for several processes and threads."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(f"cannot create its folder: {exc.strerror or exc}") from exc
        with self._connect() as conn:
            self._use_wal(conn)
            # One transaction, so a second process starting at the same moment waits, then no-ops.
            self._run(lambda: conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;"))

    # -- journal

    def append(self, env: str, kind: str, *, phase: str | None = None, region: str | None = None,
               step: str | None = None, run_id: str | None = None, actor: str,
               data: dict[str, Any] | None = None) -> Event:
        """Durably append one event with the next serial of `env`; committed before it returns."""
        payload = encode_data(data)
        with self._write() as conn:
            (serial,) = conn.execute("SELECT COALESCE(MAX(serial), 0) + 1 FROM journal WHERE env = ?",
                                     (env,)).fetchone()
            at_us = _now_us()
            conn.execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (env, serial, kind, phase, region, step, run_id, actor, at_us, payload))
        return Event(serial, env, kind, phase, region, step, run_id, actor, _dt(at_us),
                     json.loads(payload))

    def events(self, env: str, *, after: int = 0) -> list[Event]:
        """All events of `env` with serial > `after`, in serial order."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT serial, env, kind, phase, region, step, run_id, actor, at_us, data "
                "FROM journal WHERE env = ? AND serial > ? ORDER BY serial", (env, after)).fetchall()
        return [Event(*row[:8], _dt(row[8]), json.loads(row[9])) for row in rows]

    def last_serial(self, env: str) -> int:
        """The newest serial of `env`, 0 when its journal is empty."""
        with self._read() as conn:
            return conn.execute("SELECT COALESCE(MAX(serial), 0) FROM journal WHERE env = ?",
                                (env,)).fetchone()[0]

    # -- lock

    def acquire_lock(self, env: str, *, holder: str, operation: str, run_id: str,
                     ttl_seconds: float) -> Lock:
        """Take the lease on `env` (taking over an expired one) or raise LockHeld naming the holder."""
        with self._write() as conn:
            now = _now_us()
            expires = now + round(ttl_seconds * 1e6)
            live = self._live(conn, env)
            new = Lock(uuid.uuid4().hex, env, holder, operation, run_id, _dt(now), _dt(now),
                       _dt(expires))
            if live is not None:
                if live.expires_at > _dt(now):
                    raise lock_held(live)
                conn.execute("UPDATE lock SET ended_us = ?, ended_how = ? WHERE lock_id = ?",
                             (now, taken_over_how(new), live.lock_id))
            conn.execute(f"INSERT INTO lock ({_LOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (new.lock_id, env, holder, operation, run_id, now, now, expires))
        return new

    def heartbeat(self, lock_id: str, ttl_seconds: float) -> Lock:
        """Extend the lease to now + ttl; raise LockLost if it was taken over, released or broken."""
        with self._write() as conn:
            row = conn.execute(f"SELECT {_LOCK_COLUMNS}, ended_us, ended_how FROM lock "
                               "WHERE lock_id = ?", (lock_id,)).fetchone()
            if row is None:
                raise lock_lost(lock_id, None, None, None)
            if row[8] is not None:
                raise lock_lost(lock_id, row[1], _dt(row[8]), row[9])
            # An expired lease nobody took is still ours: no other run can have mutated meanwhile.
            now = _now_us()
            expires = now + round(ttl_seconds * 1e6)
            conn.execute("UPDATE lock SET heartbeat_us = ?, expires_us = ? WHERE lock_id = ?",
                         (now, expires, lock_id))
        return _lock((*row[:6], now, expires))

    def release_lock(self, lock_id: str) -> None:
        """End the lease if it is still live; a no-op when it is already gone or taken over."""
        with self._write() as conn:
            conn.execute("UPDATE lock SET ended_us = ?, ended_how = 'it was released' "
                         "WHERE lock_id = ? AND ended_us IS NULL", (_now_us(), lock_id))

    def current_lock(self, env: str) -> Lock | None:
        """The unexpired lease on `env`, or None."""
        with self._read() as conn:
            live = self._live(conn, env)
        return live if live is not None and live.expires_at > _dt(_now_us()) else None

    def force_unlock(self, env: str, lock_id: str) -> Lock:
        """Break the live lease `lock_id` on `env` whoever holds it; raise LockNotFound otherwise."""
        with self._write() as conn:
            live = self._live(conn, env)
            if live is None or live.lock_id != lock_id:
                unexpired = live if live and live.expires_at > _dt(_now_us()) else None
                raise lock_not_found(env, lock_id, unexpired)
            conn.execute("UPDATE lock SET ended_us = ?, ended_how = 'it was force-unlocked' "
                         "WHERE lock_id = ?", (_now_us(), lock_id))
        return live

    def close(self) -> None:
        """Nothing stays open between calls; later calls raise StateStoreError."""
        self._closed = True

    # -- plumbing

    @staticmethod
    def _live(conn: sqlite3.Connection, env: str) -> Lock | None:
        row = conn.execute(f"SELECT {_LOCK_COLUMNS} FROM lock WHERE env = ? AND ended_us IS NULL",
                           (env,)).fetchone()
        return _lock(row) if row else None

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # WAL lets readers (status, control polls) run while a writer appends. Switching to it
        # needs an exclusive lock that SQLite does not wait for (busy_timeout does not apply), so
        # processes creating the file at the same moment retry.
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self._error(str(exc)) from exc
                time.sleep(0.02)

    def _error(self, why: str) -> StateStoreError:
        return StateStoreError(f"SQLite state store {self.path}: {why}",
                               hint="check the state path exists, is writable and is not on a "
                                    "network file system", details={"path": str(self.path)})

    def _run(self, fn):
        try:
            return fn()
        except sqlite3.Error as exc:
            raise self._error(str(exc)) from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: sqlite3 connections must not cross threads, and opening is cheap.
        if self._closed:
            raise self._error("the store was closed")
        # isolation_level=None: we issue BEGIN ourselves; timeout is SQLite's busy_timeout.
        conn = self._run(lambda: sqlite3.connect(self.path, timeout=30, isolation_level=None))
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            try:
                yield conn
            except sqlite3.Error as exc:
                raise self._error(str(exc)) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so read-then-write (max serial + 1, check
        # the live lease) cannot interleave with another writer in any process.
        with self._connect() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(str(exc)) from exc
