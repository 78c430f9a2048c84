"""`migrate` — the command tree. Each sub-module holds the commands of one branch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from migrate import exit_codes
from migrate.cli import controls, lab, phase, plan, region, state
from migrate.cli.context import Options
from migrate.output.console import envelope, err, print_json

app = typer.Typer(name="migrate", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Walk a live game backend from us-east-1 to three-region active-active, "
                       "one resumable, reversible phase at a time.")


@app.callback()
def main(ctx: typer.Context,
         spec: Path = typer.Option(Path("migration.toml"), "--spec", envvar="MIGRATE_SPEC",
                                   help="the plan spec file"),
         env: str = typer.Option("lab", "--env", help="environment from the spec: lab or aws"),
         state_url: Optional[str] = typer.Option(None, "--state",
                                                 help="state store URL (sqlite path or postgresql://); default from the spec"),
         output: str = typer.Option("text", "--output", help="text or json (versioned envelope)"),
         debug: bool = typer.Option(False, "--debug", help="show tracebacks")) -> None:
    if output not in ("text", "json"):
        raise typer.BadParameter(f"'{output}' is not one of text, json", param_hint="--output")
    ctx.obj = Options(spec, env, state_url, output, debug)


plan.register(app)
app.add_typer(phase.app, name="phase")
app.add_typer(region.app, name="region")
state.register(app)
controls.register(app)
app.add_typer(lab.app, name="lab")


def run() -> None:
    """Entry point: usage errors exit 1 with one line (exit 2 is reserved for 'changes pending')."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="migrate", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        err.print("[red]aborted[/]")
        code = exit_codes.ERROR
    except typer.TyperException as exc:  # typer's (vendored click) usage errors
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        err.print(f"[red]error[/] [USAGE] {message}", soft_wrap=True)
        err.print("[dim]hint:[/] see `migrate --help` or `migrate COMMAND --help`")
        if "--output" in sys.argv and "json" in sys.argv:
            print_json(envelope(" ".join(sys.argv[1:3]), False, None,
                                {"code": "USAGE", "message": message}, exit_codes.ERROR))
        code = exit_codes.ERROR
    sys.exit(code if isinstance(code, int) else 0)
