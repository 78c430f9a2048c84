"""Fault injection for crash tests: `MIGRATE_FAULT` makes the process SIGKILL itself at a named point.

    MIGRATE_FAULT="before:seed-secondary"      after step_started is journaled, before apply
    MIGRATE_FAULT="inside:seed-secondary"      at the first checkpoint inside apply
    MIGRATE_FAULT="inside:seed-secondary@3"    at the third checkpoint inside apply
    MIGRATE_FAULT="after:seed-secondary"       after apply and verify, before step_succeeded is journaled
    MIGRATE_FAULT="undo-before:…" / "undo-inside:…" / "undo-after:…"   the same points during rollback

SIGKILL (not an exception) so that nothing — no finally, no atexit — tidies up: the test then
sees exactly what a power cut or OOM kill leaves behind.

`MIGRATE_ABORT_AT` takes the same points and raises Aborted there instead: what the run does when the
operator's `migrate abort` is found at that checkpoint, reached every time (the request itself lands
at whichever checkpoint polls first)."""

from __future__ import annotations

import os
import signal
from collections import Counter

from migrate.errors import Aborted

ENV_VAR = "MIGRATE_FAULT"
ABORT_VAR = "MIGRATE_ABORT_AT"
POINTS = ("before", "inside", "after", "undo-before", "undo-inside", "undo-after")

_hits: Counter[tuple[str, str]] = Counter()
_abort_hits: Counter[tuple[str, str]] = Counter()


def _wanted(var: str = ENV_VAR) -> dict[tuple[str, str], int]:
    spec = os.environ.get(var, "").strip()
    wanted: dict[tuple[str, str], int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, rest = item.partition(":")
        step, _, nth = rest.partition("@")
        if point in POINTS and step:
            wanted[(point, step)] = int(nth) if nth.isdigit() else 1
    return wanted


def maybe_die(point: str, step_id: str) -> None:
    """SIGKILL this process if MIGRATE_FAULT names this point (at its Nth hit); raise Aborted if
    MIGRATE_ABORT_AT does."""
    key = (point, step_id)
    aborts = _wanted(ABORT_VAR)
    if aborts:
        _abort_hits[key] += 1
        if key in aborts and _abort_hits[key] == aborts[key]:
            raise Aborted(f"aborted by operator request (at {point}:{step_id})")
    wanted = _wanted()
    if not wanted:
        return
    _hits[key] += 1
    if key in wanted and _hits[key] == wanted[key]:
        os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget hit counts (for in-process tests)."""
    _hits.clear()
    _abort_hits.clear()
