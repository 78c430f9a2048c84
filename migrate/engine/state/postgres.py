"""PostgreSQL state store: the journal and lock shared by a team (tables `migrate_journal`, `migrate_lock`).

Every time comes from the server's clock, so operators on machines with skewed clocks agree on
when a lease expires."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from migrate.engine.state.protocol import Event, Lock
from migrate.engine.state.common import (encode_data, lock_held, lock_lost, lock_not_found,
                                         taken_over_how)
from migrate.errors import StateStoreError

# Advisory lock keys. The one-key (DDL) and two-key (per env) spaces never overlap in PostgreSQL.
_DDL_KEY = 0x6D696772617465  # "migrate"
_NS_JOURNAL = 1
_NS_LOCK = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS migrate_journal (
    env text NOT NULL, serial bigint NOT NULL, kind text NOT NULL, phase text, region text,
    step text, run_id text, actor text NOT NULL, at timestamptz NOT NULL, data jsonb NOT NULL,
    PRIMARY KEY (env, serial));
CREATE TABLE IF NOT EXISTS migrate_lock (
    lock_id text PRIMARY KEY, env text NOT NULL, holder text NOT NULL, operation text NOT NULL,
    run_id text NOT NULL, acquired_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL, ended_at timestamptz, ended_how text);
-- Ended leases stay as history (so LockLost can say what happened); at most one live one per env.
CREATE UNIQUE INDEX IF NOT EXISTS migrate_lock_live_per_env ON migrate_lock (env)
    WHERE ended_at IS NULL;
"""

_LOCK_COLUMNS = "lock_id, env, holder, operation, run_id, acquired_at, heartbeat_at, expires_at"
_EVENT_COLUMNS = "serial, env, kind, phase, region, step, run_id, actor, at, data"


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def _lock(row: tuple) -> Lock:
    return Lock(*row[:5], *(_utc(t) for t in row[5:8]))


