"""Detached lab processes: each one has a name, a pidfile `<lab>/<name>.pid` and a log `<lab>/<name>.log`.

A process is started in its own session (so it outlives the command that started it, and a stop can
signal its whole process group), its pid is written at once, and the start returns only when it is
ready (its port accepts connections and, optionally, a readiness probe passes). Stopping sends
SIGTERM to the group, then SIGKILL after a grace period.

Pidfiles hold "<pid> <start time>" (start time in clock ticks since boot, from /proc/<pid>/stat), so a
pid the kernel reused for an unrelated process is never taken for ours; a bare "<pid>" (as the WAN
proxy writes its own pidfile) is accepted too. A zombie counts as dead: a CLI that started a process
exits, the orphan is re-parented to an init that may never reap it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from migrate.errors import LabError
from migrate.lab.pg import port_open

START_TIMEOUT_S = 30.0  # how long a process may take to become ready
STOP_GRACE_S = 10.0  # SIGTERM → SIGKILL
POLL_S = 0.05

# Popen objects of the processes this Python process started: polling them reaps our own children
# (a dead child stays a zombie, i.e. "alive" to kill(0), until its parent waits for it).
_CHILDREN: dict[int, subprocess.Popen] = {}


def pidfile_path(lab_dir: Path, name: str) -> Path:
    """Where process `name`'s pid is kept."""
    return lab_dir / f"{name}.pid"


def log_path(lab_dir: Path, name: str) -> Path:
    """Where process `name`'s stdout and stderr go (appended across restarts)."""
    return lab_dir / f"{name}.log"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks) from /proc/<pid>/stat; None when unreadable (gone, or no /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when unknown."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def pid_alive(pid: int, ticks: int | None = None) -> bool:
    """True when `pid` is a live (not zombie) process, and the same one that started at `ticks` if given."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else (e.g. the postgres user)
    stat = _proc_stat(pid)
    if stat is None:
        # Gone between kill(0) and the read, or a system without /proc: then kill(0) is all we know.
        return not Path("/proc/self/stat").exists()
    state, started = stat
    if state in ("Z", "X"):
        return False
    return ticks is None or started == ticks


def read_pidfile(pidfile: Path) -> tuple[int, int | None] | None:
    """(pid, start ticks or None) from a pidfile; None when it is missing or unreadable."""
    try:
        parts = pidfile.read_text().split()
        pid = int(parts[0])
        ticks = int(parts[1]) if len(parts) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    return (pid, ticks) if pid > 0 else None


def _write_pidfile(pidfile: Path, pid: int) -> None:
    ticks = start_ticks(pid)
    tmp = pidfile.with_name(f".{pidfile.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{pid} {ticks}\n" if ticks is not None else f"{pid}\n")
    os.replace(tmp, pidfile)


def running_pid(lab_dir: Path, name: str) -> int | None:
    """The pid of process `name` when its pidfile names a live process, else None."""
    recorded = read_pidfile(pidfile_path(lab_dir, name))
    if recorded is None:
        return None
    pid, ticks = recorded
    return pid if pid_alive(pid, ticks) else None


def log_tail(path: Path, lines: int = 3) -> str:
    """The last non-empty lines of a log, joined by " | " (for one-line errors)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])


def wait_for_port(port: int, *, timeout: float = START_TIMEOUT_S, pid: int | None = None,
                  what: str = "process", log: Path | None = None) -> None:
    """Return once 127.0.0.1:`port` accepts connections; LabError when `pid` dies first or on timeout."""
    wait_until(lambda: port_open(port, timeout=0.2), timeout=timeout, pid=pid,
               what=f"{what} to listen on port {port}", log=log)


