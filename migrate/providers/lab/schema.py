"""SchemaStore in the lab: the app's Alembic migrations run against the lab writer, as the app ships
them (`python -m app.db …` in a subprocess, migrate/providers/schema_source.py), and the handle backfill in plain SQL on the writer."""

from __future__ import annotations

import psycopg

from migrate.errors import ProviderError, TransientProviderError
from migrate.lab.topology import LabTopology
from migrate.providers.protocols import SchemaRevision
from migrate.providers.schema_source import app_db, branch_revisions

WHERE = "lab schema"
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
MISSING = """
SELECT count(*) FROM players p
WHERE NOT EXISTS (SELECT 1 FROM handle_claims c WHERE c.handle = p.handle AND c.player_id = p.id)
"""


class LabSchema:
    def __init__(self, topology: LabTopology) -> None:
        self.t = topology

    def _dsn(self) -> str:
        return self.t.primary().dsn()

    def _app_db(self, *args: str, timeout: float = 1800) -> str:
        proc = app_db(*args, timeout=timeout)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            if "LockNotAvailable" in proc.stderr or "lock timeout" in proc.stderr:
                raise TransientProviderError(f"app.db {args[0]}: a lock wait gave up ({tail})", where=WHERE)
            raise ProviderError(f"app.db {args[0]} failed: {tail}", where=WHERE)
        return proc.stdout

    def branch(self, name: str) -> list[SchemaRevision]:
        return list(branch_revisions(name))

    def applied(self) -> set[str]:
        try:  # SQL, not `app.db current`: it is read at every step and check
            with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
                if not conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]:
                    return set()
                return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        except psycopg.Error as exc:
            raise ProviderError(f"reading the schema revision: {exc}".strip(), where=WHERE) from None

    def upgrade_sql(self, start: str, target: str) -> str:
        return self._app_db("sql", f"{start}:{target}")

    def upgrade(self, target: str) -> None:
        self._app_db("upgrade", self._dsn(), target, "--lock-timeout-ms", str(LOCK_TIMEOUT_MS))

    def downgrade(self, target: str) -> None:
        self._app_db("downgrade", self._dsn(), target, "--lock-timeout-ms", str(LOCK_TIMEOUT_MS))

    def backfill_handle_claims(self, after_id: int, batch: int) -> tuple[int | None, int]:
        try:
            with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
                last_id, inserted = conn.execute(BACKFILL, {"after": after_id, "batch": batch}).fetchone()
        except psycopg.OperationalError as exc:
            raise TransientProviderError(f"backfill batch after id {after_id}: {exc}".strip(), where=WHERE) from None
        except psycopg.Error as exc:
            raise ProviderError(f"backfill batch after id {after_id}: {exc}".strip(), where=WHERE) from None
        return (None if last_id is None else int(last_id)), int(inserted)

    def handle_claims_missing(self) -> int:
        try:
            with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
                return int(conn.execute(MISSING).fetchone()[0])
        except psycopg.Error as exc:
            raise ProviderError(f"counting unclaimed handles: {exc}".strip(), where=WHERE) from None
