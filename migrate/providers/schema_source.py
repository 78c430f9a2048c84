"""The game's schema revisions as the app ships them (app/migrations), read without any environment:
plans list one step per revision before anything is connected. `python -m app.db` runs in a
subprocess: the tool drives the game's migrations, it does not import the game.

That subprocess costs about half a second of CPU (Python, Alembic), and every command that lists a
schema phase's steps (status, plan, each run) needs both branches. The listing is therefore kept in
the system's temp folder under a digest of every file it is made from (the revisions, the extra
folder, app/db.py): a changed revision is a new digest, so a kept listing is never stale."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from migrate.errors import ProviderError
from migrate.providers.protocols import SchemaRevision

EXTRA_ENV = "GAME_MIGRATIONS_EXTRA"  # app/db.py: one more folder of revisions (tests only)


def app_db(*args: str, timeout: float = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m app.db ARGS` with this interpreter (in `env`, default this process's); the finished
    process (not checked)."""
    return subprocess.run([sys.executable, "-m", "app.db", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


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