def wait_until(ready: Callable[[], bool], *, timeout: float = START_TIMEOUT_S, pid: int | None = None,
               what: str = "process to be ready", log: Path | None = None) -> None:
    """Poll `ready` until it is true; LabError (naming `what` and the log's tail) when `pid` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        hint = f"see {log}" if log else None
        if pid is not None and not pid_alive(pid):
            tail = log_tail(log) if log else ""
            raise LabError(f"gave up waiting for {what}: it exited" + (f" ({tail})" if tail else ""),
                           hint=hint)
        if time.monotonic() > deadline:
            raise LabError(f"gave up waiting for {what} after {timeout:g} s", hint=hint)
        time.sleep(POLL_S)


@dataclass(frozen=True)
class Started:
    """What `start_detached` did."""

    pid: int  # the process's pid (recorded in its pidfile)
    started: bool  # False: it was already running and was left alone


def start_detached(lab_dir: Path, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None, port: int | None = None,
                   ready: Callable[[], bool] | None = None, timeout: float = START_TIMEOUT_S) -> Started:
    """Start `argv` as process `name` unless it already runs; return once `port` listens and `ready()` holds.

    Idempotent: a live process named `name` is only waited for. On failure the new process is stopped,
    its pidfile removed, and LabError names the log."""
    pidfile, log = pidfile_path(lab_dir, name), log_path(lab_dir, name)
    pid = running_pid(lab_dir, name)
    started = pid is None
    if pid is None:
        if port is not None and port_open(port, timeout=0.2):
            # Else the readiness wait would take a stranger's listener for ours.
            raise LabError(f"cannot start {name}: port {port} is already in use by another process",
                           hint="stop that process, or `migrate lab down` and `migrate lab up` for new ports")
        lab_dir.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            try:
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, env=dict(env) if env is not None else None,
                                        cwd=cwd, start_new_session=True, close_fds=True)
            except OSError as exc:
                raise LabError(f"cannot start {name} ({argv[0]}): {exc.strerror or exc}") from exc
        _CHILDREN[proc.pid] = proc
        pid = proc.pid
        _write_pidfile(pidfile, pid)
    try:
        if port is not None:
            wait_for_port(port, timeout=timeout, pid=pid, what=name, log=log)
        if ready is not None:
            wait_until(ready, timeout=timeout, pid=pid, what=f"{name} to be ready", log=log)
    except LabError:
        if started:
            stop_process(lab_dir, name)
        raise
    return Started(pid, started)


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to `pid`'s process group when it leads one (as every start_detached process does), else to `pid`."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_pid(pid: int, ticks: int | None = None, *, grace: float = STOP_GRACE_S) -> bool:
    """Stop process `pid` (SIGTERM to its group, SIGKILL after `grace` s); True when it had been running."""
    if not pid_alive(pid, ticks):
        return False
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid, ticks):
        if time.monotonic() > deadline:
            signal_group(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5
            while pid_alive(pid, ticks):
                if time.monotonic() > kill_deadline:
                    raise LabError(f"process {pid} survived SIGKILL")
                time.sleep(POLL_S)
            break
        time.sleep(POLL_S)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()
    return True


def stop_process(lab_dir: Path, name: str, *, grace: float = STOP_GRACE_S) -> int | None:
    """Stop process `name` and remove its pidfile; the pid it stopped, or None when it was not running."""
    pidfile = pidfile_path(lab_dir, name)
    recorded = read_pidfile(pidfile)
    stopped = None
    if recorded is not None and stop_pid(*recorded, grace=grace):
        stopped = recorded[0]
    pidfile.unlink(missing_ok=True)
    return stopped


def process_state(lab_dir: Path, name: str, port: int | None = None) -> tuple[str, int | None]:
    """("running" | "starting" | "dead" | "absent", pid): "dead" = a pidfile whose process is gone,
    "starting" = alive but its port does not accept connections yet."""
    recorded = read_pidfile(pidfile_path(lab_dir, name))
    if recorded is None:
        return "absent", None
    pid, ticks = recorded
    if not pid_alive(pid, ticks):
        return "dead", pid
    if port is not None and not port_open(port, timeout=0.2):
        return "starting", pid
    return "running", pid
