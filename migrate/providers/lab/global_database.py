"""The lab's Aurora Global Database: the us-east-1 PostgreSQL primary and, per region, a physical
standby seeded by pg_basebackup and streaming from the primary through that region's WAN link.

Everything acts on real processes and folders described by a LabTopology:
- writer: `topology.primary()`; the region's secondary: `topology.pg(region)`, whose copy is first
  built in `<datadir>.partial` and renamed into place only once complete and configured, so a
  data directory with PG_VERSION is always a finished copy;
- replication slot `migrate_<region with underscores>` on the writer keeps WAL for the region;
- readers: `topology.readers_file` (region → DSN the region's app reads from).

Vendor failures leave this module as ProviderError / TransientProviderError (connection problems
and timeouts are transient), each one line naming the region and the operation."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator

import psycopg
from psycopg import sql

from migrate.errors import LabError, ProviderError, TransientProviderError
from migrate.lab.pg import (PG_USER, PgCluster, binaries_version_num, ensure_reachable_by_postgres,
                            give_to_postgres, popen_pg)
from migrate.lab.topology import SOURCE_REGION, LabTopology
from migrate.providers.pg_checksum import checksum_range_at_one_lsn
from migrate.providers.protocols import (CheckpointFn, ChunkChecksum, PrimaryFacts, ProgressFn,
                                         ReplicationLag, SecondaryFacts)

WHERE = "lab global database"
KEY_COLUMN = "id"
# Settings that belong to one node, not to the cluster: pg_basebackup copies the writer's values
# (DESIGN §9), so they are removed from the copied postgresql.auto.conf and set in lab.conf.
_PER_NODE = ("port", "unix_socket_directories", "primary_conninfo", "primary_slot_name", "hot_standby")
_PROGRESS = re.compile(rb"(\d+)/(\d+) kB")
_TRANSIENT_TEXT = ("could not connect", "connection refused", "timeout", "timed out",
                   "server closed the connection", "could not receive", "could not send",
                   "connection reset", "terminating connection")


def slot_name(region: str) -> str:
    """The writer's replication slot that keeps WAL for `region`."""
    return f"migrate_{region.replace('-', '_')}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _write_owned(path: Path, text: str) -> None:
    """Write a file inside a data directory, owned by the postgres user like the rest of it."""
    path.write_text(text)
    if os.geteuid() == 0:
        shutil.chown(path, PG_USER, PG_USER)


def basebackups_into(folder: Path) -> list[int]:
    """pids of pg_basebackup processes (and their WAL-streaming children) writing into `folder`."""
    target = str(folder).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pg_basebackup") and target in argv:
            pids.append(int(entry))
    return pids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has stopped copying


def _kill_basebackups_into(folder: Path, timeout: float = 10.0) -> None:
    """Kill copies left running by a crashed run (a SIGKILLed migrate does not take its child along)."""
    pids = basebackups_into(folder)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


class _StderrProgress(threading.Thread):
    """Reads pg_basebackup's `-P` reports ("12345/67890 kB (18%), ...") and keeps the last lines."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.done: int = 0
        self.total: int | None = None
        self.tail: deque[str] = deque(maxlen=4)

    def run(self) -> None:
        pending = b""
        while chunk := self.stream.read1(4096):
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            for line in lines:
                self._line(line)
        self._line(pending)

    def _line(self, line: bytes) -> None:
        match = _PROGRESS.search(line)
        if match:
            self.done, self.total = int(match[1]) * 1024, int(match[2]) * 1024
        elif line.strip():
            self.tail.append(line.decode(errors="replace").strip())


@contextlib.contextmanager
def lab_errors(prefix: str, where: str) -> Iterator[None]:
    """Turn vendor failures into the project's errors, one line starting with `prefix` (region and
    operation); connection trouble and timeouts are transient. Shared by the lab's database adapters."""
    try:
        yield
    except LabError as exc:  # other project errors (an abort from a checkpoint) pass untouched
        raise ProviderError(f"{prefix}: {exc.message}", hint=exc.hint, where=where) from exc
    except psycopg.OperationalError as exc:
        raise TransientProviderError(f"{prefix}: {_one_line(exc)}", where=where) from exc
    except psycopg.Error as exc:
        raise ProviderError(f"{prefix}: {_one_line(exc)}", where=where) from exc
    except subprocess.TimeoutExpired as exc:
        raise TransientProviderError(f"{prefix}: {_one_line(exc)}", where=where) from exc
    except OSError as exc:
        raise ProviderError(f"{prefix}: {_one_line(exc)}", where=where) from exc


