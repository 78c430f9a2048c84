"""Start, stop and inspect PostgreSQL 15 clusters for the lab and the tests.

PostgreSQL refuses to run as root, so when the caller is root every server-side binary runs as the
`postgres` user, and the data directories are owned by that user."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from migrate.errors import LabError

PG_USER = "postgres"


def pg_bindir() -> Path:
    """The folder holding initdb/pg_ctl/pg_basebackup; raise LabError with install advice if none."""
    override = os.environ.get("MIGRATE_PG_BINDIR")
    candidates = [override] if override else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise LabError("PostgreSQL server binaries (initdb, pg_ctl) not found",
                   hint="install them: apt-get update && apt-get install -y postgresql-15 "
                        "(or set MIGRATE_PG_BINDIR to their folder)")


def binaries_version_num() -> int:
    """server_version_num of the installed binaries, e.g. 150020 for "(PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"."""
    import re

    text = run_pg(["postgres", "--version"]).stdout
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", text)
    if not match:
        raise LabError(f"cannot read the PostgreSQL version from {text.strip()!r}")
    return int(match.group(1)) * 10000 + int(match.group(2) or 0)


def _as_postgres() -> dict:
    """subprocess kwargs that drop to the postgres user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(PG_USER)
    except KeyError as exc:
        raise LabError("running as root but there is no 'postgres' user to run PostgreSQL as",
                       hint="create it: useradd --system postgres") from exc
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
            "cwd": "/"}


