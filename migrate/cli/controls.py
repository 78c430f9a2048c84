"""`migrate pause | resume | abort`: requests to the running phase, from another terminal."""

from __future__ import annotations

import typer

from migrate import exit_codes
from migrate.cli.context import confirm, execute, yes_option
from migrate.output.console import err

_HELP = {
    "pause": "Ask the running phase to pause at its next checkpoint.",
    "resume": "Let a paused phase go on.",
    "abort": "Ask the running phase to stop and roll back what it changed.",
}


def register(app: typer.Typer) -> None:
    for action in ("pause", "resume", "abort"):
        _add(app, action)


def _add(app: typer.Typer, action: str) -> None:
    def command(ctx: typer.Context, yes: bool = yes_option()) -> None:
        def body(opts):
            from migrate.engine.services import request

            if action == "abort":  # the running phase rolls back: worth one question on a terminal
                confirm(f"Abort the running operation on environment '{opts.env}' (it rolls back)?", yes, opts)
            session = opts.session()
            try:
                event = request(session, action)
            finally:
                session.close()
            err.print(f"{action} requested for {event.data['operation']} (holder {event.data['holder']}); "
                      f"journal serial {event.serial}")
            return {"action": action, "serial": event.serial, "run_id": event.data["run_id"]}, exit_codes.OK

        execute(ctx, action, body)

    command.__doc__ = _HELP[action]
    app.command(action)(command)
