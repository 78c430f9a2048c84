"""How the runner tells an operator what it is doing, live. The CLI passes a rich implementation;
tests pass `SilentReporter` or a recorder. Nothing here changes state."""

from __future__ import annotations

from typing import Protocol

from migrate.phasekit.model import CheckResult


class Reporter(Protocol):
    """Live narration of a run; every method returns quickly and never raises."""

    def note(self, text: str) -> None:
        """A one-line diagnostic for the operator."""

    def checks(self, title: str, results: list[CheckResult]) -> None:
        """A table of check results (preflight, verify)."""

    def step_started(self, step_id: str, title: str, action: str) -> None:
        """A step begins (action: apply or undo)."""

    def step_progress(self, step_id: str, done: int, total: int | None, note: str) -> None:
        """Progress inside a long step."""

    def step_finished(self, step_id: str, result: str) -> None:
        """A step ends: applied, skipped, undone, failed, not-touched."""


class SilentReporter:
    """Says nothing (tests, JSON output)."""

    def note(self, text: str) -> None:
        pass

    def checks(self, title: str, results: list[CheckResult]) -> None:
        pass

    def step_started(self, step_id: str, title: str, action: str) -> None:
        pass

    def step_progress(self, step_id: str, done: int, total: int | None, note: str) -> None:
        pass

    def step_finished(self, step_id: str, result: str) -> None:
        pass
