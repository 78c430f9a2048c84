"""PostgreSQL connection pools: the writers (the global one, and a home's own once cutover moved it),
and this region's reader.

Where the region reads from can change while the app runs: attach-secondary points it at the local
replica by rewriting READERS_FILE (region → DSN). The reader pool follows: on the first request after
the change a new pool is opened and the old one drained and closed in the background."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.config import Settings
from app.watched import WatchedJson, WatchedParameter

log = logging.getLogger("app")

DRAIN_SECONDS = 5.0  # how long an old reader pool lets in-flight reads finish before it closes
_retired: set = set()  # closing tasks of pools no longer named, kept referenced until done


def new_pool(dsn: str, settings: Settings, name: str, *, prepare: bool = True) -> AsyncConnectionPool:
    """An unopened pool of autocommit, dict-row connections to `dsn`. `prepare=False` turns psycopg's
    automatic prepared statements off: writes run in pipelines, and a pipeline that a fenced write
    aborts can take with it the PREPARE psycopg counts as done, so the connection's next use of that
    statement fails ("prepared statement _pg3_N does not exist") — seen when a held write retried."""
    kwargs = {"autocommit": True, "row_factory": dict_row, "connect_timeout": max(1, int(settings.db_timeout_seconds))}
    if not prepare:
        kwargs["prepare_threshold"] = None
    return AsyncConnectionPool(
        dsn, min_size=1, max_size=settings.db_pool_max, open=False, name=name,
        timeout=settings.db_timeout_seconds, reconnect_timeout=3600.0, kwargs=kwargs)


async def open_pool(pool: AsyncConnectionPool) -> None:
    """Open without waiting: the app starts (and /health reports 503) while the DB is down."""
    await pool.open(wait=False)


def describe_dsn(dsn: str) -> dict[str, str | None]:
    """host, port and dbname of a DSN (never the password), for /health."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return {"host": None, "port": None, "dbname": None}
    return {"host": parts.get("host"), "port": str(parts["port"]) if parts.get("port") else None,
            "dbname": parts.get("dbname")}


@dataclass(frozen=True)
class ReaderChoice:
    """The DSN this region reads from and where that choice came from."""

    dsn: str
    source: str  # "readers_file" | "reader_dsn" | "writer_dsn"