def run_pg(args: list[str], *, check: bool = True, timeout: float | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a PostgreSQL binary (name relative to pg_bindir) as the right user and capture output."""
    cmd = [str(pg_bindir() / args[0]), *args[1:]]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                          **_as_postgres())
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LabError(f"{args[0]} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc


def popen_pg(args: list[str], **kwargs) -> subprocess.Popen:
    """Start a PostgreSQL binary as the right user without waiting (for progress polling)."""
    cmd = [str(pg_bindir() / args[0]), *args[1:]]
    return subprocess.Popen(cmd, **_as_postgres(), **kwargs)


def give_to_postgres(path: Path) -> None:
    """Make `path` (a directory we created) owned by the postgres user when we are root."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(0o700)


def ensure_reachable_by_postgres(folder: Path) -> None:
    """PostgreSQL runs as another user: every parent folder must let it through."""
    if os.geteuid() != 0:
        return
    probe = subprocess.run(["test", "-x", str(folder)], **_as_postgres())
    if probe.returncode != 0:
        raise LabError(f"the postgres user cannot reach {folder}",
                       hint="set MIGRATE_LAB_DIR to a folder whose parents are world-executable, "
                            "e.g. /tmp/migrate-lab")


DEFAULT_PORT_RANGE = (20000, 32000)
"""Where lab ports come from: below Linux's ephemeral range (32768-60999). A port the OS hands out
for bind(0) comes from the ephemeral range, and between our closing the probe and a server binding it,
any outgoing connection on the machine (the load generator, the WAN proxy) may take it as its local
port: a lab component then fails to start, now and then. Ports below that range are never handed out
to connections."""
_port_cursor: int | None = None


def port_range() -> tuple[int, int]:
    """The [start, end) range free_port allocates from: MIGRATE_PORT_RANGE ("start-end"; each pytest
    worker gets its own, so parallel labs never meet), else DEFAULT_PORT_RANGE."""
    raw = os.environ.get("MIGRATE_PORT_RANGE", "")
    if not raw:
        return DEFAULT_PORT_RANGE
    start, sep, end = raw.partition("-")
    if not (sep and start.isdigit() and end.isdigit() and 1024 <= int(start) < int(end) <= 65536):
        raise LabError(f"MIGRATE_PORT_RANGE={raw!r} is not a port range",
                       hint="write it as START-END, e.g. 20000-21000 (END exclusive, START >= 1024)")
    return int(start), int(end)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, from port_range(). Each process walks the
    range from its own pid-derived offset, so two processes sharing a range rarely probe alike."""
    global _port_cursor
    start, end = port_range()
    size = end - start
    if _port_cursor is None or not start <= _port_cursor < end:
        _port_cursor = start + (os.getpid() * 7919) % size
    for _ in range(size):
        port, _port_cursor = _port_cursor, start + (_port_cursor + 1 - start) % size
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise LabError(f"no free TCP port on 127.0.0.1 in {start}-{end}",
                   hint="stop old labs (`migrate lab down`) or set MIGRATE_PORT_RANGE to a wider range")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class PgCluster:
    """One PostgreSQL server: its data directory and the loopback port it listens on."""

    datadir: Path  # owned by postgres; removed by `destroy`
    port: int  # TCP port on 127.0.0.1

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    def dsn(self, dbname: str = "postgres", port: int | None = None) -> str:
        """A libpq URL for this server (or for a proxy in front of it when `port` is given)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{port or self.port}/{dbname}"

    def exists(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self, extra_conf: dict[str, str] | None = None) -> None:
        """initdb with trust auth on loopback and settings for physical replication; idempotent."""
        if self.exists():
            return
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        give_to_postgres(self.datadir)
        run_pg(["initdb", "-D", str(self.datadir), "-U", PG_USER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-instructions"], timeout=120)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.datadir}'",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            "wal_keep_size": "'256MB'",
            "fsync": "off",  # lab only: no durability across machine crashes needed, much faster
            # on: with fsync off a commit costs no disk wait, and WAL is flushed (so streamed to
            # standbys) at commit rather than up to wal_writer_delay later — which would add
            # ~200 ms of lab-made replication lag that Aurora does not have.
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "shared_buffers": "'128MB'",
            "max_connections": "100",
        }
        conf.update(extra_conf or {})
        self.write_settings(conf)
        hba = self.datadir / "pg_hba.conf"
        self._write_as_postgres(hba, "host all all 127.0.0.1/32 trust\n"
                                     "host replication all 127.0.0.1/32 trust\n"
                                     "local all all trust\n")

    def require_passwords(self) -> None:
        """TCP connections authenticate with a password (scram-sha-256), as Aurora's do; the local socket
        stays trusted (the lab administers the server through it). Applied at the next start or reload."""
        self._write_as_postgres(self.datadir / "pg_hba.conf", "host all all 127.0.0.1/32 scram-sha-256\n"
                                                               "local all all trust\n")

    def write_settings(self, settings: dict[str, str], filename: str = "lab.conf") -> None:
        """(Re)write a settings file included from postgresql.conf: `lab.conf`, the node's own (its port
        is always written there), or another (e.g. `fence.conf`), which holds only what it is given —
        a copy made by pg_basebackup carries every file, so a port anywhere else would start the copy
        on its source's port."""
        port = f"port = {self.port}\n" if filename == "lab.conf" else ""
        self._write_as_postgres(self.datadir / filename,
                                "".join(f"{k} = {v}\n" for k, v in settings.items()) + port)
        main = self.datadir / "postgresql.conf"
        text = main.read_text()
        line = f"include_if_exists = '{filename}'\n"
        if line not in text:
            self._write_as_postgres(main, text + line)

    def _write_as_postgres(self, path: Path, text: str) -> None:
        path.write_text(text)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def is_running(self) -> bool:
        if not self.exists():
            return False
        return run_pg(["pg_ctl", "status", "-D", str(self.datadir)], check=False).returncode == 0

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections; a no-op when it runs."""
        if self.is_running():
            return
        if not self.logfile.exists():
            self._write_as_postgres(self.logfile, "")
        run_pg(["pg_ctl", "start", "-w", "-t", str(int(timeout)), "-D", str(self.datadir),
                "-l", str(self.logfile)], timeout=timeout + 10)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise LabError(f"PostgreSQL on port {self.port} did not open its port",
                               hint=f"see {self.logfile}")
            time.sleep(0.1)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server; a no-op when it is not running."""
        if not self.is_running():
            return
        run_pg(["pg_ctl", "stop", "-w", "-t", str(int(timeout)), "-m", mode,
                "-D", str(self.datadir)], timeout=timeout + 10)

    def destroy(self) -> None:
        """Stop the server and remove its data directory and log; idempotent."""
        if self.exists():
            self.stop(mode="immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
        self.logfile.unlink(missing_ok=True)

    def server_version_num(self) -> int:
        """e.g. 150020: the version of the binaries that run this cluster."""
        return binaries_version_num()


@contextlib.contextmanager
def primary_and_standby(root: Path, settings: dict[str, str],
                        prepare: Callable[[PgCluster], None] = lambda _primary: None) -> Iterator[tuple[PgCluster, PgCluster]]:
    """A primary with `settings`, made ready by `prepare` (databases, schema, rows), and a streaming hot
    standby copied from it by pg_basebackup with the same settings, both started on free ports under
    `root`; both destroyed at the end. Its promotion stands for Aurora's detach in the tests and benches."""
    primary, standby = PgCluster(root / "primary", free_port()), PgCluster(root / "standby", free_port())
    try:
        primary.init(settings)
        primary.start()
        prepare(primary)
        give_to_postgres(standby.datadir)
        run_pg(["pg_basebackup", "-D", str(standby.datadir), "-h", "127.0.0.1", "-p", str(primary.port),
                "-U", PG_USER, "-R", "-X", "stream", "-c", "fast"], timeout=120)
        # the copy carries the primary's lab.conf (its port among them): the standby's own, rewritten
        standby.write_settings({"listen_addresses": "'127.0.0.1'", "unix_socket_directories": f"'{standby.datadir}'",
                                "hot_standby": "on", "fsync": "off", "max_wal_senders": "10",
                                "max_replication_slots": "10", **settings})
        standby.start()
        yield primary, standby
    finally:
        standby.destroy()
        primary.destroy()
