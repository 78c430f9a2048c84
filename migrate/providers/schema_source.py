"""The game's schema revisions as the app ships them (app/migrations), read without any environment:
plans list one step per revision before anything is connected. `python -m app.db` runs in a
subprocess: the tool drives the game's migrations, it does not import the game."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

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
    proc = app_db("branch", name, timeout=60)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ProviderError(f"listing the app's {name} revisions failed: {tail}", where="app migrations")
    return tuple(SchemaRevision(r["id"], r["revises"], r["title"], tuple(r.get("depends_on", ())))
                 for r in json.loads(proc.stdout))
