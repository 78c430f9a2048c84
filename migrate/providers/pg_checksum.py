"""Checksum one key range of a table on a PostgreSQL writer and on one of its physical standbys.

Shared by the lab and AWS adapters: it needs only two libpq DSNs and superuser-ish rights on the
reader (pg_wal_replay_pause / pg_wal_replay_resume).

What "at one LSN" means here, honestly:

1. On the writer, a REPEATABLE READ transaction runs `SELECT pg_current_wal_insert_lsn()` as its
   first statement. The transaction's snapshot is taken at the start of that statement, so every
   commit visible in the snapshot has its commit record below the LSN L that the statement returns
   (L is moved back over an empty WAL page header, see `_before_page_header`).
2. At once, one empty transaction is committed synchronously on the writer (a second session). It
   flushes the writer's WAL, so the standby receives a stream that ends just past L instead of
   racing through a large asynchronous-commit batch beyond it. This is the only write this module
   makes: one transaction id per attempt, no rows.
3. On the reader, a DO block waits server-side until `pg_last_wal_replay_lsn() >= L` and calls
   `pg_wal_replay_pause()` (no client round trip in between), we wait for the pause to take effect,
   compute count and digest of the range, and resume replay, always.
4. The writer's count and digest are computed in the snapshot of step 1.

The two sides are therefore *not* guaranteed to be the same instant: replay stops at some L' >= L,
so a transaction that committed between the writer's snapshot and L' is seen by the reader only;
and the writer's snapshot visibility order is not exactly WAL commit order. These only cause *false
mismatches* on ranges written concurrently; a match always means the reader held exactly the rows
the writer's snapshot held. So a mismatch is retried with a fresh snapshot, up to `attempts` times,
and a range still mismatching after that is returned as such (the caller decides: retry later, or
report divergence). `ChunkChecksum.lsn` is the writer's L of the last attempt.

Measured in the lab (20k rows, 2,000-row chunks, random single-row updates from one client): with
synchronous commit, 7,000-10,000 updates/s matched every chunk within 5 attempts; with asynchronous
commit, ~400 updates/s matched 8-9 chunks in 10, and 13,000 updates/s mostly did not (the standby
then lags and replays buffered WAL in bursts that run far past L before the pause lands).

While the reader is paused its own readers see data frozen at L' for the duration of one digest
query; checksum one chunk per standby at a time (the pause is per server)."""

from __future__ import annotations

import re
import time

import psycopg
from psycopg import sql

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.protocols import ChunkChecksum

_SHORT_PAGE_HEADER, _LONG_PAGE_HEADER = 24, 40  # MAXALIGNed XLog page header sizes (64-bit builds)
# Row text must not depend on the session: both sides render timestamps the same way.
_SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=1"


def _connect(dsn: str, *, autocommit: bool, connect_timeout: float) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=max(1, int(connect_timeout)),
                           options=_SESSION_OPTIONS)


def _digest_query(table: str, key: str) -> sql.Composed:
    # md5 of each row's text, concatenated in key order, hashed again: any changed, missing or extra
    # row changes the digest; an empty range gives ''.
    return sql.SQL(
        "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY t.{key})), '') "
        "FROM {table} AS t WHERE t.{key} >= %s AND t.{key} < %s"
    ).format(table=sql.Identifier(*table.split(".")), key=sql.Identifier(key))


