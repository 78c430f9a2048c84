"""LabGlobalDatabase against real PostgreSQL 15 processes: a seeded primary, standbys built with
pg_basebackup through a stand-in WAN link (a plain TCP forwarder defined here), real replication."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from migrate.errors import ProviderError, TransientProviderError
from migrate.lab.pg import PgCluster, free_port, give_to_postgres, popen_pg
from migrate.lab.seed import seed_players
from migrate.lab.topology import REGIONS, SOURCE_REGION, LabTopology
from migrate.providers.lab import LabGlobalDatabase
from migrate.providers.lab.global_database import basebackups_into, slot_name
from tests.conftest import reachable_tmpdir

pytestmark = pytest.mark.lab

AP, EU = "ap-northeast-1", "eu-central-1"
PLAYERS = 3000


class Forwarder:
    """A loopback TCP forwarder to the primary: stands in for the WAN proxy, counts connections and
    can slow every forwarded chunk (`delay` seconds) so that a copy is still running when we act."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.delay = 0.0
        self.connections = 0
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._open.discard(s)
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for s in list(self._open):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture(scope="module")
def own_lab():
    """A lab of our own (not the session `lab`): its WAN links are forwarders this module controls."""
    root = reachable_tmpdir("migrate-gdb-test-")
    lab_dir = root / "lab"
    ports = {region: free_port() for region in REGIONS}
    primary = PgCluster(lab_dir / "pg" / SOURCE_REGION, ports[SOURCE_REGION])
    primary.init()
    primary.start()
    forwarders = {region: Forwarder(ports[SOURCE_REGION]) for region in (AP, EU)}
    topology = LabTopology(lab_dir=lab_dir, pg_ports=ports,
                           wan_ports={f"{r}->{SOURCE_REGION}:pg": f.port for r, f in forwarders.items()},
                           wan_control_port=free_port(), players=PLAYERS)
    try:
        seed_players(primary.dsn(), PLAYERS)
        yield SimpleNamespace(topology=topology, primary=primary, fwd=forwarders,
                              gdb=LabGlobalDatabase(topology, checksum_wait_timeout=20))
    finally:
        for region in (AP, EU):
            topology.pg(region).destroy()
        primary.destroy()
        for f in forwarders.values():
            f.close()
        shutil.rmtree(root, ignore_errors=True)


def noop(*_args) -> None:
    pass


