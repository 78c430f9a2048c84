"""Fault injection for crash tests: `MIGRATE_FAULT` makes the process SIGKILL itself at a named point.

    MIGRATE_FAULT="before:seed-secondary"      after step_started is journaled, before apply
    MIGRATE_FAULT="inside:seed-secondary"      at the first checkpoint inside apply
    MIGRATE_FAULT="inside:seed-secondary@3"    at the third checkpoint inside apply
    MIGRATE_FAULT="after:seed-secondary"       after apply and verify, before step_succeeded is journaled
    MIGRATE_FAULT="undo-before:…" / "undo-inside:…" / "undo-after:…"   the same points during rollback

SIGKILL (not an exception) so that nothing — no finally, no atexit — tidies up: the test then
sees exactly what a power cut or OOM kill leaves behind."""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV_VAR = "MIGRATE_FAULT"
POINTS = ("before", "inside", "after", "undo-before", "undo-inside", "undo-after")

_hits: Counter[tuple[str, str]] = Counter()


def _wanted() -> dict[tuple[str, str], int]:
    spec = os.environ.get(ENV_VAR, "").strip()
    wanted: dict[tuple[str, str], int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, rest = item.partition(":")
        step, _, nth = rest.partition("@")
        if point in POINTS and step:
            wanted[(point, step)] = int(nth) if nth.isdigit() else 1
    return wanted


def maybe_die(point: str, step_id: str) -> None:
    """SIGKILL this process if MIGRATE_FAULT names this point (at its Nth hit)."""
    wanted = _wanted()
    if not wanted:
        return
    key = (point, step_id)
    _hits[key] += 1
    if key in wanted and _hits[key] == wanted[key]:
        os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget hit counts (for in-process tests)."""
    _hits.clear()
