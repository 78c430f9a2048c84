"""SQL for the players table: reads from the region's reader (with read-your-writes), writes to the
global writer.

Read-your-writes: a write returns `pg_current_wal_insert_lsn()` read after its commit (in the same
round trip as the write, see `_update_in_one_round_trip`). A read that
carries that LSN asks the reader, in one round trip (a pipeline of two statements, each with its own
snapshot under READ COMMITTED), whether its replay position has reached the LSN and for the row; the
row is used only when it has. Otherwise the read retries for up to READ_YOUR_WRITES_WAIT_MS, then
reads the writer, which always holds the write."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from app.errors import WriteHeld
from app.ids import sequence_name
from app.runtime import Runtime

log = logging.getLogger("app")

COLUMNS = ("id", "handle", "home_region", "level", "xp", "coins", "created_at", "updated_at", "profile")
SELECT_PLAYER = f"SELECT {', '.join(COLUMNS)} FROM players WHERE id = %s"
SELECT_HOME = "SELECT home_region FROM players WHERE id = %s"
# On a standby the replayed position. On a primary (the reader is the writer) every committed
# transaction is visible, so compare with the insert position, which the token never exceeds (the
# write position can trail it while WAL sits in buffers, e.g. with synchronous_commit=off).
REPLAYED_AT_LEAST = ("SELECT COALESCE(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                     "ELSE pg_current_wal_insert_lsn() END >= %s::pg_lsn, false) AS caught_up")
# A write's token: the LSN of its commit, and "@<home>" when the write went to the home's own writer
# (after cutover): an LSN means something only on the timeline of the database that gave it.
LSN_PATTERN = r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}(@[a-z0-9-]{1,32})?$"


_background: set[asyncio.Task] = set()  # strong references until the tasks finish


class HandleTaken(Exception):
    """Another player already has the requested handle."""


WRITE_HOLD_POLL_S = 0.05  # how often a held write tries again; the fence lifts within a few seconds


async def _held_while_fenced(rt: Runtime, write):
    """`await write()`, held and retried while the writer refuses it with the fence's SQLSTATE 25006
    (read_only_sql_transaction: nothing was written, so trying again is safe), for up to
    WRITE_HOLD_SECONDS; at most WRITE_HOLD_MAX writes are held at once. Players see a slower write
    during a cutover's fence, not an error; past the hold, a retryable 503, never a 500."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + rt.settings.write_hold_seconds
    held = False
    try:
        while True:
            try:
                result = await write()
            except psycopg.errors.ReadOnlySqlTransaction:
                if not held:
                    if rt.extras.get("writes_held", 0) >= rt.settings.write_hold_max:
                        rt.metrics.writes_held.labels(outcome="refused").inc()
                        raise WriteHeld("too many writes are held already") from None
                    held = True
                    rt.extras["writes_held"] = rt.extras.get("writes_held", 0) + 1
                    rt.metrics.writes_waiting.inc()
                if loop.time() >= deadline:
                    rt.metrics.writes_held.labels(outcome="refused").inc()
                    raise WriteHeld(f"the home stayed fenced for {rt.settings.write_hold_seconds:g} s") from None
                await asyncio.sleep(WRITE_HOLD_POLL_S)
                continue
            if held:
                rt.metrics.writes_held.labels(outcome="released").inc()
            return result
    finally:
        if held:
            rt.extras["writes_held"] -= 1
            rt.metrics.writes_waiting.dec()


async def _fetch(pool: AsyncConnectionPool, query: str, params: tuple) -> dict[str, Any] | None:
    """One row (or None); a connection broken by a server restart is retried once after the pool
    sheds its other broken connections."""
    for attempt in (1, 2):
        try:
            async with pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchone()
        except psycopg.OperationalError as exc:
            if attempt == 2 or isinstance(exc, PoolTimeout):
                raise
            await pool.check()
    return None  # unreachable


async def _fetch_if_caught_up(pool: AsyncConnectionPool, lsn: str, query: str,
                              params: tuple) -> tuple[bool, dict[str, Any] | None]:
    """(reader has replayed `lsn`, the row read after that check) in one round trip."""
    async with pool.connection() as conn:
        async with conn.pipeline():
            check = await conn.execute(REPLAYED_AT_LEAST, (lsn,))
            read = await conn.execute(query, params)
        caught_up = bool((await check.fetchone())["caught_up"])
        return caught_up, await read.fetchone()


