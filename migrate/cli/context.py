"""Global options shared by every command, and the one place errors become exit codes."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import typer

from migrate import exit_codes
from migrate.errors import MigrateError
from migrate.output.console import envelope, err, print_json


@dataclass
class Options:
    """Global options: where the spec and state are, which environment, how to print."""

    spec: Path
    env: str
    state: str | None
    output: str  # "text" or "json"
    debug: bool

    @property
    def json(self) -> bool:
        return self.output == "json"

    def session(self):
        from migrate.engine.services import open_session

        return open_session(self.spec, self.env, self.state)


def options(ctx: typer.Context) -> Options:
    return ctx.ensure_object(Options) if isinstance(ctx.obj, Options) else ctx.obj


def execute(ctx: typer.Context, command: str, body: Callable[[Options], tuple[Any, int]]) -> None:
    """Run `body`, print its data (JSON envelope or nothing: body prints text itself) and exit.

    `body` returns (json-able data, exit code). Any MigrateError becomes one line on stderr (plus a
    hint), an envelope with ok=false under --output json, and exit code 1."""
    opts: Options = ctx.obj
    try:
        data, code = body(opts)
    except MigrateError as exc:
        if opts.debug:
            traceback.print_exc()
        err.print(f"[red]error[/] [{exc.code}] {exc.one_line()}", soft_wrap=True)
        if exc.hint:
            err.print(f"[dim]hint:[/] {exc.hint}", soft_wrap=True)
        if opts.json:
            print_json(envelope(command, False, None, exc.to_json(), exit_codes.ERROR))
        raise typer.Exit(exit_codes.ERROR)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: the journal holds where it stopped; re-run to resume, "
                  "or `migrate phase rollback` to undo")
        if opts.json:
            print_json(envelope(command, False, None, {"code": "INTERRUPTED", "message": "interrupted"},
                                exit_codes.ERROR))
        raise typer.Exit(exit_codes.ERROR)
    except Exception as exc:  # noqa: BLE001 — an unexpected bug still gets one line, not a traceback
        if opts.debug:
            traceback.print_exc()
        err.print(f"[red]internal error[/] {type(exc).__name__}: {exc} (re-run with --debug for the traceback)",
                  soft_wrap=True)
        if opts.json:
            print_json(envelope(command, False, None,
                                {"code": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"},
                                exit_codes.ERROR))
        raise typer.Exit(exit_codes.ERROR)
    if opts.json:
        print_json(envelope(command, True, data, None, code))
    sys.stdout.flush()
    raise typer.Exit(code)


def yes_option() -> Any:
    """`--yes`, taken by every mutating command (scripts and runbooks pass it everywhere alike)."""
    return typer.Option(False, "--yes", "-y", help="do not ask for confirmation")


def confirm(question: str, yes: bool, opts: Options) -> None:
    """Ask `question` on a terminal unless --yes or --output json; no answer aborts, nothing changed."""
    if yes or opts.json or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return
    typer.confirm(question, abort=True, err=True)