class ReaderRouter:
    """Hands out the pool of the reader this region should use right now."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.file = WatchedJson(settings.readers_file)
        self.choice: ReaderChoice | None = None
        self._pool: AsyncConnectionPool | None = None
        self._lock = asyncio.Lock()
        self._draining: dict[asyncio.Task, AsyncConnectionPool] = {}
        self._generation = 0

    def resolve(self) -> ReaderChoice:
        """READERS_FILE entry for this region, else READER_DSN, else WRITER_DSN."""
        entry = self.file.get().get(self.settings.region)
        if isinstance(entry, str) and entry:
            return ReaderChoice(entry, "readers_file")
        if self.settings.reader_dsn:
            return ReaderChoice(self.settings.reader_dsn, "reader_dsn")
        return ReaderChoice(self.settings.writer_dsn, "writer_dsn")

    async def pool(self) -> AsyncConnectionPool:
        """The current reader pool, switching to a new one if the reader DSN changed."""
        choice = self.resolve()
        if self._pool is not None and self.choice is not None and choice.dsn == self.choice.dsn:
            return self._pool
        async with self._lock:
            choice = self.resolve()
            if self._pool is None or self.choice is None or choice.dsn != self.choice.dsn:
                self._generation += 1
                pool = new_pool(choice.dsn, self.settings, f"reader-{self._generation}")
                await open_pool(pool)
                old, self._pool, self.choice = self._pool, pool, choice
                log.info("%s reads from %s (%s)", self.settings.region,
                         describe_dsn(choice.dsn), choice.source)
                if old is not None:
                    task = asyncio.create_task(self._drain(old))
                    self._draining[task] = old
                    task.add_done_callback(lambda t: self._draining.pop(t, None))
            return self._pool

    async def _drain(self, pool: AsyncConnectionPool) -> None:
        await asyncio.sleep(DRAIN_SECONDS)
        await pool.close(timeout=DRAIN_SECONDS)

    async def close(self) -> None:
        """Close the current pool and any still draining."""
        draining = list(self._draining.items())
        for task, _ in draining:
            task.cancel()
        for _, pool in draining:
            await pool.close(timeout=1.0)
        if self._pool is not None:
            await self._pool.close(timeout=1.0)


WARM_PREFIX = "warm:"  # WRITERS_FILE key of a writer to connect to ahead of routing
READER_PREFIX = "reader:"  # WRITERS_FILE key of this region's secondary of a home's shard (read-your-writes)


class WriterRouter:
    """Hands out the pool of the writer of a player's home: WRITERS_FILE's entry for the home (cutover
    writes it when it moves the home's writer), else the global writer (WRITER_DSN). Pools are kept per
    DSN (a handful: one per home writer), so routing back and forth reuses them."""

    def __init__(self, settings: Settings, default: AsyncConnectionPool,
                 source: WatchedParameter | None = None) -> None:
        self.settings = settings
        self.default = default
        # WRITERS_PARAMETER (polled by the runtime) when given, else WRITERS_FILE
        self.file: WatchedJson | WatchedParameter = source or WatchedJson(settings.writers_file)
        self._pools: dict[str, AsyncConnectionPool] = {}
        self._warming: set[str] = set()
        self._lock = asyncio.Lock()

    def _entry(self, key: str) -> str | None:
        """An entry as a full DSN: an entry that names only where (host, port: the tool's map on AWS) takes
        the rest (database, user, TLS) from WRITER_DSN; None when absent or not a string."""
        entry = self.file.get().get(key)
        if not isinstance(entry, str) or not entry:
            return None
        try:
            parts = conninfo_to_dict(entry)
        except psycopg.ProgrammingError:
            return None  # a botched entry: the home writes to the global writer, as if absent
        if "dbname" in parts:
            return entry
        return make_conninfo(self.settings.writer_dsn, **parts)

    def dsn_for(self, home: str | None) -> str | None:
        """The DSN of `home`'s own writer, or None when the home writes to the global writer."""
        dsn = self._entry(home) if home else None
        return dsn if dsn and dsn != self.settings.writer_dsn else None

    def shard_reader_dsn(self, home: str) -> str | None:
        """The DSN of this region's secondary of `home`'s shard (after its cutover), or None."""
        return self._entry(READER_PREFIX + home)

    def warm(self) -> None:
        """Open, in the background, a pool for every "warm:<home>" entry: a writer cutover staged and will
        route to. Its connections are open before routing flips, so the first write held by the fence
        does not also pay a connection set-up across the ocean (several round trips)."""
        entries = {key: self._entry(key) for key in self.file.get()}
        for key, dsn in entries.items():
            if key.startswith(WARM_PREFIX) and dsn and dsn not in self._pools and dsn not in self._warming:
                self._warming.add(dsn)
                task = asyncio.get_running_loop().create_task(self._open(key.removeprefix(WARM_PREFIX), dsn))
                task.add_done_callback(lambda _t, d=dsn: self._warming.discard(d))
        # A pool the file no longer names belongs to a writer a rollback removed: the next cutover
        # stages a new database at the same address, and this pool's connections would be to the old
        # one (each write's first try a 503). Closed, so that cutover starts from fresh connections.
        named = {dsn for dsn in entries.values() if isinstance(dsn, str)}
        for dsn in [d for d in self._pools if d not in named and d not in self._warming]:
            pool = self._pools.pop(dsn)
            task = asyncio.get_running_loop().create_task(pool.close(timeout=DRAIN_SECONDS))
            _retired.add(task)
            task.add_done_callback(_retired.discard)
            log.info("%s closed its pool to a writer no longer named: %s", self.settings.region, describe_dsn(dsn))

    async def _open(self, home: str, dsn: str) -> AsyncConnectionPool:
        async with self._lock:
            if dsn not in self._pools:
                pool = new_pool(dsn, self.settings, f"writer-{home}", prepare=False)
                await open_pool(pool)
                self._pools[dsn] = pool
                log.info("%s opened a pool to the writer of home %s: %s", self.settings.region, home,
                         describe_dsn(dsn))
            return self._pools[dsn]

    async def pool(self, home: str | None) -> AsyncConnectionPool:
        dsn = self.dsn_for(home)
        if dsn is None:
            return self.default
        return await self.pool_of(home or "?", dsn)

    async def pool_of(self, home: str, dsn: str) -> AsyncConnectionPool:
        """The pool of `dsn` (a home's writer or this region's secondary of its shard), opened on first use."""
        pool = self._pools.get(dsn)
        if pool is not None:
            return pool
        return await self._open(home, dsn)

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close(timeout=1.0)
