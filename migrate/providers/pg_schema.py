"""SchemaStore over any PostgreSQL writer: the app's Alembic migrations run as the app ships them
(`python -m app.db …` in a subprocess, migrate/providers/schema_source.py) and the handle backfill in
plain SQL. The lab gives it the lab writer's DSN; AWS the Aurora writer's endpoint and a password
read from Secrets Manager, which reaches the subprocess as PGPASSWORD in its environment and
psycopg as an argument: never a command line (ps shows those), a log line or the journal."""

from __future__ import annotations

import os
from collections.abc import Callable

import psycopg

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.protocols import SchemaRevision
from migrate.providers.schema_source import app_db, branch_revisions

LOCK_TIMEOUT_MS = 2000
# One batch: the next players by id, locked FOR SHARE so a rename (whose trigger moves the claim)
# waits for the batch instead of racing it and leaving the old name claimed.
BACKFILL = """
WITH batch AS (
    SELECT id, handle, home_region FROM players WHERE id > %(after)s ORDER BY id LIMIT %(batch)s FOR SHARE
), claimed AS (
    INSERT INTO handle_claims (handle, player_id, home_region)
    SELECT handle, id, home_region FROM batch
    ON CONFLICT (handle) DO NOTHING
    RETURNING 1
)
SELECT (SELECT max(id) FROM batch) AS last_id, (SELECT count(*) FROM claimed) AS inserted
"""
# One batch of a home writer's rows of other homes (stale copies since its cutover), by id.
PRUNE = """
WITH batch AS (
    SELECT id FROM players WHERE id > %(after)s ORDER BY id LIMIT %(batch)s
), gone AS (
    DELETE FROM players p USING batch b WHERE p.id = b.id AND p.home_region <> %(home)s RETURNING 1
)
SELECT (SELECT max(id) FROM batch) AS last_id, (SELECT count(*) FROM gone) AS deleted
"""
MISSING = """
SELECT count(*) FROM players p
WHERE NOT EXISTS (SELECT 1 FROM handle_claims c WHERE c.handle = p.handle AND c.player_id = p.id)
"""


def _error(exc: psycopg.Error, what: str, where: str) -> ProviderError:
    """A connection that failed for a reason that may pass (the writer restarting, the network) is
    transient, so the runner retries it; refused credentials are not, and retrying them is only noise."""
    text = f"{what}: {exc}".strip()
    refused = "authentication failed" in str(exc) or getattr(exc, "sqlstate", None) in ("28000", "28P01")
    if isinstance(exc, psycopg.OperationalError) and not refused:
        return TransientProviderError(text, where=where)
    return ProviderError(text, where=where,
                         hint="check the credentials in the database secret" if refused else None)


class PgSchemaStore:
    """The game's schema at one writer. `writer_dsn` names the writer without a password (asked at
    every call: the writer moves at cutover); `password`, when given, supplies it at each connection."""

    def __init__(self, writer_dsn: Callable[[], str], *, password: Callable[[], str] | None = None,
                 where: str = "schema", homes: Callable[[], dict[str, Callable[[], str]]] | None = None) -> None:
        self._writer_dsn = writer_dsn
        self._password = password
        self.where = where
        self._homes = homes or dict  # region → its promoted home writer's DSN (cutover); none by default

    def home_writers(self) -> list[str]:
        return sorted(self._homes())

    def at_home_writer(self, region: str) -> "PgSchemaStore":
        homes = self._homes()
        if region not in homes:
            raise ProviderError(f"{region} has no home writer", where=self.where)
        return PgSchemaStore(homes[region], password=self._password, where=f"{self.where} ({region}'s home writer)")

    def prune_foreign_rows(self, home: str, after_id: int, batch: int) -> tuple[int | None, int]:
        try:
            with self._connect() as conn:
                # as logical replication's apply does: the home fence's trigger (it refuses every other home's
                # rows here) does not fire; the deletes reach no stream (the publication's row filter is this home)
                conn.execute("SET session_replication_role = replica")
                last_id, deleted = conn.execute(PRUNE, {"home": home, "after": after_id, "batch": batch}).fetchone()
        except psycopg.Error as exc:
            raise _error(exc, f"pruning other homes' rows after id {after_id}", self.where) from None
        return (None if last_id is None else int(last_id)), int(deleted)

    def foreign_rows(self, home: str) -> int:
        try:
            with self._connect() as conn:
                return int(conn.execute("SELECT count(*) FROM players WHERE home_region <> %s", (home,)).fetchone()[0])
        except psycopg.Error as exc:
            raise _error(exc, "counting other homes' rows", self.where) from None

    def _connect(self) -> psycopg.Connection:
        extra = {"password": self._password()} if self._password else {}
        return psycopg.connect(self._writer_dsn(), autocommit=True, connect_timeout=5, **extra)

    def _app_db(self, *args: str, timeout: float = 1800) -> str:
        env = None
        if self._password:
            env = {**os.environ, "PGPASSWORD": self._password()}
        proc = app_db(*args, timeout=timeout, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            if "LockNotAvailable" in proc.stderr or "lock timeout" in proc.stderr:
                raise TransientProviderError(f"app.db {args[0]}: a lock wait gave up ({tail})", where=self.where)
            raise ProviderError(f"app.db {args[0]} failed: {tail}", where=self.where)
        return proc.stdout

    def branch(self, name: str) -> list[SchemaRevision]:
        return list(branch_revisions(name))

    def applied(self) -> set[str]:
        try:  # SQL, not `app.db current`: it is read at every step and check
            with self._connect() as conn:
                if not conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]:
                    return set()
                return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        except psycopg.Error as exc:
            raise _error(exc, "reading the schema revision", self.where) from None

    def upgrade_sql(self, start: str, target: str) -> str:
        return self._app_db("sql", f"{start}:{target}")

    def upgrade(self, target: str) -> None:
        self._app_db("upgrade", self._writer_dsn(), target, "--lock-timeout-ms", str(LOCK_TIMEOUT_MS))

    def downgrade(self, target: str) -> None:
        self._app_db("downgrade", self._writer_dsn(), target, "--lock-timeout-ms", str(LOCK_TIMEOUT_MS))

    def backfill_handle_claims(self, after_id: int, batch: int) -> tuple[int | None, int]:
        try:
            with self._connect() as conn:
                last_id, inserted = conn.execute(BACKFILL, {"after": after_id, "batch": batch}).fetchone()
        except psycopg.Error as exc:
            raise _error(exc, f"backfill batch after id {after_id}", self.where) from None
        return (None if last_id is None else int(last_id)), int(inserted)

    def handle_claims_missing(self) -> int:
        try:
            with self._connect() as conn:
                return int(conn.execute(MISSING).fetchone()[0])
        except psycopg.Error as exc:
            raise _error(exc, "counting unclaimed handles", self.where) from None
