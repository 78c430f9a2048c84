"""squawk (PyPI `squawk-cli`) over the exact SQL a schema phase would run (`alembic upgrade A:B --sql`).

A finding is a rule, a line and a message; any finding fails the phase's preflight. An exception is
squawk's own `-- squawk-ignore <rule>` comment in the revision's SQL, and this project wants the
reason written next to it: an ignore without a `-- why: …` comment on the line above is itself a
finding (`ignore-without-reason`). Linted for PostgreSQL 15, the lab's and the Aurora cluster's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from migrate.errors import MigrateError

PG_VERSION = "15"


@dataclass(frozen=True)
class LintFinding:
    rule: str  # squawk's rule name (e.g. require-concurrent-index-creation)
    line: int  # 1-based line in the linted SQL
    message: str  # squawk's one-line explanation
    statement: str  # the offending line of SQL, stripped

    def one_line(self) -> str:
        return f"line {self.line}: {self.rule}: {self.message} ({self.statement[:80]})"


def squawk_binary() -> str:
    """The squawk executable next to this interpreter (the project's virtualenv), else on PATH."""
    beside = Path(sys.executable).with_name("squawk")
    if beside.exists():
        return str(beside)
    found = shutil.which("squawk")
    if not found:
        raise MigrateError("squawk is not installed", hint="pip install squawk-cli (make setup does)")
    return found


def _ignores_without_reason(lines: list[str]) -> list[LintFinding]:
    findings = []
    for number, text in enumerate(lines, 1):
        if text.strip().startswith("-- squawk-ignore"):
            above = lines[number - 2].strip() if number > 1 else ""
            if not above.startswith("-- why:"):
                findings.append(LintFinding("ignore-without-reason", number,
                                            "a squawk-ignore needs a `-- why: …` comment on the line above",
                                            text.strip()))
    return findings


def lint_sql(sql: str, path: Path | None = None) -> list[LintFinding]:
    """squawk's findings over `sql` (written to `path`, or a temporary file); empty when clean."""
    with tempfile.TemporaryDirectory() as scratch:
        target = path or Path(scratch) / "upgrade.sql"
        target.write_text(sql)
        proc = subprocess.run([squawk_binary(), "--reporter", "json", "--pg-version", PG_VERSION, str(target)],
                              capture_output=True, text=True, timeout=120)
    if proc.returncode not in (0, 1):
        raise MigrateError(f"squawk failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
    lines = sql.splitlines()
    try:
        raw = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise MigrateError(f"squawk printed something that is not its JSON report: {exc}") from None
    findings = []
    for item in raw:
        line = int(item["line"]) + 1  # squawk's JSON counts lines from 0
        findings.append(LintFinding(item["rule_name"], line, item["message"],
                                    lines[line - 1].strip() if line <= len(lines) else ""))
    return sorted(findings + _ignores_without_reason(lines), key=lambda f: f.line)