def _wait_for(cond, timeout: float, what: str, poll: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TransientProviderError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def _lsn_int(lsn: str) -> int:
    hi, lo = lsn.split("/")
    return int(hi, 16) << 32 | int(lo, 16)


def _before_page_header(lsn: str, block: int, segment: int) -> str:
    """The insert position just past an empty page's header, moved back to the page boundary.

    Right after a WAL segment switch (every pg_basebackup ends with one) or a record ending exactly
    at a page end, the insert LSN points past a page header that no record fills yet, while a
    standby's replay LSN stops at the boundary: it would wait for the next unrelated record. No
    record ends inside a page header, so the boundary is as good a bound for the snapshot's commits."""
    value = _lsn_int(lsn)
    if value % segment == _LONG_PAGE_HEADER:
        value -= _LONG_PAGE_HEADER
    elif value % block == _SHORT_PAGE_HEADER:
        value -= _SHORT_PAGE_HEADER
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


_LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")

# Waits on the reader itself (no client round trip between "replayed up to L" and "pause") for at
# most one round, then requests the pause. A standby catching up replays a millisecond's sleep worth
# of backlog (tens of KB, hundreds of commits) at once, so within SPIN_BYTES of L it polls without
# sleeping, for at most SPIN_MS (L may be late: a slow link), so that replay stops a few records
# past L.
_SPIN_BYTES = 256 * 1024
_SPIN_MS = 200
_WAIT_AND_PAUSE = """
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '{ms} milliseconds';
    spin_until timestamptz;
    behind numeric;
BEGIN
    LOOP
        behind := pg_wal_lsn_diff('{lsn}'::pg_lsn, coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn));
        EXIT WHEN behind <= 0;
        IF clock_timestamp() > deadline THEN
            RETURN;
        END IF;
        IF behind <= {spin_bytes} AND spin_until IS NULL THEN
            spin_until := clock_timestamp() + interval '{spin_ms} milliseconds';
        END IF;
        IF spin_until IS NULL OR clock_timestamp() > spin_until THEN
            PERFORM pg_sleep(0.001);
        END IF;
    END LOOP;
    PERFORM pg_wal_replay_pause();
END $$"""


def _open_writer_snapshot(conn: psycopg.Connection) -> str:
    """Begin the REPEATABLE READ transaction whose snapshot is compared; returns its LSN L."""
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    # First statement of the transaction: the snapshot is taken as it starts, the LSN inside it.
    lsn, block, segment = conn.execute(
        "SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::int,"
        " pg_size_bytes(current_setting('wal_segment_size'))").fetchone()
    return _before_page_header(lsn, block, segment)


def _pause_reader_at(conn: psycopg.Connection, lsn: str, wait_timeout: float, nudge) -> None:
    """Return once the reader has replayed up to `lsn` and its replay is paused."""
    if not _LSN.match(lsn):
        raise ProviderError(f"unexpected LSN {lsn!r} from the writer")
    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        raise ProviderError("the reader is not a standby (not in recovery): cannot pause it at an LSN")
    deadline = time.monotonic() + wait_timeout
    while True:
        round_ms = int(max(1.0, min(1000.0, (deadline - time.monotonic()) * 1000)))
        conn.execute(_WAIT_AND_PAUSE.format(ms=round_ms, lsn=lsn, spin_bytes=_SPIN_BYTES,
                                               spin_ms=_SPIN_MS).encode())
        if conn.execute("SELECT pg_get_wal_replay_pause_state() <> 'not paused'").fetchone()[0]:
            break
        if time.monotonic() > deadline:
            raise TransientProviderError(f"timed out after {wait_timeout:g} s waiting for the reader "
                                         f"to replay up to {lsn}")
        nudge()  # cheap insurance: whatever held WAL below L back, flush once more
    _wait_for(lambda: conn.execute("SELECT pg_get_wal_replay_pause_state() = 'paused'").fetchone()[0],
              wait_timeout, "replay to pause on the reader", poll=0.002)


def _one_attempt(writer: psycopg.Connection, reader: psycopg.Connection, table: str, key: str,
                 lo: int, hi: int, wait_timeout: float, nudge) -> tuple[str, int, str, int, str]:
    query = _digest_query(table, key)
    try:
        lsn = _open_writer_snapshot(writer)
        # Flush the writer's WAL now: the standby then receives a stream that ends just past L and
        # stops there, instead of racing through a large asynchronous-commit batch beyond it.
        nudge()
        try:
            _pause_reader_at(reader, lsn, wait_timeout, nudge)
            r_rows, r_digest = reader.execute(query, (lo, hi)).fetchone()
        finally:
            try:
                reader.execute("SELECT pg_wal_replay_resume()")
            except psycopg.Error:
                pass  # the connection broke; a restarted standby is not paused (pause is not persistent)
        # The writer's snapshot is still the one taken with L: digest it after the reader resumed,
        # so the reader is paused only for its own digest.
        w_rows, w_digest = writer.execute(query, (lo, hi)).fetchone()
    finally:
        writer.rollback()
    return lsn, w_rows, w_digest, r_rows, r_digest


def checksum_range_at_one_lsn(writer_dsn: str, reader_dsn: str, table: str, key: str, lo: int, hi: int,
                              attempts: int = 5, *, wait_timeout: float = 30.0,
                              connect_timeout: float = 5.0) -> ChunkChecksum:
    """Rows lo <= key < hi digested on the writer and on the paused reader at (about) one LSN.

    Retries a mismatch with a fresh snapshot up to `attempts` times, then returns the mismatch.
    Raises TransientProviderError when a side cannot be reached or the reader does not reach the
    writer's LSN within `wait_timeout` seconds, ProviderError for anything else."""
    result: ChunkChecksum | None = None
    try:
        with _connect(reader_dsn, autocommit=True, connect_timeout=connect_timeout) as reader, \
                _connect(writer_dsn, autocommit=False, connect_timeout=connect_timeout) as writer, \
                _connect(writer_dsn, autocommit=False, connect_timeout=connect_timeout) as flusher:
            def nudge() -> None:
                flusher.execute("SET LOCAL synchronous_commit = on")
                flusher.execute("SELECT pg_current_xact_id()")  # an xid, hence a commit record to flush
                flusher.commit()

            for attempt in range(1, max(1, attempts) + 1):
                lsn, w_rows, w_digest, r_rows, r_digest = _one_attempt(
                    writer, reader, table, key, lo, hi, wait_timeout, nudge)
                result = ChunkChecksum(table=table, lo=lo, hi=hi, lsn=lsn, writer_rows=w_rows,
                                       secondary_rows=r_rows, writer_digest=w_digest,
                                       secondary_digest=r_digest, attempts=attempt)
                if result.matches:
                    break
    except ProviderError as exc:
        raise type(exc)(f"checksum of {table} [{lo}, {hi}): {exc.message}") from exc
    except psycopg.OperationalError as exc:
        raise TransientProviderError(f"checksum of {table} [{lo}, {hi}): {_one_line(exc)}") from exc
    except psycopg.Error as exc:
        raise ProviderError(f"checksum of {table} [{lo}, {hi}): {_one_line(exc)}") from exc
    assert result is not None
    return result


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