async def _wait_caught_up(rt: Runtime, pool: AsyncConnectionPool, lsn: str, query: str,
                          params: tuple) -> tuple[bool, dict[str, Any] | None]:
    """(caught up, row) from `pool` once it has replayed `lsn`, polling up to READ_YOUR_WRITES_WAIT_MS."""
    deadline = time.monotonic() + rt.settings.read_your_writes_wait_ms / 1000
    pause = 0.005
    while True:
        caught_up, row = await _fetch_if_caught_up(pool, lsn, query, params)
        if caught_up:
            return True, row
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, None
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.05)


async def read(rt: Runtime, query: str, params: tuple,
               min_lsn: str | None = None) -> tuple[dict[str, Any] | None, str, str]:
    """(row or None, "reader" | "writer" | "shard-reader" | "home-writer", why) for a read that must reflect
    every write up to `min_lsn` when one is given. A token from a home's own writer ("LSN@home") is not
    comparable with this region's reader (another database's timeline): that read goes to this region's
    secondary of the home's shard once it has replayed the LSN, else to the home's writer."""
    if min_lsn is not None and "@" in min_lsn:
        lsn, home = min_lsn.split("@", 1)
        if rt.writers is not None and rt.writers.dsn_for(home) is not None:
            local = rt.writers.shard_reader_dsn(home)
            if local is not None:
                try:
                    caught_up, row = await _wait_caught_up(rt, await rt.writers.pool_of(home, local), lsn, query,
                                                           params)
                    if caught_up:
                        return row, "shard-reader", "caught_up"
                except psycopg.OperationalError as exc:
                    log.warning("the secondary of %s's shard failed, reading its writer instead: %s", home, exc)
            return await _fetch(await rt.writers.pool(home), query, params), "home-writer", "token_of_home_writer"
        # the home is back on the global writer (a rollback): only the writer is sure to hold the write
        return await _fetch(rt.writer, query, params), "writer", "token_of_former_home_writer"
    try:
        reader = await rt.readers.pool()
        if min_lsn is None:
            return await _fetch(reader, query, params), "reader", "no_token"
        caught_up, row = await _wait_caught_up(rt, reader, min_lsn, query, params)
        if caught_up:
            return row, "reader", "caught_up"
        reason = "lagging"
    except psycopg.OperationalError as exc:
        log.warning("reader failed, reading the writer instead: %s", exc)
        reason = "reader_error"
    return await _fetch(rt.writer, query, params), "writer", reason


async def read_player(rt: Runtime, player_id: int, min_lsn: str | None) -> tuple[dict | None, str]:
    """The player's row (or None) and which pool served it."""
    row, served_by, reason = await read(rt, SELECT_PLAYER, (player_id,), min_lsn)
    rt.metrics.reads.labels(served_by=served_by, reason=reason).inc()
    return row, served_by


async def fetch_home_region(rt: Runtime, player_id: int) -> str | None:
    """The player's home_region column, or None when there is no such player."""
    row, _, _ = await read(rt, SELECT_HOME, (player_id,))
    return row["home_region"] if row else None


# A v2 rename moves the player's claim in the same statement: every other name the player holds is
# released and the new one claimed unless the player already holds it (the NOT EXISTS reads the claims
# as they were before the statement), so the authority never holds a name nobody has, nor misses one
# somebody has; a name another player holds fails the INSERT (unique_violation) and with it the rename.
# While expand's sync trigger is still there it finds the claim already moved and does nothing. (Not a
# CTE reading the old name FOR UPDATE: once the UPDATE has changed the row in the same statement, that
# lock skips the row and the old name reads as nothing.)
RENAME_WITH_CLAIM = """
WITH renamed AS ({update}),
     released AS (DELETE FROM handle_claims c USING renamed
                  WHERE c.player_id = renamed.id AND c.handle <> renamed.handle),
     claimed AS (INSERT INTO handle_claims (handle, player_id, home_region)
                 SELECT renamed.handle, renamed.id, renamed.home_region FROM renamed
                 WHERE NOT EXISTS (SELECT 1 FROM handle_claims c
                                   WHERE c.handle = renamed.handle AND c.player_id = renamed.id))
SELECT * FROM renamed"""


