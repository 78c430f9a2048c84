"""`migrate lab up | down | status`: the local three-region lab."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from migrate import exit_codes
from migrate.cli.context import execute
from migrate.output.console import err, out

app = typer.Typer(no_args_is_help=True, help="The local lab: PostgreSQL, the WAN proxy, seeded players.")


def _lab_dir(opts):
    from migrate.providers.factory import lab_dir_for
    from migrate.spec import load_spec

    spec = load_spec(opts.spec)
    env = spec.environment(opts.env)
    if env.kind != "lab":
        from migrate.errors import UsageError

        raise UsageError(f"environment '{opts.env}' is not a lab environment", hint="use --env lab")
    return lab_dir_for(env, spec.path.parent), env


def _print(report, opts) -> None:
    if opts.json:
        return
    for action in report.actions:
        err.print(f"• {action}")
    if report.components:
        table = Table(title=f"lab at {report.lab_dir} · {report.players} players", title_justify="left")
        for col in ("component", "role", "port", "state"):
            table.add_column(col)
        for c in report.components:
            table.add_row(c["component"], c["role"], str(c["port"] or ""), c["state"])
        out.print(table)


@app.command("up")
def up_cmd(ctx: typer.Context, players: int = typer.Option(None, "--players",
                                                          help="synthetic players to seed (default from the spec: 1,000,000)")) -> None:
    """Build the lab (idempotent): us-east-1 PostgreSQL seeded by COPY, and the WAN proxy."""

    def body(opts):
        from migrate.lab.world import lab_up

        lab_dir, env = _lab_dir(opts)
        count = env.lab.players if players is None else players
        with Progress(TextColumn("seeding players"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                      TimeElapsedColumn(), console=err, transient=True, disable=opts.json) as bar:
            task = bar.add_task("seed", total=count)
            report = lab_up(lab_dir, count, progress=lambda done, total: bar.update(task, completed=done))
        _print(report, opts)
        return report.to_json(), exit_codes.OK

    execute(ctx, "lab up", body)


@app.command("down")
def down_cmd(ctx: typer.Context) -> None:
    """Stop every lab process and remove the lab folder."""

    def body(opts):
        from migrate.lab.world import lab_down

        lab_dir, _ = _lab_dir(opts)
        report = lab_down(lab_dir)
        _print(report, opts)
        return report.to_json(), exit_codes.OK

    execute(ctx, "lab down", body)


@app.command("status")
def status_cmd(ctx: typer.Context) -> None:
    """Every lab process, port and WAN link."""

    def body(opts):
        from migrate.lab.world import lab_status

        lab_dir, _ = _lab_dir(opts)
        report = lab_status(lab_dir)
        _print(report, opts)
        return report.to_json(), exit_codes.OK

    execute(ctx, "lab status", body)
