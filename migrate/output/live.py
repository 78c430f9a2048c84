"""The operator's live view of a run: one line per step, a progress bar on long steps (stderr)."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from migrate.phasekit.model import CheckResult
from migrate.output.console import err
from migrate.output.render import checks_table

_STYLE = {"applied": "green", "skipped": "dim", "undone": "cyan", "failed": "red",
          "not-touched": "dim"}


class RichReporter:
    """Reporter that draws on stderr; safe to use when stderr is not a terminal (no animation)."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task = None

    def note(self, text: str) -> None:
        err.print(f"[yellow]•[/] {text}")

    def checks(self, title: str, results: list[CheckResult]) -> None:
        if results:
            err.print(checks_table(title, results))

    def step_started(self, step_id: str, title: str, action: str) -> None:
        err.print(f"[bold]→ {action}[/] {step_id}: {title}")
        self._progress = Progress(TextColumn("   {task.description}"), BarColumn(),
                                  TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                                  TextColumn("{task.fields[note]}"), console=err, transient=True)
        self._task = None

    def step_progress(self, step_id: str, done: int, total: int | None, note: str) -> None:
        if self._progress is None:
            return
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(step_id, total=total, note=note)
        self._progress.update(self._task, completed=done, total=total, note=note)

    def step_finished(self, step_id: str, result: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.stop()
        self._progress, self._task = None, None
        style = _STYLE.get(result, "white")
        err.print(f"  [{style}]{result}[/] {step_id}")