async def update_player(rt: Runtime, player_id: int, changes: dict[str, Any],
                        home: str | None = None) -> tuple[dict | None, str | None]:
    """Apply `changes` (column → value; `profile` is merged key by key) on the writer; the new row
    and the WAL insert LSN read after the commit (None, None when there is no such player), on the
    writer of the player's `home` (its own once cutover moved it). App v2 moves a renamed player's
    handle claim in the same statement (v1 leaves it to expand's trigger)."""
    sets = [sql.SQL("{} = %({})s").format(sql.Identifier(col), sql.SQL(col)) for col in changes if col != "profile"]
    params: dict[str, Any] = {col: val for col, val in changes.items() if col != "profile"}
    if "profile" in changes:
        sets.append(sql.SQL("profile = profile || %(profile)s"))
        params["profile"] = Jsonb(changes["profile"])
    sets.append(sql.SQL("updated_at = now()"))
    params["id"] = player_id
    query = sql.SQL("UPDATE players SET {} WHERE id = %(id)s RETURNING {}").format(
        sql.SQL(", ").join(sets), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    at_own_writer = rt.writers is not None and rt.writers.dsn_for(home) is not None
    claimed_here = None
    if "handle" in changes and rt.settings.app_generation >= 2:
        if at_own_writer:  # the authority is another database: claim there first (see create_player)
            claimed_here = await _claim_at_authority(rt, changes["handle"], player_id, home)
        else:
            query = sql.SQL(RENAME_WITH_CLAIM).format(update=query)
    try:
        try:
            row, lsn = await _held_while_fenced(rt, lambda: _write_once(rt, home, query, params))
        except BaseException:
            if claimed_here:
                await _release_at_authority(rt, player_id, only=changes["handle"])
            raise
        if claimed_here is not None and row is not None:  # renamed at home: the old name is free again
            await _release_at_authority(rt, player_id, keep=changes["handle"])
        return (row, lsn) if row is not None else (None, None)
    except psycopg.errors.UniqueViolation:
        raise HandleTaken() from None
    except psycopg.OperationalError:
        # Don't retry a write whose outcome is unknown; shed broken connections for the next one.
        task = asyncio.get_running_loop().create_task(_quiet_check(rt.writer))
        _background.add(task)
        task.add_done_callback(_background.discard)
        raise


# The handle authority is handle_claims in the us-east-1 shard (the global writer, WRITER_DSN): every
# home's names, whoever writes its players. After a home's cutover its writer is another database, so a
# sign-up or rename there claims at the authority first, writes the player at home, and releases what it
# no longer needs; a failed write releases the new claim. A crash in between leaves a claim nobody
# holds: the name stays reserved (never given twice) until a sweep frees it.
CLAIM = ("INSERT INTO handle_claims (handle, player_id, home_region) VALUES (%s, %s, %s) "
         "ON CONFLICT (handle) DO NOTHING RETURNING player_id")
HOLDER = "SELECT player_id FROM handle_claims WHERE handle = %s"


async def _claim_at_authority(rt: Runtime, handle: str, player_id: int, home: str) -> bool:
    """Claim `handle` for the player at the authority: True when newly claimed, False when the player
    already held it; HandleTaken when another player does."""
    async with rt.writer.connection() as conn:
        if await (await conn.execute(CLAIM, (handle, player_id, home))).fetchone():
            return True
        holder = await (await conn.execute(HOLDER, (handle,))).fetchone()
    if holder is not None and holder["player_id"] == player_id:
        return False
    raise HandleTaken()


async def _release_at_authority(rt: Runtime, player_id: int, *, only: str | None = None,
                                keep: str | None = None) -> None:
    """Release the player's claim on `only`, or on every name but `keep`; best effort (a name left
    claimed stays reserved, never given twice), logged."""
    try:
        async with rt.writer.connection() as conn:
            if only is not None:
                await conn.execute("DELETE FROM handle_claims WHERE player_id = %s AND handle = %s", (player_id, only))
            else:
                await conn.execute("DELETE FROM handle_claims WHERE player_id = %s AND handle <> %s", (player_id, keep))
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("handle claims of player %s left for the sweep: %s", player_id, exc)


async def _create_at_own_writer(rt: Runtime, handle: str, home: str, fields: dict[str, Any]) -> tuple[dict, str]:
    """Sign-up in a home whose writer is its own (after its cutover): the id from the home's writer, the
    name claimed at the authority, then the player written at home (the claim released if that fails)."""
    pool = await rt.writers.pool(home)
    async with pool.connection() as conn:
        player_id = (await (await conn.execute(sql.SQL("SELECT nextval({}) AS id").format(
            sql.Literal(sequence_name(home))))).fetchone())["id"]
    await _claim_at_authority(rt, handle, player_id, home)
    columns = ["id", "handle", "home_region", *fields]
    values = [player_id, handle, home, *(Jsonb(v) if c == "profile" else v for c, v in fields.items())]
    query = sql.SQL("INSERT INTO players ({}) VALUES ({}) RETURNING {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(sql.Placeholder() * len(values)),
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    try:
        row, lsn = await _held_while_fenced(rt, lambda: _write_once(rt, home, query, tuple(values)))
    except BaseException:
        await _release_at_authority(rt, player_id, only=handle)
        raise
    if row is None:
        raise RuntimeError(f"sign-up of {handle!r} in {home}: the INSERT returned no row")
    return row, lsn


async def create_player(rt: Runtime, handle: str, home: str, fields: dict[str, Any]) -> tuple[dict, str]:
    """Insert a new player homed in `home`, its id from that home's block (app/ids.py), on the writer;
    the row and the LSN after the commit. The handle is claimed at the authority in the same
    statement, so a name held by anyone — a player of any home, or a claim not yet copied — raises
    HandleTaken and nothing is written (expand's sync trigger, while there, finds it claimed). After
    the home's cutover the authority is another database: _create_at_own_writer."""
    if rt.writers is not None and rt.writers.dsn_for(home) is not None:
        try:
            return await _create_at_own_writer(rt, handle, home, fields)
        except psycopg.errors.UniqueViolation:
            raise HandleTaken() from None
    columns = ["handle", "home_region", *fields]
    values = [handle, home, *(Jsonb(v) if c == "profile" else v for c, v in fields.items())]
    query = sql.SQL("WITH created AS (INSERT INTO players (id, {}) VALUES (nextval({}), {}) RETURNING {}), "
                    "claimed AS (INSERT INTO handle_claims (handle, player_id, home_region) "
                    "SELECT handle, id, home_region FROM created) "
                    "SELECT * FROM created").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Literal(sequence_name(home)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    try:
        row, lsn = await _held_while_fenced(rt, lambda: _write_once(rt, home, query, tuple(values)))
    except psycopg.errors.UniqueViolation:
        raise HandleTaken() from None
    if row is None:  # an INSERT … RETURNING that did not raise returns its row; never a silent 201
        raise RuntimeError(f"sign-up of {handle!r} in {home}: the INSERT returned no row")
    return row, lsn


async def _write_once(rt: Runtime, home: str | None, query: sql.Composable,
                      params) -> tuple[dict[str, Any] | None, str]:
    """One attempt of a write on the writer of `home`, resolved at each attempt (a write held through a
    cutover's fence lands on the new writer once routing flips); its token carries the home when that
    writer is the home's own. A failed attempt leaves the pooled connection clean."""
    if rt.writers is not None:
        rt.writers.warm()
    own = rt.writers is not None and rt.writers.dsn_for(home) is not None
    pool = await rt.writers.pool(home) if own else rt.writer
    async with pool.connection() as conn:
        try:
            row, lsn = await _update_in_one_round_trip(conn, query, params)
        except psycopg.Error:
            await _end_failed_transaction(conn)
            raise
    return row, (f"{lsn}@{home}" if own else lsn)


async def _update_in_one_round_trip(conn: psycopg.AsyncConnection, query: sql.Composable,
                                    params: tuple | dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(updated row or None, WAL insert LSN read after the commit), sent as ONE pipeline.

    Before cutover a region far from the writer pays the ocean on every round trip: an UPDATE and then
    a separate read of the position would be two (≈ 2 × 145 ms from Tokyo). The explicit BEGIN/COMMIT
    inside the pipeline make the position read run in its own transaction after the commit record, as
    read-your-writes needs; an error aborts the rest of the pipeline, so nothing is acknowledged."""
    async with conn.pipeline():
        await conn.execute("BEGIN")
        updated = await conn.execute(query, params)
        await conn.execute("COMMIT")
        position = await conn.execute("SELECT pg_current_wal_insert_lsn()::text AS lsn")
    row = await updated.fetchone()
    return row, (await position.fetchone())["lsn"]


async def _end_failed_transaction(conn: psycopg.AsyncConnection) -> None:
    """A failed pipeline leaves the explicit transaction aborted: end it before the pool reuses the
    connection (a broken connection is the pool's to discard)."""
    if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
        return
    try:
        await conn.execute("ROLLBACK")
    except psycopg.Error as exc:
        log.debug("rollback after a failed write: %s", exc)


async def _quiet_check(pool: AsyncConnectionPool) -> None:
    try:
        await pool.check()
    except Exception as exc:  # best effort: the next request reports the outage anyway
        log.debug("pool check failed: %s", exc)
