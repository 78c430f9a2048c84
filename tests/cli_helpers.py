"""Run the real `migrate` command in a subprocess, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SPEC


def migrate(*args: str, env: dict | None = None, timeout: float = 300, spec: Path | None = None,
            check: int | None = None) -> subprocess.CompletedProcess:
    """`migrate --spec SPEC args…`; the environment gives MIGRATE_LAB_DIR / MIGRATE_STATE / MIGRATE_SPEC."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    spec = spec or Path(full_env.get("MIGRATE_SPEC", SPEC))
    proc = subprocess.run([sys.executable, "-m", "migrate", "--spec", str(spec), *args],
                          capture_output=True, text=True, timeout=timeout, env=full_env)
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def start_migrate(*args: str, env: dict | None = None, spec: Path | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    spec = spec or Path(full_env.get("MIGRATE_SPEC", SPEC))
    return subprocess.Popen([sys.executable, "-m", "migrate", "--spec", str(spec), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)


def envelope(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout)
