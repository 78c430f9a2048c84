"""Shared fixtures of the Terraform checks: paths, the reference checker, one checkov run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGION_ROOTS = {"ap-northeast-1": TERRAFORM / "regions" / "ap-northeast-1",
                "eu-central-1": TERRAFORM / "regions" / "eu-central-1"}
MODULE = TERRAFORM / "modules" / "region"


def _load_refcheck():
    """terraform/tools/refcheck.py is a script, not a package: import it by path."""
    path = TERRAFORM / "tools" / "refcheck.py"
    spec = importlib.util.spec_from_file_location("terraform_refcheck", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


refcheck = _load_refcheck()


def find_checkov() -> str | None:
    """The checkov executable: $CHECKOV, then the isolated tool venv at .venv-checkov (checkov pins
    old boto3/packaging and ships its own `hcl2` package, so it cannot share the project's venv),
    then next to this interpreter, then PATH."""
    candidates = [os.environ.get("CHECKOV"),
                  str(REPO / ".venv-checkov" / "bin" / "checkov"),
                  str(Path(sys.executable).parent / "checkov"),
                  shutil.which("checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def checkov_report() -> dict:
    """One checkov run over terraform/ for the whole session (it takes seconds, not milliseconds):
    its terraform report (summary + results) parsed from JSON."""
    checkov = find_checkov()
    if checkov is None:
        pytest.fail("checkov is not installed: `python3 -m venv .venv-checkov && "
                    ".venv-checkov/bin/pip install checkov` (or set CHECKOV=/path/to/checkov)")
    command = [checkov, "--directory", str(TERRAFORM), "--framework", "terraform", "--compact",
               "--skip-download", "--output", "json"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    # Exit code 1 only means "failed checks"; anything else (or no JSON) is a crash.
    if done.returncode not in (0, 1):
        pytest.fail(f"checkov crashed (exit {done.returncode}): {done.stderr[-2000:]}")
    try:
        reports = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report: {done.stdout[-1000:]} {done.stderr[-2000:]}")
    reports = reports if isinstance(reports, list) else [reports]
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    if not terraform:
        pytest.fail(f"checkov produced no terraform report: {done.stdout[-1000:]}")
    return terraform[0]
