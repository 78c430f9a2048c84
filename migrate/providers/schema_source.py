"""The game's schema revisions as the app ships them (app/migrations), read without any environment:
plans list one step per revision before anything is connected. `python -m app.db` runs in a
subprocess: the tool drives the game's migrations, it does not import the game.

Starting that subprocess costs about half a second of CPU (Python, Alembic), and a schema phase runs
one revision per step. So one `python -m app.db serve` process answers every command of a `migrate`
process. A command asked for in another environment (PG*, GAME_*, PYTHONPATH) replaces it, and a
command that fails ends it: the next starts clean.

Every command that lists a schema phase's steps (status, plan, each run) needs both branches. The
listing is therefore kept in the system's temp folder under a digest of every file it is made from
(the revisions, the extra folder, app/db.py): a changed revision is a new digest, so a kept listing is
never stale."""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from migrate.errors import ProviderError
from migrate.providers.protocols import SchemaRevision

EXTRA_ENV = "GAME_MIGRATIONS_EXTRA"  # app/db.py: one more folder of revisions (tests only)


def app_db(*args: str, timeout: float = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m app.db ARGS` (in `env`, default this process's) as its own process would have
    run it: its exit code, stdout and stderr (not checked). Raises subprocess.TimeoutExpired past
    `timeout` seconds, as subprocess.run does."""
    return _SERVER.run(list(args), dict(os.environ if env is None else env), timeout)


class _AppDbServer:
    """The one `python -m app.db serve` process of this process, started when first needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one command at a time: the server answers in order
        self._proc: subprocess.Popen | None = None
        self._key: tuple = ()
        self._owner = 0  # the pid that started it: a forked child starts its own

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "app.db", *args]
        # what app.db reads from its environment: libpq's PG* variables, the extra revisions folder, the import path
        key = tuple(sorted((k, v) for k, v in env.items() if k.startswith(("PG", "GAME_")) or k == "PYTHONPATH"))
        with self._lock:
            proc = self._started(key, env)
            try:
                proc.stdin.write((json.dumps(args) + "\n").encode())
                proc.stdin.flush()
                line = self._reply(proc, command, timeout)
            except BaseException:  # a timeout, a broken pipe, an interrupt: no reply can be trusted to follow in order
                self.stop()
                raise
            if line is None:
                self.stop()
                return subprocess.CompletedProcess(command, 1, "", f"app.db serve ended without answering ({' '.join(args[:1])})")
            reply = json.loads(line)
            if reply["code"] != 0:
                self.stop()  # Alembic may be left half set up by a failure: the next command gets a fresh process
            return subprocess.CompletedProcess(command, reply["code"], reply["stdout"], reply["stderr"])

    def _started(self, key: tuple, env: dict[str, str]) -> subprocess.Popen:
        if self._proc is not None and (self._key != key or self._owner != os.getpid() or self._proc.poll() is not None):
            self.stop()
        if self._proc is None:
            self._proc = subprocess.Popen([sys.executable, "-m", "app.db", "serve"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            self._key, self._owner = key, os.getpid()
        return self._proc

    @staticmethod
    def _reply(proc: subprocess.Popen, command: list[str], timeout: float) -> bytes | None:
        """One line from the server; None when it ended first."""
        deadline, fd, line = time.monotonic() + timeout, proc.stdout.fileno(), bytearray()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(command, timeout)
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                line += chunk
        return bytes(line)

    def stop(self) -> None:
        """End the server (if this process started one): end of input, then a kill if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or self._owner != os.getpid():
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()


_SERVER = _AppDbServer()
atexit.register(_SERVER.stop)


def branch_revisions(name: str) -> tuple[SchemaRevision, ...]:
    """The branch's revisions ("expand" or "contract"), root to head."""
    return _branch(name, os.environ.get(EXTRA_ENV, ""))


@functools.lru_cache(maxsize=8)
def _branch(name: str, extra: str) -> tuple[SchemaRevision, ...]:  # keyed on the extra folder too (tests add one)
    kept = _kept_listing(name, extra)
    listing = kept.read_text() if kept is not None and kept.exists() else None
    if listing is None:
        proc = app_db("branch", name, timeout=60)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ProviderError(f"listing the app's {name} revisions failed: {tail}", where="app migrations")
        listing = proc.stdout
        if kept is not None:
            _write_atomic(kept, listing)
    return tuple(SchemaRevision(r["id"], r["revises"], r["title"], tuple(r.get("depends_on", ())))
                 for r in json.loads(listing))


def _kept_listing(name: str, extra: str) -> Path | None:
    """Where the listing made from exactly these files is kept; None when the app's files are not found."""
    spec = importlib.util.find_spec("app")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    app_dir = Path(next(iter(spec.submodule_search_locations)))
    sources = [app_dir / "db.py", *sorted((app_dir / "migrations").rglob("*.py"))]
    if extra:
        sources += sorted(Path(extra).rglob("*.py"))
    digest = hashlib.sha256(name.encode())
    for path in sources:
        try:
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            return None
    return Path(tempfile.gettempdir()) / f"migrate-revisions-{digest.hexdigest()[:32]}.json"


def _write_atomic(path: Path, text: str) -> None:
    """Written whole or not at all: parallel commands may keep the same listing at once."""
    try:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass  # keeping it is a saving, not a duty