def _reason(exc: BaseException) -> str:
    """libpq's first line, minus its 'connection to server at … failed:' preamble."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line.rsplit("failed: ", 1)[-1].strip()


class PostgresStateStore:
    """Journal and lease lock in PostgreSQL; safe for several processes, hosts and threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StateStoreError(f"invalid PostgreSQL state store URL: {_reason(exc)}") from exc
        self.where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        # One connection, one caller at a time: statements are short, and the runner's heartbeat
        # thread and control poll only need to not corrupt each other's transactions.
        self._mutex = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._closed = False
        with self._tx() as cur:
            # Two first runs at once would otherwise race on CREATE TABLE IF NOT EXISTS.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_KEY,))
            cur.execute(_SCHEMA)

    # -- journal

    def append(self, env: str, kind: str, *, phase: str | None = None, region: str | None = None,
               step: str | None = None, run_id: str | None = None, actor: str,
               data: dict[str, Any] | None = None) -> Event:
        """Durably append one event with the next serial of `env`; committed before it returns."""
        payload = encode_data(data)
        with self._tx() as cur:
            # Appenders to one env queue here; MAX(serial) below then sees every earlier commit
            # (READ COMMITTED takes a fresh snapshot per statement), so serials have no gaps.
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_NS_JOURNAL, env))
            cur.execute(
                f"INSERT INTO migrate_journal ({_EVENT_COLUMNS}) "
                "SELECT COALESCE(MAX(serial), 0) + 1, %s, %s, %s, %s, %s, %s, %s, "
                "clock_timestamp(), %s::jsonb FROM migrate_journal WHERE env = %s "
                "RETURNING serial, at",
                (env, kind, phase, region, step, run_id, actor, payload, env))
            serial, at = cur.fetchone()
        return Event(serial, env, kind, phase, region, step, run_id, actor, _utc(at),
                     json.loads(payload))

    def events(self, env: str, *, after: int = 0) -> list[Event]:
        """All events of `env` with serial > `after`, in serial order."""
        with self._tx() as cur:
            cur.execute(f"SELECT {_EVENT_COLUMNS} FROM migrate_journal "
                        "WHERE env = %s AND serial > %s ORDER BY serial", (env, after))
            rows = cur.fetchall()
        return [Event(*row[:8], _utc(row[8]), row[9]) for row in rows]

    def last_serial(self, env: str) -> int:
        """The newest serial of `env`, 0 when its journal is empty."""
        with self._tx() as cur:
            cur.execute("SELECT COALESCE(MAX(serial), 0) FROM migrate_journal WHERE env = %s",
                        (env,))
            return cur.fetchone()[0]

    # -- lock

    def acquire_lock(self, env: str, *, holder: str, operation: str, run_id: str,
                     ttl_seconds: float) -> Lock:
        """Take the lease on `env` (taking over an expired one) or raise LockHeld naming the holder."""
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_NS_LOCK, env))
            live = self._live(cur, env)
            now = self._now(cur)
            new = Lock(uuid.uuid4().hex, env, holder, operation, run_id, now, now,
                       now + timedelta(seconds=ttl_seconds))
            if live is not None:
                if live.expires_at > now:
                    raise lock_held(live)
                cur.execute("UPDATE migrate_lock SET ended_at = %s, ended_how = %s "
                            "WHERE lock_id = %s", (now, taken_over_how(new), live.lock_id))
            cur.execute(f"INSERT INTO migrate_lock ({_LOCK_COLUMNS}) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (new.lock_id, env, holder, operation, run_id, now, now, new.expires_at))
        return new

    def heartbeat(self, lock_id: str, ttl_seconds: float) -> Lock:
        """Extend the lease to now + ttl; raise LockLost if it was taken over, released or broken."""
        with self._tx() as cur:
            # FOR UPDATE orders us against a concurrent takeover of this very row.
            cur.execute(f"SELECT {_LOCK_COLUMNS}, ended_at, ended_how FROM migrate_lock "
                        "WHERE lock_id = %s FOR UPDATE", (lock_id,))
            row = cur.fetchone()
            if row is None:
                raise lock_lost(lock_id, None, None, None)
            if row[8] is not None:
                raise lock_lost(lock_id, row[1], _utc(row[8]), row[9])
            # An expired lease nobody took is still ours: no other run can have mutated meanwhile.
            now = self._now(cur)
            expires = now + timedelta(seconds=ttl_seconds)
            cur.execute("UPDATE migrate_lock SET heartbeat_at = %s, expires_at = %s "
                        "WHERE lock_id = %s", (now, expires, lock_id))
        return _lock((*row[:6], now, expires))

    def release_lock(self, lock_id: str) -> None:
        """End the lease if it is still live; a no-op when it is already gone or taken over."""
        with self._tx() as cur:
            cur.execute("UPDATE migrate_lock SET ended_at = clock_timestamp(), "
                        "ended_how = 'it was released' WHERE lock_id = %s AND ended_at IS NULL",
                        (lock_id,))

    def current_lock(self, env: str) -> Lock | None:
        """The unexpired lease on `env`, or None."""
        with self._tx() as cur:
            cur.execute(f"SELECT {_LOCK_COLUMNS} FROM migrate_lock WHERE env = %s "
                        "AND ended_at IS NULL AND expires_at > clock_timestamp()", (env,))
            row = cur.fetchone()
        return _lock(row) if row else None

    def force_unlock(self, env: str, lock_id: str) -> Lock:
        """Break the live lease `lock_id` on `env` whoever holds it; raise LockNotFound otherwise."""
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_NS_LOCK, env))
            live = self._live(cur, env)
            if live is None or live.lock_id != lock_id:
                current = live if live and live.expires_at > self._now(cur) else None
                raise lock_not_found(env, lock_id, current)
            cur.execute("UPDATE migrate_lock SET ended_at = clock_timestamp(), "
                        "ended_how = 'it was force-unlocked' WHERE lock_id = %s", (lock_id,))
        return live

    def close(self) -> None:
        """Close the connection; later calls raise StateStoreError."""
        with self._mutex:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- plumbing

    @staticmethod
    def _live(cur: psycopg.Cursor, env: str) -> Lock | None:
        cur.execute(f"SELECT {_LOCK_COLUMNS} FROM migrate_lock "
                    "WHERE env = %s AND ended_at IS NULL FOR UPDATE", (env,))
        row = cur.fetchone()
        return _lock(row) if row else None

    @staticmethod
    def _now(cur: psycopg.Cursor) -> datetime:
        # clock_timestamp(), not now(): now() is frozen at the start of a transaction that may
        # have waited on a lock.
        cur.execute("SELECT clock_timestamp()")
        return _utc(cur.fetchone()[0])

    def _connection(self) -> psycopg.Connection:
        if self._closed:
            raise StateStoreError(f"PostgreSQL state store at {self.where}: the store was closed")
        # Reconnect after a server restart or network blip instead of failing every later call.
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                             application_name="migrate")
            except psycopg.Error as exc:
                raise StateStoreError(
                    f"cannot reach the PostgreSQL state store at {self.where}: {_reason(exc)}",
                    hint="check that the server is up and the state store URL is right",
                    details={"where": self.where}) from exc
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor]:
        with self._mutex:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise StateStoreError(
                    f"PostgreSQL state store at {self.where}: {_reason(exc)}",
                    details={"where": self.where, "sqlstate": getattr(exc, "sqlstate", None)},
                ) from exc