def sql(dsn: str, query: str, params=()):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def wait_caught_up(gdb: LabGlobalDatabase, region: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        lag = gdb.replication_lag(region)
        if lag.state == "streaming" and lag.lag_bytes == 0:
            return lag
        assert time.monotonic() < deadline, f"{region} never caught up: {lag}"
        time.sleep(0.1)


def wait_until(cond, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def partial_of(cluster: PgCluster) -> Path:
    return cluster.datadir.with_name(cluster.datadir.name + ".partial")


def checksum_all(gdb: LabGlobalDatabase, region: str, chunk: int = 1000):
    lo, hi = gdb.key_range("players")
    return [gdb.checksum_chunk(region, "players", a, min(a + chunk, hi)) for a in range(lo, hi, chunk)]


def test_attach_end_to_end_rollback_and_attach_again(own_lab):
    gdb, topo, fwd = own_lab.gdb, own_lab.topology, own_lab.fwd[AP]
    sec = topo.pg(AP)
    writer = own_lab.primary.dsn()
    facts = gdb.secondary_facts(AP)
    assert (facts.exists, facts.running, facts.slot_name) == (False, False, "migrate_ap_northeast_1")
    assert facts.engine_version_num == gdb.primary_facts().server_version_num
    assert facts.free_disk_bytes > 0

    for attempt in (1, 2):
        assert not gdb.replication_reserved(AP)
        reserved = gdb.reserve_replication(AP)
        assert gdb.replication_reserved(AP)
        assert reserved["slot"] == slot_name(AP) and reserved["restart_lsn"]
        assert gdb.reserve_replication(AP)["slot"] == reserved["slot"]  # idempotent
        assert slot_name(AP) in gdb.primary_facts().slots

        calls: list[tuple[int, int | None]] = []
        before = fwd.connections
        created = gdb.create_secondary(AP, lambda d, t: calls.append((d, t)), noop)
        assert created["reused"] is False and sec.exists() and not partial_of(sec).exists()
        assert fwd.connections > before  # the copy came through the WAN link
        assert calls[0] == (0, None) and calls[-1][0] == calls[-1][1] > 0
        lab_conf = (sec.datadir / "lab.conf").read_text()
        assert f"port = {sec.port}\n" in lab_conf and f"port={fwd.port} " in lab_conf
        assert f"port = {own_lab.primary.port}" not in lab_conf
        assert "primary_conninfo" not in (sec.datadir / "postgresql.auto.conf").read_text()

        started = gdb.start_secondary(AP)
        assert started["endpoint"] == sec.dsn() and gdb.secondary_facts(AP).running
        assert gdb.start_secondary(AP)["endpoint"] == sec.dsn()  # idempotent

        players = PLAYERS + 100 * attempt  # writes after the copy: updates and new players
        sql(writer, "UPDATE players SET coins = coins + 1, updated_at = now() WHERE id %% 7 = 0")
        seed_players(writer, players)
        lag = wait_caught_up(gdb, AP)
        assert lag.lag_seconds == 0 and lag.replay_lsn
        assert sql(sec.dsn(), "SELECT count(*), pg_is_in_recovery() FROM players") == [(players, True)]

        sums = checksum_all(gdb, AP)
        assert all(c.matches for c in sums), [c for c in sums if not c.matches]
        assert sum(c.writer_rows for c in sums) == players and len(sums) == 4

        endpoint = gdb.route_reads_to_secondary(AP)
        assert endpoint == sec.dsn() == gdb.reader_endpoint(AP)
        assert sql(endpoint, "SELECT pg_is_in_recovery()") == [(True,)]

        # Rollback: reads back to the writer (through the link), stop, delete, release.
        back = gdb.route_reads_to_writer(AP)
        assert gdb.reader_endpoint(AP) == back and f":{fwd.port}/" in back
        assert sql(back, "SELECT pg_is_in_recovery()") == [(False,)]
        gdb.stop_secondary(AP)
        assert gdb.replication_lag(AP).state == "stopped"
        gdb.stop_secondary(AP)
        gdb.delete_secondary(AP)
        assert gdb.replication_lag(AP).state == "absent"
        gdb.delete_secondary(AP)
        gdb.release_replication(AP)
        gdb.release_replication(AP)
        assert not gdb.replication_reserved(AP)
        assert not sec.datadir.exists() and not partial_of(sec).exists() and not sec.logfile.exists()
        assert slot_name(AP) not in gdb.primary_facts().slots
        assert not gdb.secondary_facts(AP).exists


def test_create_secondary_is_idempotent_and_replaces_a_crashed_copy(own_lab):
    gdb, topo, fwd = own_lab.gdb, own_lab.topology, own_lab.fwd[EU]
    sec, partial = topo.pg(EU), partial_of(topo.pg(EU))
    gdb.reserve_replication(EU)
    try:
        # A run killed mid-copy leaves .partial behind with its pg_basebackup still running (a
        # SIGKILLed parent does not take its children along); slow the link so it stays mid-copy.
        fwd.delay = 0.05
        give_to_postgres(partial)
        orphan = popen_pg(["pg_basebackup", "-h", "127.0.0.1", "-p", str(fwd.port), "-U", "postgres",
                           "-D", str(partial), "-X", "stream", "-S", slot_name(EU), "-c", "fast"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: (partial / "base").exists(), what="the orphan copy to start writing")
        fwd.delay = 0.0

        created = gdb.create_secondary(EU, noop, noop)
        assert orphan.wait(timeout=10) != 0  # killed, not finished
        assert created["reused"] is False and sec.exists() and not partial.exists()
        assert not basebackups_into(partial)

        connections = fwd.connections
        again = gdb.create_secondary(EU, noop, noop)
        assert again["reused"] is True and fwd.connections == connections  # nothing copied again

        gdb.start_secondary(EU)
        wait_caught_up(gdb, EU)
        # A write still crossing a slow link: behind in bytes, and the time lag is known, not None.
        fwd.delay = 0.3
        with psycopg.connect(own_lab.primary.dsn(), autocommit=True) as conn:
            conn.execute("SET synchronous_commit = on")  # flushed at commit, so the writer's LSN moves
            conn.execute("UPDATE players SET level = level WHERE id = 1")
        lag = gdb.replication_lag(EU)
        fwd.delay = 0.0
        assert lag.state == "streaming" and lag.lag_bytes > 0
        assert lag.lag_seconds is not None and lag.lag_seconds > 0
        # Checksums taken while players keep writing (synchronously committed, like the app's
        # acknowledged writes) still converge on a match within the retries.
        stop = threading.Event()

        def play() -> None:
            with psycopg.connect(own_lab.primary.dsn(), autocommit=True) as conn:
                conn.execute("SET synchronous_commit = on")
                rng = random.Random(7)
                while not stop.is_set():
                    conn.execute("UPDATE players SET xp = xp + 1 WHERE id = %s", (rng.randint(1, PLAYERS),))
                    time.sleep(0.002)

        player = threading.Thread(target=play, daemon=True)
        player.start()
        try:
            sums = checksum_all(gdb, EU)
        finally:
            stop.set()
            player.join()
        assert all(c.matches for c in sums), [(c.lo, c.attempts) for c in sums]
    finally:
        fwd.delay = 0.0
        gdb.delete_secondary(EU)
        gdb.release_replication(EU)


def test_checkpoint_raising_kills_the_copy(own_lab):
    gdb, topo, fwd = own_lab.gdb, own_lab.topology, own_lab.fwd[EU]
    sec, partial = topo.pg(EU), partial_of(topo.pg(EU))

    class Abort(Exception):
        pass

    seen_running: list[int] = []
    calls = 0

    def checkpoint() -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            seen_running.extend(basebackups_into(partial))
            raise Abort

    gdb.reserve_replication(EU)
    try:
        fwd.delay = 0.05
        with pytest.raises(Abort):
            gdb.create_secondary(EU, noop, checkpoint)
        fwd.delay = 0.0
        assert seen_running  # the copy was under way when the checkpoint raised
        assert not basebackups_into(partial) and not partial.exists() and not sec.exists()
        wait_until(lambda: sql(own_lab.primary.dsn(), "SELECT active FROM pg_replication_slots "
                                                  "WHERE slot_name = %s", (slot_name(EU),)) == [(False,)],
                   what="the copy's walsender to go away")
        assert gdb.create_secondary(EU, noop, noop)["reused"] is False and sec.exists()
    finally:
        fwd.delay = 0.0
        gdb.delete_secondary(EU)
        gdb.release_replication(EU)


def test_a_diverged_row_is_reported_as_a_mismatch(own_lab):
    """Corrupt one tuple in the standby's heap file (what a storage fault or a replication bug would
    leave): replication itself never repairs it, and the chunk holding it must mismatch."""
    gdb, topo = own_lab.gdb, own_lab.topology
    writer, sec = own_lab.primary.dsn(), topo.pg(EU)
    sql(writer, "VACUUM (FREEZE) players")  # nothing will rewrite the target page later
    gdb.reserve_replication(EU)
    try:
        gdb.create_secondary(EU, noop, noop)
        gdb.start_secondary(EU)
        target = 1500
        handle = sql(writer, "SELECT handle FROM players WHERE id = %s", (target,))[0][0]
        relpath = sql(writer, "SELECT pg_relation_filepath('players')")[0][0]
        # Restart point after the last change: replay on restart must not rewrite the page.
        sql(writer, "CHECKPOINT")
        lsn = sql(writer, "SELECT pg_current_wal_lsn()::text")[0][0]
        wait_until(lambda: sql(sec.dsn(), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0],
                   what="the checkpoint to be replayed")
        sql(sec.dsn(), "CHECKPOINT")
        gdb.stop_secondary(EU)

        heap = sec.datadir / relpath
        data = heap.read_bytes()
        assert data.count(handle.encode()) == 1
        heap.write_bytes(data.replace(handle.encode(), handle.upper().encode()))
        gdb.start_secondary(EU)
        assert sql(sec.dsn(), "SELECT handle FROM players WHERE id = %s", (target,)) == [(handle.upper(),)]

        bad = gdb.checksum_chunk(EU, "players", 1001, 2001)
        assert not bad.matches and bad.attempts == 5
        assert bad.writer_rows == bad.secondary_rows == 1000 and bad.writer_digest != bad.secondary_digest
        assert gdb.checksum_chunk(EU, "players", 1, 1001).matches

        # Releasing while the standby still streams cuts its walsender and drops the slot.
        gdb.release_replication(EU)
        assert slot_name(EU) not in gdb.primary_facts().slots
    finally:
        gdb.delete_secondary(EU)
        gdb.release_replication(EU)


def test_absent_secondary_and_refusals(own_lab):
    gdb = own_lab.gdb
    assert gdb.replication_lag(EU).state == "absent"
    assert gdb.replication_lag(EU).lag_bytes is None
    assert gdb.reader_endpoint(EU) is None  # the file may hold other regions, never routed here
    with pytest.raises(ProviderError, match="eu-central-1: start secondary"):
        gdb.start_secondary(EU)
    with pytest.raises(ProviderError, match="does not exist on the writer") as exc:
        gdb.create_secondary(EU, noop, noop)
    assert "reserve" in exc.value.hint
    with pytest.raises(ProviderError, match="holds the writer"):
        gdb.delete_secondary(SOURCE_REGION)
    assert gdb.key_range("players")[0] == 1


def test_primary_facts_and_a_writer_that_is_down(own_lab):
    gdb = own_lab.gdb
    facts = gdb.primary_facts()
    assert facts.reachable and facts.wal_level == "replica" and facts.server_version.startswith("15")
    assert facts.server_version_num // 10000 == 15 and facts.database_bytes > 0
    assert facts.max_wal_senders == 10 and facts.wal_senders_in_use == 0
    own_lab.primary.stop()
    try:
        down = gdb.primary_facts()
        assert down.reachable is False and str(own_lab.primary.port) in down.detail
        with pytest.raises(TransientProviderError, match="eu-central-1: reserve replication"):
            gdb.reserve_replication(EU)
    finally:
        own_lab.primary.start()