class LabGlobalDatabase:
    """GlobalDatabase on the lab's PostgreSQL processes (see the module docstring)."""

    def __init__(self, topology: LabTopology, *, connect_timeout: float = 5.0,
                 checksum_wait_timeout: float = 30.0, poll_interval: float = 0.2) -> None:
        self.topology = topology
        self.connect_timeout = connect_timeout  # seconds to open a connection before it is transient
        self.checksum_wait_timeout = checksum_wait_timeout  # how long a standby may take to reach an LSN
        self.poll_interval = poll_interval  # progress/checkpoint period during long copies
        self._region_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- helpers -------------------------------------------------------------------------------

    def _writer(self) -> PgCluster:
        return self.topology.primary()

    def _secondary(self, region: str, operation: str) -> PgCluster:
        if region == SOURCE_REGION:
            raise ProviderError(f"{region}: {operation}: {region} holds the writer, not a secondary",
                                where=WHERE)
        if region not in self.topology.pg_ports:
            raise ProviderError(f"{region}: {operation}: region not in the lab topology", where=WHERE,
                                hint=f"known regions: {', '.join(sorted(self.topology.pg_ports))}")
        return self.topology.pg(region)

    def _partial(self, cluster: PgCluster) -> Path:
        return cluster.datadir.with_name(cluster.datadir.name + ".partial")

    def _wan_port(self, region: str, operation: str) -> int:
        try:
            return self.topology.wan_port(region, SOURCE_REGION)
        except KeyError:
            raise ProviderError(f"{region}: {operation}: no WAN link from {region} to {SOURCE_REGION}",
                                where=WHERE) from None

    def _connect(self, dsn: str) -> psycopg.Connection:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)))

    def _writer_conn(self) -> psycopg.Connection:
        return self._connect(self._writer().dsn())

    def _errors(self, region: str, operation: str):
        return lab_errors(f"{region}: {operation}", WHERE)

    def _region_lock(self, region: str) -> threading.Lock:
        with self._locks_guard:
            return self._region_locks.setdefault(region, threading.Lock())

    # ---- facts ---------------------------------------------------------------------------------

    def primary_facts(self) -> PrimaryFacts:
        writer = self._writer()
        try:
            with self._connect(writer.dsn()) as conn:
                row = conn.execute(
                    "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
                    " current_setting('wal_level'), current_setting('max_wal_senders')::int,"
                    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'),"
                    " (SELECT coalesce(array_agg(slot_name::text ORDER BY slot_name), '{}')"
                    "  FROM pg_replication_slots),"
                    " (SELECT sum(pg_database_size(oid))::bigint FROM pg_database)").fetchone()
        except Exception as exc:  # never raises: unreachable is a fact, not a failure
            return PrimaryFacts(reachable=False,
                                detail=f"{SOURCE_REGION} writer on 127.0.0.1:{writer.port}: {_one_line(exc)}")
        version = row[0].split()[0]
        return PrimaryFacts(reachable=True, detail=f"PostgreSQL {version} on 127.0.0.1:{writer.port}",
                            server_version=version, server_version_num=row[1], wal_level=row[2],
                            max_wal_senders=row[3], wal_senders_in_use=int(row[4]), slots=tuple(row[5]),
                            database_bytes=int(row[6] or 0))

    def secondary_facts(self, region: str) -> SecondaryFacts:
        sec = self._secondary(region, "secondary facts")
        with self._errors(region, "secondary facts"):
            exists = sec.exists()
            running = exists and sec.is_running()
            version = binaries_version_num()
            where = sec.datadir
            while not where.exists() and where != where.parent:
                where = where.parent
            free = shutil.disk_usage(where).free
        return SecondaryFacts(region=region, exists=exists, running=running, engine_version_num=version,
                              free_disk_bytes=free, slot_name=slot_name(region))

    # ---- replication slot ----------------------------------------------------------------------

    def reserve_replication(self, region: str) -> dict:
        self._secondary(region, "reserve replication")
        slot = slot_name(region)
        query = "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s"
        with self._errors(region, f"reserve replication slot {slot}"), self._writer_conn() as conn:
            row = conn.execute(query, (slot,)).fetchone()
            if row is None:
                with contextlib.suppress(psycopg.errors.DuplicateObject):  # a concurrent reserve won
                    conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
                row = conn.execute(query, (slot,)).fetchone()
        return {"slot": slot, "restart_lsn": row[0] if row else None}

    def replication_reserved(self, region: str) -> bool:
        self._secondary(region, "replication reserved")
        slot = slot_name(region)
        with self._errors(region, f"look up replication slot {slot}"), self._writer_conn() as conn:
            return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                (slot,)).fetchone() is not None

    def release_replication(self, region: str) -> None:
        self._secondary(region, "release replication")
        slot = slot_name(region)
        deadline = time.monotonic() + 15
        with self._errors(region, f"release replication slot {slot}"), self._writer_conn() as conn:
            while True:
                row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                                   (slot,)).fetchone()
                if row is None:
                    return
                if row[0] is not None:
                    # A running standby (or copy) holds the slot: cut its walsender; it retries only
                    # after wal_retrieve_retry_interval, which leaves time to drop the slot.
                    conn.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))
                try:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    return
                except psycopg.errors.UndefinedObject:
                    return
                except psycopg.errors.ObjectInUse:
                    if time.monotonic() > deadline:
                        raise ProviderError(f"{region}: release replication slot {slot}: still in use by a "
                                            "reconnecting standby", where=WHERE,
                                            hint=f"stop the {region} secondary first") from None
                    time.sleep(0.1)

    # ---- the copy ------------------------------------------------------------------------------

    def create_secondary(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        sec = self._secondary(region, "create secondary")
        slot = slot_name(region)
        outputs = {"datadir": str(sec.datadir), "slot": slot, "port": sec.port}
        if sec.exists():  # only ever renamed into place complete and configured
            return {**outputs, "reused": True}
        operation = "create secondary"
        partial = self._partial(sec)
        wan = self._wan_port(region, operation)
        with self._errors(region, operation):
            with self._writer_conn() as conn:
                found = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                     (slot,)).fetchone()
            if not found:
                raise ProviderError(f"{region}: {operation}: replication slot {slot} does not exist on the "
                                    "writer", hint="reserve replication for the region first", where=WHERE)
            # A leftover from a crash mid-copy (maybe with its pg_basebackup still running): start over.
            _kill_basebackups_into(partial)
            self._free_slot(slot)
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(sec.datadir, ignore_errors=True)  # never complete without PG_VERSION
            sec.datadir.parent.mkdir(parents=True, exist_ok=True)
            ensure_reachable_by_postgres(sec.datadir.parent)
            give_to_postgres(partial)
            total = self._copy(region, wan, slot, partial, progress, checkpoint)
            self._configure_standby(region, sec, partial, wan, slot)
            os.rename(partial, sec.datadir)  # atomic: the copy appears complete or not at all
        progress(total, total)
        return {**outputs, "bytes": total, "reused": False}

    def _copy(self, region: str, wan: int, slot: str, partial: Path, progress: ProgressFn,
              checkpoint: CheckpointFn, *, max_rate: str | None = None) -> int:
        """Run pg_basebackup through the WAN link into `partial` (at most `max_rate`, pg_basebackup's
        --max-rate, e.g. "10M" per second; None: as fast as it goes); returns the bytes copied."""
        args = ["pg_basebackup", "-h", "127.0.0.1", "-p", str(wan), "-U", PG_USER, "-D", str(partial),
                "-X", "stream", "-S", slot, "-c", "fast", "-P", "--write-recovery-conf", "--no-password",
                *(["--max-rate", max_rate] if max_rate else [])]
        env = {**os.environ, "PGAPPNAME": f"migrate-basebackup-{region}", "PGCONNECT_TIMEOUT": "10"}
        # Its own process group: killing the group also takes the WAL-streaming child it forks.
        proc = popen_pg(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                        env=env, start_new_session=True)
        reader = _StderrProgress(proc.stderr)
        reader.start()
        try:
            progress(0, None)
            while True:
                checkpoint()
                if reader.total:
                    progress(min(reader.done, reader.total), reader.total)
                try:
                    proc.wait(timeout=self.poll_interval)
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:  # abort, fault injection, Ctrl-C: leave no copy running behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            _kill_basebackups_into(partial)
            reader.join(timeout=2)
            shutil.rmtree(partial, ignore_errors=True)
            raise
        reader.join(timeout=5)
        if proc.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            detail = " | ".join(reader.tail) or f"exit {proc.returncode}"
            error = (TransientProviderError if any(t in detail.lower() for t in _TRANSIENT_TEXT)
                     else ProviderError)
            raise error(f"{region}: create secondary: pg_basebackup through 127.0.0.1:{wan} failed: {detail}",
                        where=WHERE)
        return reader.total or sum(f.stat().st_size for f in partial.rglob("*") if f.is_file())

    def _configure_standby(self, region: str, sec: PgCluster, folder: Path, wan: int, slot: str) -> None:
        """Replace the writer's per-node settings copied by pg_basebackup with this standby's own."""
        settings: dict[str, str] = {}
        lab_conf = folder / "lab.conf"
        if lab_conf.exists():
            for line in lab_conf.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not key.strip().startswith("#"):
                    settings[key.strip()] = value.strip()
        for key in _PER_NODE:
            settings.pop(key, None)
        settings.update({
            "unix_socket_directories": f"'{sec.datadir}'",
            "primary_conninfo": f"'host=127.0.0.1 port={wan} user={PG_USER} application_name={region} "
                                f"connect_timeout=10'",
            "primary_slot_name": f"'{slot}'",
            "hot_standby": "on",
        })
        PgCluster(folder, sec.port).write_settings(settings)  # also writes `port`
        # postgresql.auto.conf is read after lab.conf and would win: drop the copied per-node lines
        # (pg_basebackup -R wrote the WAN conninfo there; ALTER SYSTEM may have put the writer's port).
        auto = folder / "postgresql.auto.conf"
        if auto.exists():
            kept = [line for line in auto.read_text().splitlines(keepends=True)
                    if line.partition("=")[0].strip() not in _PER_NODE]
            _write_owned(auto, "".join(kept))
        if not (folder / "standby.signal").exists():
            _write_owned(folder / "standby.signal", "")

    def _free_slot(self, slot: str, timeout: float = 10.0) -> None:
        """Cut a walsender still holding `slot` for a dead copy; it lingers until it notices the
        client is gone (through a proxy, possibly only at its next write). No standby can hold the
        slot here: its region has no data directory."""
        with self._writer_conn() as conn:
            deadline = time.monotonic() + timeout
            while True:
                row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                                   (slot,)).fetchone()
                if row is None or row[0] is None or time.monotonic() > deadline:
                    return
                conn.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))

    def delete_secondary(self, region: str) -> None:
        sec = self._secondary(region, "delete secondary")
        partial = self._partial(sec)
        with self._errors(region, "delete secondary"):
            _kill_basebackups_into(partial)
            shutil.rmtree(partial, ignore_errors=True)
            sec.destroy()

    # ---- the standby process -------------------------------------------------------------------

    def start_secondary(self, region: str) -> dict:
        sec = self._secondary(region, "start secondary")
        if not sec.exists():
            raise ProviderError(f"{region}: start secondary: there is no copy at {sec.datadir}",
                                hint="create the secondary first", where=WHERE)
        with self._errors(region, "start secondary"):
            sec.start()
            with self._connect(sec.dsn()) as conn:
                # A run killed mid-checksum may have left replay paused on a standby that kept running.
                conn.execute("SELECT pg_wal_replay_resume() WHERE pg_is_in_recovery()"
                             " AND pg_get_wal_replay_pause_state() <> 'not paused'")
        return {"endpoint": sec.dsn(), "port": sec.port, "datadir": str(sec.datadir)}

    def stop_secondary(self, region: str) -> None:
        sec = self._secondary(region, "stop secondary")
        with self._errors(region, "stop secondary"):
            if sec.exists():
                sec.stop(mode="fast")

    def replication_lag(self, region: str) -> ReplicationLag:
        sec = self._secondary(region, "replication lag")
        with self._errors(region, "replication lag"):
            if not sec.exists():
                return ReplicationLag(region, "absent", None, None)
            if not sec.is_running():
                return ReplicationLag(region, "stopped", None, None)
            with self._connect(sec.dsn()) as conn:
                in_recovery, replay_lsn, since_commit = conn.execute(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
                    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8").fetchone()
            if not in_recovery:
                raise ProviderError(f"{region}: replication lag: the secondary is not in recovery "
                                    "(promoted?)", where=WHERE)
            try:
                with self._writer_conn() as conn:
                    writer_lsn, diff, sender_state, replay_lag = conn.execute(
                        "SELECT pg_current_wal_lsn()::text,"
                        " pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint, s.state,"
                        " extract(epoch FROM s.replay_lag)::float8"
                        " FROM (SELECT 1) AS one LEFT JOIN LATERAL ("
                        "  SELECT state, replay_lag FROM pg_stat_replication WHERE application_name = %s"
                        "  ORDER BY backend_start DESC LIMIT 1) AS s ON true",
                        (replay_lsn or "0/0", region)).fetchone()
            except psycopg.OperationalError:
                # The standby runs but the writer cannot be asked: unknown lag, not an error.
                return ReplicationLag(region, "catchup", None, None, replay_lsn)
        lag_bytes = max(0, int(diff)) if replay_lsn else None
        if lag_bytes == 0:
            lag_seconds: float | None = 0.0
        elif replay_lag is not None:
            # The walsender's own measure: how long WAL took from flush on the writer to replay.
            lag_seconds = max(0.0, replay_lag)
        else:
            # No recent sample: the walsender shows none once the standby has been caught up for a
            # while, so a record now in flight leaves the time unknown. Measure it: how long the
            # standby takes to replay what the writer had when we looked (bounded wait).
            lag_seconds = self._time_to_replay(sec, writer_lsn)
            if lag_seconds is None and since_commit is not None:
                lag_seconds = max(0.0, since_commit)
        # No walsender row: the standby is (re)connecting through the WAN; it is behind, not stopped.
        state = "streaming" if sender_state == "streaming" else "catchup"
        return ReplicationLag(region, state, lag_bytes, lag_seconds, replay_lsn)

    def _time_to_replay(self, sec: PgCluster, lsn: str, limit: float = 2.0) -> float | None:
        """Seconds until `sec` has replayed up to `lsn` (an upper bound of its lag), None past `limit`."""
        started = time.monotonic()
        with self._connect(sec.dsn()) as conn:
            while time.monotonic() - started < limit:
                if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                    return round(time.monotonic() - started, 3)
                time.sleep(0.01)
        return None

    # ---- data verification ---------------------------------------------------------------------

    def key_range(self, table: str) -> tuple[int, int]:
        query = sql.SQL("SELECT min({k}), max({k}) FROM {t}").format(
            k=sql.Identifier(KEY_COLUMN), t=sql.Identifier(*table.split(".")))
        with self._errors(SOURCE_REGION, f"key range of {table}"), self._writer_conn() as conn:
            lo, hi = conn.execute(query).fetchone()
        return (0, 0) if lo is None else (int(lo), int(hi) + 1)

    def chunk_end(self, table: str, start: int, rows: int) -> int | None:
        query = sql.SQL("SELECT {k} FROM {t} WHERE {k} >= %s ORDER BY {k} OFFSET %s LIMIT 1").format(
            k=sql.Identifier(KEY_COLUMN), t=sql.Identifier(*table.split(".")))
        with self._errors(SOURCE_REGION, f"chunk end in {table}"), self._writer_conn() as conn:
            row = conn.execute(query, (start, rows)).fetchone()
        return None if row is None else int(row[0])

    def checksum_chunk(self, region: str, table: str, lo: int, hi: int) -> ChunkChecksum:
        sec = self._secondary(region, "checksum")
        # The reader is paused during a digest: one chunk per standby at a time.
        with self._region_lock(region):
            try:
                return checksum_range_at_one_lsn(self._writer().dsn(), sec.dsn(), table, KEY_COLUMN, lo, hi,
                                                 wait_timeout=self.checksum_wait_timeout,
                                                 connect_timeout=self.connect_timeout)
            except ProviderError as exc:
                raise type(exc)(f"{region}: {exc.message}", hint=exc.hint, where=WHERE) from exc

    # ---- where the region's readers read -------------------------------------------------------

    def route_reads_to_secondary(self, region: str) -> str:
        dsn = self._secondary(region, "route reads to secondary").dsn()
        with self._errors(region, "route reads to secondary"):
            self._set_reader(region, dsn)
        return dsn

    def route_reads_to_writer(self, region: str) -> str:
        writer = self._writer()
        port = writer.port if region == SOURCE_REGION else self._wan_port(region, "route reads to writer")
        dsn = writer.dsn(port=port)  # across the region's WAN link, as its app would connect
        with self._errors(region, "route reads to writer"):
            self._set_reader(region, dsn)
        return dsn

    def reader_endpoint(self, region: str) -> str | None:
        path = self.topology.readers_file
        with self._errors(region, "reader endpoint"):
            if not path.exists():
                return None
            try:
                readers = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ProviderError(f"{region}: reader endpoint: {path} is not JSON: {exc}",
                                    where=WHERE) from exc
        return readers.get(region)

    def _set_reader(self, region: str, dsn: str) -> None:
        """Read-modify-write of the readers file under a lock, replaced atomically (temp + rename)."""
        path = self.topology.readers_file
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            readers = json.loads(path.read_text()) if path.exists() else {}
            readers[region] = dsn
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(readers, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
