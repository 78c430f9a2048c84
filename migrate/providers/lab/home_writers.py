"""HomeWriters in the lab: a region's own writer for the players it homes (cutover, DESIGN §5, §9).

- The future writer is a separate PostgreSQL in the region (`topology.home_pg(region)`, beside the
  region's replica of the origin, which keeps serving the other homes' reads), built like a
  secondary: pg_basebackup from the origin through the region's WAN link, then a physical standby on
  slot `home_<region>`. Before it starts it gets `wal_level = logical` (it will publish the reverse
  stream; a restart-only setting, so set ahead of time) and a fence on every home but its own.
- Fences are the expand schema's sequences (e008, `providers/home_fence.py`): its trigger refuses
  writes to a fenced home's rows (SQLSTATE 25006), even in an open transaction at its next row. A
  standby cannot setval(), so the staged copy is fenced for the other homes by the setting
  `game.fenced_homes` in its `fence.conf` (read by the same trigger); it comes out of promotion
  fenced for every home (its own by the origin's sequence, replayed), and promote hands it its own
  home last, after setting the others' sequences.
- Barrier: once the origin's fence is read by every new statement, LOCK TABLE players IN SHARE MODE
  (lock_timeout 2 s) waits for every transaction that wrote players before the fence, twice; a
  transaction that still holds it after that is ended. Only then is the marker LSN read.
- Promotion: pg_promote(wait) and a check that recovery ended; the origin's slot for the copy is
  dropped (it would keep WAL forever).
- The reverse stream: publication `home_<region>` of that home's rows on the new writer (the row
  filter's column is in players' replica identity, expand e008: checked first), subscription of the
  same name on the origin through the WAN link, `copy_data = false` (the origin holds every row up
  to the marker). Its apply bypasses the origin's fence (session_replication_role = replica).
- Routing: `writers-<region>.json` per region (WRITERS_FILE of that region's app): home → the home
  writer's DSN as that region reaches it (direct in its own region, the WAN link elsewhere)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

import psycopg

from migrate.errors import ProviderError, TransientProviderError
from migrate.lab.pg import PgCluster, ensure_reachable_by_postgres, give_to_postgres
from migrate.lab.topology import HOME_WRITER_REGIONS, REGIONS, SOURCE_REGION, LabTopology
from migrate.providers import home_writer_sql as sql
from migrate.providers.home_fence import fenced_homes, set_fenced
from migrate.providers.home_writer_sql import stream_name
from migrate.providers.lab.global_database import LabGlobalDatabase, _kill_basebackups_into, lab_errors
from migrate.providers.protocols import CheckpointFn, ProgressFn

WHERE = "lab home writers"
ORIGIN = "origin"
FENCE_FILE = "fence.conf"
INCARNATION_FILE = "migrate-incarnation"  # which staging made this copy (in the writers' DSNs)
DATABASE = "postgres"  # the lab's players live in the default database
REPLAY_POLL_S = 0.01
# The shard's secondaries are off the players' path: their copies must not compete with the players for
# this machine. At full speed through the WAN proxy (≈40 MB/s each, two at once) a 1M-player demo pushed
# EU's p95 over Frankfurt's cutover to 145 ms, over its baseline + 20 (144 ms); at 8 MB/s each, still
# through the proxy, NA's to 72 ms (baseline 41 + 20): the players' gate failed the phase both times.
SHARD_COPY_MAX_RATE = "16M"
STAGE_CATCH_UP_S = 600.0  # a freshly copied standby replaying what was written during its copy


class _CopyStopped(Exception):
    """A shard secondary's copy told to stop because the step is stopping (abort, fault, error)."""


def shard_slot(region: str) -> str:
    """The home writer's physical slot for its shard's secondary in `region`."""
    return "shard_" + region.replace("-", "_")


def slot_name(region: str) -> str:
    return "home_" + region.replace("-", "_")


class LabHomeWriters:
    def __init__(self, topology: LabTopology, *, poll_interval: float = 0.1) -> None:
        self.t = topology
        self.poll_interval = poll_interval
        self._copier = LabGlobalDatabase(topology)

    # ---- helpers -------------------------------------------------------------------------------

    def _home(self, region: str, operation: str) -> PgCluster:
        if region not in HOME_WRITER_REGIONS:
            raise ProviderError(f"{region}: {operation}: not a region a cutover can give a writer",
                                where=WHERE, hint="one of " + ", ".join(HOME_WRITER_REGIONS))
        return self.t.home_pg(region)

    def _cluster(self, database: str) -> PgCluster:
        return self.t.primary() if database == ORIGIN else self._home(database, "fence")

    @staticmethod
    def _connect(dsn: str) -> psycopg.Connection:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)

    def _errors(self, region: str, operation: str):
        return lab_errors(f"{region}: {operation}", WHERE)

    def _wait(self, condition, what: str, timeout: float, checkpoint: CheckpointFn | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if checkpoint is not None:
                checkpoint()
            if time.monotonic() > deadline:
                raise TransientProviderError(f"timed out after {timeout:g} s waiting for {what}", where=WHERE)
            time.sleep(self.poll_interval)

    # ---- staging -------------------------------------------------------------------------------

    def stage(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict[str, Any]:
        """The region's future writer as a running standby of the origin (logical decoding on, fenced
        for every other home); idempotent: a finished copy is reused, a partial one redone."""
        home = self._home(region, "stage writer")
        slot = slot_name(region)
        with self._errors(region, "stage writer"):
            self._reserve_slot(self.t.primary().dsn(), slot)
            reused = home.exists()
            if not reused:
                partial = self._fresh_partial(home)
                wan = self.t.wan_port(region, SOURCE_REGION)
                total = self._copier._copy(region, wan, slot, partial, progress, checkpoint)
                self._copier._configure_standby(f"{region}-home", home, partial, wan, slot)
                staged = PgCluster(partial, home.port)
                settings = self._settings(staged)
                # No apply workers: the copy inherits the origin's subscriptions (another home's reverse
                # stream after an earlier cutover); started here, one would consume that home's slot.
                settings.update({"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10",
                                 "max_logical_replication_workers": "0"})
                staged.write_settings(settings)
                others = ",".join(h for h in REGIONS if h != region)
                staged.write_settings({"game.fenced_homes": f"'{others}'"}, filename=FENCE_FILE)
                (partial / INCARNATION_FILE).write_text(uuid.uuid4().hex[:12] + "\n")
                os.rename(partial, home.datadir)
                progress(total, total)
            if not home.is_running():
                home.start()
        # Caught up before the fence, not after it: a standby just started still connects through the
        # link and replays what it missed (≈ 0.5 s in the lab), time the home's held writes would wait.
        if not self.is_writer(region):
            with self._errors(region, "stage writer"), self._connect(self.t.primary().dsn()) as conn:
                now = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            self.wait_replayed(region, now, STAGE_CATCH_UP_S, checkpoint)
        return {"datadir": str(home.datadir), "port": home.port, "slot": slot, "reused": reused}

    @staticmethod
    def _settings(cluster: PgCluster) -> dict[str, str]:
        path = cluster.datadir / "lab.conf"
        settings: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() != "port":
                    settings[key.strip()] = value.strip()
        return settings

    def _reserve_slot(self, dsn: str, slot: str) -> None:
        """A physical slot `slot` on the server at `dsn`, WAL reserved from now (a copy's standby starts from it); idempotent."""
        with self._connect(dsn) as conn:
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateObject):
                    conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))

    @staticmethod
    def _drop_partial(node: PgCluster) -> Path:
        """A crashed run's half copy into `node` gone (its pg_basebackup killed first); the folder's path."""
        partial = node.datadir.with_name(node.datadir.name + ".partial")
        _kill_basebackups_into(partial)
        shutil.rmtree(partial, ignore_errors=True)
        return partial

    def _fresh_partial(self, node: PgCluster) -> Path:
        """An empty folder, owned by postgres, for a new copy into `node` (renamed into place once done)."""
        partial = self._drop_partial(node)
        node.datadir.parent.mkdir(parents=True, exist_ok=True)
        ensure_reachable_by_postgres(node.datadir.parent)
        give_to_postgres(partial)
        return partial

    def logical_decoding_ready(self, region: str) -> tuple[bool, str]:
        self._home(region, "logical decoding")
        return True, "the lab's staged writer starts with wal_level = logical (the origin decodes nothing)"

    def staged(self, region: str) -> bool:
        return self._home(region, "staged").exists()

    def replay_lsn(self, region: str) -> str | None:
        """The staged writer's replayed position (None when it is not a running standby)."""
        home = self._home(region, "replay position")
        if not home.exists() or not home.is_running():
            return None
        with self._errors(region, "replay position"), self._connect(home.dsn()) as conn:
            return conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0]

    def discard(self, region: str) -> None:
        """Stop and remove the region's future (or promoted) writer, its shard's secondaries and the origin's
        slot for it; idempotent."""
        home = self._home(region, "discard writer")
        self.remove_shard_secondaries(region)
        with self._errors(region, "discard writer"):
            self._drop_partial(home)
            home.destroy()
            self._drop_origin_slot(region)

    def _drop_origin_slot(self, region: str) -> None:
        slot = slot_name(region)
        with self._connect(self.t.primary().dsn()) as conn:
            deadline = time.monotonic() + 15
            while True:
                row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                                   (slot,)).fetchone()
                if row is None:
                    return
                if row[0] is None or time.monotonic() > deadline:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    return
                conn.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))
                time.sleep(self.poll_interval)

    # ---- the shard's secondaries ------------------------------------------------------------------

    def add_shard_secondaries(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict[str, Any]:
        """A physical standby of the region's home writer in every other region (pg_basebackup through that
        region's link to it, slot `shard_<other>` on the writer, as attach-secondary builds the origin's),
        and every other region's apps told where it is ("reader:<home>" in their WRITERS_FILE: a read with a
        token of the home's writer is served there once it has replayed it). Idempotent."""
        home = self._home(region, "shard secondaries")
        if not self.is_writer(region):
            raise ProviderError(f"{region}: shard secondaries: its home writer is not promoted", where=WHERE,
                                hint="promote it first (the cutover's promote step)")
        others = [o for o in REGIONS if o != region]
        # Copied side by side: each copy mostly waits on its link's round trips, not on this machine.
        stop = threading.Event()

        def worker_checkpoint() -> None:
            if stop.is_set():
                raise _CopyStopped()
        with ThreadPoolExecutor(max_workers=len(others), thread_name_prefix="shard-copy") as pool:
            copies = [pool.submit(self._shard_secondary, region, other, worker_checkpoint) for other in others]
            try:
                while not all(copy.done() for copy in copies):
                    checkpoint()  # an abort or a fault lands here, in the step's own thread
                    progress(sum(copy.done() for copy in copies), len(others))
                    time.sleep(self.poll_interval)
            except BaseException:
                stop.set()  # each copy cleans up its partial folder as it stops
                futures_wait(copies)
                raise
            made = [copy.result() for copy in copies]
        progress(len(others), len(others))
        with self._errors(region, "shard secondaries"):
            with self._connect(home.dsn()) as conn:
                now = sql.current_lsn(conn)
            for other in others:
                self._wait_standby(self.t.shard_pg(region, other), now, f"{region}'s shard secondary in {other}",
                                   STAGE_CATCH_UP_S, checkpoint)
            self._set_shard_readers(region, on=True)
        return {"secondaries": made, "caught_up_to": now}

    def _shard_secondary(self, region: str, other: str, checkpoint: CheckpointFn) -> str:
        """`region`'s shard secondary in `other`, copied (unless a finished copy exists) and running."""
        home = self.t.home_pg(region)
        node, slot, wan = self.t.shard_pg(region, other), shard_slot(other), self.t.home_wan_port(other, region)
        with self._errors(region, f"shard secondary in {other}"):
            self._reserve_slot(home.dsn(), slot)
            if not node.exists():
                partial = self._fresh_partial(node)
                # The bulk copy reads the writer directly: the lab's one WAN proxy process also carries every
                # player's requests, and 290 MB through its event loop delays them, which separate regions'
                # networks would not. The standby then streams through the region's link (primary_conninfo).
                self._copier._copy(f"{region}-shard-{other}", home.port, slot, partial, lambda done, total: None,
                                   checkpoint, max_rate=SHARD_COPY_MAX_RATE)
                self._copier._configure_standby(f"{region}-shard-{other}", node, partial, wan, slot)
                os.rename(partial, node.datadir)
            if not node.is_running():
                node.start()
        return f"{node.datadir.name} (port {node.port})"

    def _wait_standby(self, node: PgCluster, lsn: str, what: str, timeout: float, checkpoint: CheckpointFn) -> None:
        with self._connect(node.dsn()) as conn:
            self._wait(lambda: bool(conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                                 (lsn,)).fetchone()[0]),
                       f"{what} to replay {lsn}", timeout, checkpoint)

    def remove_shard_secondaries(self, region: str) -> None:
        """The region's shard secondaries stopped and removed, the apps told first, the writer's slots dropped; idempotent."""
        home = self._home(region, "remove shard secondaries")
        with self._errors(region, "remove shard secondaries"):
            self._set_shard_readers(region, on=False)
            for other in REGIONS:
                if other == region:
                    continue
                node = self.t.shard_pg(region, other)
                self._drop_partial(node)
                node.destroy()
                if home.exists() and home.is_running():
                    with self._connect(home.dsn()) as conn:
                        if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                        (shard_slot(other),)).fetchone():
                            conn.execute("SELECT pg_drop_replication_slot(%s)", (shard_slot(other),))

    def _set_shard_readers(self, region: str, on: bool) -> None:
        """"reader:<region>" → the local shard secondary in every other region's WRITERS_FILE (or removed)."""
        for app_region in REGIONS:
            if app_region == region:
                continue
            node = self.t.shard_pg(region, app_region)
            # named by its copy, as the writer's DSN is: a later cutover makes another at the same address
            dsn = f"{node.dsn()}?application_name=game-shard-{self._incarnation(node)}" if on else ""
            self._edit_routes(app_region, lambda routes, dsn=dsn: (
                routes.__setitem__(f"reader:{region}", dsn) if on else routes.pop(f"reader:{region}", None)))

    # ---- fences ------------------------------------------------------------------------------------

    def fenced(self, database: str) -> set[str]:
        """The homes fenced on `database` ("origin" or a region's home writer): its fence sequences and setting."""
        with self._errors(database, "read fences"), self._connect(self._cluster(database).dsn()) as conn:
            return fenced_homes(conn)

    def set_fence(self, database: str, home: str, on: bool) -> None:
        """Fence (or unfence) `home` on `database`: its fence sequence, which the next row written there
        reads (setval() is not transactional: nothing to reload or wait for); idempotent."""
        with self._errors(database, f"{'fence' if on else 'unfence'} {home}"), \
                self._connect(self._cluster(database).dsn()) as conn:
            set_fenced(conn, home, on)

    def barrier(self, database: str, home: str) -> dict[str, Any]:
        """Wait out, on `database`, every transaction that wrote players before its fence: LOCK TABLE players
        IN SHARE MODE twice (each waits for every earlier writer), ending what still blocks it."""
        with self._errors(database, f"barrier for {home}"), self._connect(self._cluster(database).dsn()) as conn:
            return sql.barrier(conn, WHERE, f"{database}: barrier for {home}")

    # ---- catch-up and promotion ------------------------------------------------------------------

    def marker_lsn(self) -> str:
        """The origin's WAL position now (read after the barrier: every fenced-home write is below it),
        flushed: one committed transaction id forces the flush, so the standby gets it at once instead
        of after the WAL writer's next round (up to wal_writer_delay)."""
        with self._errors(ORIGIN, "marker LSN"), self._connect(self.t.primary().dsn()) as conn:
            marker = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            with conn.transaction():
                conn.execute("SELECT pg_current_xact_id()")  # a commit record, flushed at commit
            return marker

    def wait_replayed(self, region: str, lsn: str, timeout: float, checkpoint: CheckpointFn) -> None:
        home = self._home(region, "wait for replay")
        with self._errors(region, f"wait for replay of {lsn}"), self._connect(home.dsn()) as conn:
            deadline = time.monotonic() + timeout
            while not conn.execute("SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                   (lsn,)).fetchone()[0]:
                checkpoint()
                if time.monotonic() > deadline:
                    raise TransientProviderError(f"{region}: {lsn} not replayed after {timeout:g} s", where=WHERE)
                time.sleep(REPLAY_POLL_S)  # the home's writes are held meanwhile: poll closely

    def is_writer(self, region: str) -> bool:
        home = self._home(region, "is writer")
        if not home.exists() or not home.is_running():
            return False
        with self._errors(region, "is writer"), self._connect(home.dsn()) as conn:
            return not sql.in_recovery(conn)

    def writer_reachable(self, region: str) -> tuple[bool, str]:
        """Whether the home writer answers as a writer where the rest of the world reaches it: through
        us-east-1's link (a region whose links are all cut runs on, unreachable: lost all the same)."""
        home = self._home(region, "reach writer")
        if not home.exists():
            return False, f"{region} has no home writer"
        dsn = home.dsn(port=self.t.home_wan_port(SOURCE_REGION, region))
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
                conn.execute("SET statement_timeout = '3s'")
                in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        except psycopg.Error as exc:
            return False, f"{region}'s home writer does not answer through {SOURCE_REGION}'s link: " + \
                str(exc).strip().splitlines()[0]
        if in_recovery:
            return False, f"{region}'s home writer answers but is a standby"
        return True, f"{region}'s home writer answers through {SOURCE_REGION}'s link"

    def abandon_reverse_stream(self, region: str) -> dict[str, Any]:
        """On the origin only: how far the reverse stream had brought the home (the lost writer's position it
        last applied, and its newest write of the home's rows), then the subscription dropped without
        touching the lost writer's slot; idempotent (a second call finds no subscription: its figure then
        is only the newest write)."""
        with self._errors(region, "abandon reverse stream"), self._connect(self.t.primary().dsn()) as conn:
            return sql.abandon_subscription(conn, region)

    def recent_writes(self, database: str, home: str, since: float) -> dict[int, float]:
        """player id → updated_at (epoch seconds) of `home`'s rows on `database` written at or after `since`."""
        with self._errors(home, f"recent writes on {database}"), self._connect(self._cluster(database).dsn()) as conn:
            return sql.recent_writes(conn, home, since)

    def promote(self, region: str) -> dict[str, Any]:
        """Promote the staged writer and confirm it left recovery; hand it its home (fenced for the others,
        its own unfenced); drop the origin's slot for it. Idempotent."""
        home = self._home(region, "promote")
        promoting_from = time.time()  # it can take no write before this (a standby refuses every write)
        with self._errors(region, "promote"):
            with self._connect(home.dsn()) as conn:
                if sql.in_recovery(conn):
                    if not conn.execute("SELECT pg_promote(true, 60)").fetchone()[0]:
                        raise TransientProviderError(f"{region}: promote: still in recovery after 60 s", where=WHERE)
                if sql.in_recovery(conn):
                    raise ProviderError(f"{region}: promote: pg_promote returned but recovery did not end",
                                        where=WHERE)
                timeline = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()[0]
                inherited = sql.drop_inherited_subscriptions(conn)
                sql.hand_over(conn, region)
            self._drop_origin_slot(region)
        return {"timeline": timeline, "promoting_from": promoting_from, "inherited_subscriptions_dropped": inherited}

    # ---- the reverse stream ------------------------------------------------------------------------

    def filter_in_replica_identity(self, region: str) -> tuple[bool, str]:
        """(ok, why): players' replica identity on `region`'s writer covers home_region (the row filter's
        column); PostgreSQL 15 would accept a bad filter and then fail every UPDATE on the publisher."""
        home = self._home(region, "replica identity")
        with self._errors(region, "replica identity"), self._connect(home.dsn()) as conn:
            return sql.filter_in_replica_identity(conn)

    def prepare_reverse_stream(self, region: str) -> dict[str, Any]:
        """On the home's writer, the publication of its rows and the logical slot the origin will read:
        from the slot on, the writer keeps every change for the origin (local, fast: done before routing
        flips, while the home's writes are held). Idempotent."""
        home = self._home(region, "reverse stream")
        ok, why = self.filter_in_replica_identity(region)
        if not ok:
            raise ProviderError(f"{region}: reverse stream: {why}", where=WHERE,
                                hint="apply expand-schema first (e005: players' replica identity)")
        with self._errors(region, "reverse stream"), self._connect(home.dsn()) as conn:
            return sql.prepare_publication(conn, region)

    def start_reverse_stream(self, region: str) -> dict[str, Any]:
        """The home's rows streamed from its writer back to the origin, from the slot on; idempotent."""
        prepared = self.prepare_reverse_stream(region)
        source = (f"host=127.0.0.1 port={self.t.home_wan_port(SOURCE_REGION, region)} "
                  f"user=postgres dbname={DATABASE} connect_timeout=10")
        with self._errors(region, "reverse stream"), self._connect(self.t.primary().dsn()) as conn:
            sql.subscribe(conn, region, source)
        return {**prepared, "subscription": stream_name(region)}

    def reverse_stream(self, region: str) -> dict[str, Any] | None:
        """The stream's state (None when there is no subscription): whether it streams, and its lag in bytes."""
        with self._errors(region, "reverse stream state"):
            with self._connect(self.t.primary().dsn()) as conn:
                state = sql.subscription_state(conn, region)
            if state is None:
                return None
            lag = None
            home = self.t.home_pg(region)
            if home.exists() and home.is_running():
                with self._connect(home.dsn()) as conn:
                    lag = sql.slot_lag_bytes(conn, region)
        return {"enabled": state[0], "streaming": state[1], "lag_bytes": lag}

    def drain_reverse_stream(self, region: str, timeout: float, checkpoint: CheckpointFn) -> str:
        """Wait until the origin has confirmed everything the home's writer has written; that position."""
        home = self._home(region, "drain reverse stream")
        with self._errors(region, "drain reverse stream"):
            with self._connect(home.dsn()) as conn:
                target = sql.current_lsn(conn)

            def drained() -> bool:
                with self._connect(home.dsn()) as probe:
                    done = sql.confirmed(probe, region, target)
                if done is None:
                    raise ProviderError(f"{region}: drain reverse stream: no slot {stream_name(region)} on the "
                                        f"home writer", where=WHERE)
                return done
            self._wait(drained, f"the origin to confirm {region}'s writes up to {target}", timeout, checkpoint)
        return target

    def stop_reverse_stream(self, region: str) -> None:
        """Drop the subscription (and with it the slot on the home writer) and the publication; idempotent."""
        home = self.t.home_pg(region)
        with self._errors(region, "stop reverse stream"):
            alive = home.exists() and home.is_running()
            with self._connect(self.t.primary().dsn()) as conn:
                sql.drop_subscription(conn, region, publisher_alive=alive)
            if alive:
                with self._connect(home.dsn()) as conn:
                    sql.drop_publication(conn, region)

    # ---- routing -----------------------------------------------------------------------------------

    def _set_route(self, region: str, key: str, on: bool) -> None:
        """`key` → the home writer's DSN as each region reaches it (direct at home, the WAN link elsewhere)
        in every region's WRITERS_FILE, or removed; each file replaced atomically."""
        home = self._home(region, "route writes")
        # The DSN names this copy of the writer (a rollback removes it; the next cutover stages another at
        # the same address): an app's pool to the old one must not serve the new one.
        incarnation = f"?application_name=game-home-{self._incarnation(home)}" if on else ""
        for app_region in REGIONS:
            dsn = (home.dsn() if app_region == region else home.dsn(port=self.t.home_wan_port(app_region, region)))
            self._edit_routes(app_region, lambda routes, dsn=dsn: (
                routes.__setitem__(key, dsn + incarnation) if on else routes.pop(key, None)))

    def _edit_routes(self, app_region: str, edit) -> None:
        """`edit` applied to `app_region`'s WRITERS_FILE, which is replaced atomically."""
        path = self.t.writers_file(app_region)
        routes = json.loads(path.read_text()) if path.exists() else {}
        edit(routes)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(routes, indent=2, sort_keys=True))
        os.replace(tmp, path)

    @staticmethod
    def _incarnation(home: PgCluster) -> str:
        """An id of this copy of the home writer, made when it was staged (a file in its data directory)."""
        path = home.datadir / INCARNATION_FILE
        if not path.exists():
            raise ProviderError(f"{home.datadir}: no {INCARNATION_FILE}: not staged by this tool", where=WHERE,
                                hint="roll the cutover back and run it again")
        return path.read_text().strip()

    def warm_writes(self, region: str, on: bool) -> None:
        """Every region's apps open connections to the home's future writer ahead of routing (or stop)."""
        with self._errors(region, "warm writes"):
            self._set_route(region, f"warm:{region}", on)

    def route_writes(self, region: str, to_home_writer: bool) -> None:
        """Every region's apps send `region`'s home writes to its own writer (or back to the origin)."""
        with self._errors(region, "route writes"):
            self._set_route(region, region, to_home_writer)

    def writes_routed(self, region: str) -> dict[str, bool]:
        """app region → whether its app sends `region`'s home writes to the home writer."""
        return {r: region in (json.loads(self.t.writers_file(r).read_text()) if self.t.writers_file(r).exists() else {})
                for r in REGIONS}
