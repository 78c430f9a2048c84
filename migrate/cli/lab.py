"""`migrate lab up | down | deploy | isolate | reconnect | status`: the local three-region lab (`lab load`: migrate/cli/lab_load.py)."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from migrate import exit_codes
from migrate.cli import lab_load
from migrate.cli.context import execute, yes_option
from migrate.output.console import err, out

app = typer.Typer(no_args_is_help=True,
                  help="The local lab: PostgreSQL, Redis, the app, moto (Route 53, S3), the WAN proxy.")


def lab_dir_and_env(opts):
    """(lab folder, spec environment) of the selected lab environment; UsageError for an aws one."""
    from migrate.providers.factory import lab_dir_for
    from migrate.spec import load_spec

    spec = load_spec(opts.spec)
    env = spec.environment(opts.env)
    if env.kind != "lab":
        from migrate.errors import UsageError

        raise UsageError(f"environment '{opts.env}' is not a lab environment", hint="use --env lab")
    return lab_dir_for(env, spec.path.parent), env


_lab_dir = lab_dir_and_env  # the name earlier modules used


def _text(value) -> str:
    return "" if value is None else str(value)


def _print(report, opts) -> None:
    if opts.json:
        return
    for action in report.actions:
        err.print(f"• {action}")
    if report.components:
        table = Table(title=f"lab at {report.lab_dir} · {report.players:,} players", title_justify="left")
        for col in ("component", "role", "port", "pid", "state"):
            table.add_column(col)
        for c in report.components:
            table.add_row(c["component"], c["role"], _text(c["port"]), _text(c.get("pid")), c["state"])
        out.print(table)
    if report.links:
        table = Table(title="WAN links", title_justify="left")
        for col in ("link", "port", "→ port", "rtt ms", "state", "conns"):
            table.add_column(col, justify="right" if col in ("rtt ms", "conns") else "left")
        for link in report.links:
            rtt = f"{link['rtt_ms']:g}" + (f" +{link['extra_rtt_ms']:g}" if link.get("extra_rtt_ms") else "")
            table.add_row(link["name"], _text(link["port"]), _text(link["target_port"]), rtt, link["state"],
                          _text(link.get("connections")))
        out.print(table)
    aws = report.aws
    if aws and aws.get("error"):
        err.print(f"[yellow]moto:[/] {aws['error']}")
    elif aws:
        table = Table(title=f"Route 53 api.game.example (zone {aws.get('zone_id') or 'absent'}) · S3: "
                            f"{', '.join(aws.get('buckets') or []) or 'no bucket'}", title_justify="left")
        for col in ("name", "set identifier", "region", "weight", "ttl", "value", "health check"):
            table.add_column(col, overflow="fold")
        for r in aws.get("records") or []:
            table.add_row(r["name"].removesuffix(".game.example."), _text(r["set_identifier"]), _text(r["region"]),
                          _text(r["weight"]), _text(r["ttl"]), ", ".join(r["values"]), _text(r["health_check_id"]))
        out.print(table)


@app.command("up")
def up_cmd(ctx: typer.Context, players: int = typer.Option(None, "--players",
                                                          help="synthetic players to seed (default from the spec: 1,000,000)"),
          yes: bool = yes_option()) -> None:
    """Build the lab (idempotent): us-east-1 PostgreSQL seeded by COPY, Redis and the app; moto (Route 53, S3); the WAN proxy."""

    def body(opts):
        from migrate.lab.world import lab_up
        from migrate.providers.factory import route_lab_api

        lab_dir, env = lab_dir_and_env(opts)
        count = env.lab.players if players is None else players
        with Progress(TextColumn("seeding players"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                      TimeElapsedColumn(), console=err, transient=True, disable=opts.json) as bar:
            task = bar.add_task("seed", total=count)
            report = lab_up(lab_dir, count, progress=lambda done, total: bar.update(task, completed=done),
                            route_api=route_lab_api)
        if not report.actions:
            report.actions.append("the lab is up; nothing to do")
        _print(report, opts)
        return report.to_json(), exit_codes.OK

    execute(ctx, "lab up", body)


@app.command("down")
def down_cmd(ctx: typer.Context, yes: bool = yes_option()) -> None:
    """Stop every lab process (checking none is left) and remove the lab folder."""

    def body(opts):
        from migrate.lab.world import lab_down

        lab_dir, _ = lab_dir_and_env(opts)
        report = lab_down(lab_dir)
        _print(report, opts)
        return report.to_json(), exit_codes.OK

    execute(ctx, "lab down", body)


@app.command("deploy")
def deploy_cmd(ctx: typer.Context,
               region: str = typer.Option(..., "--region", help="the region whose app to deploy"),
               generation: int = typer.Option(..., "--app-generation",
                                              help="1: the game as it runs today; 2: the app for home-region writers"),
               yes: bool = yes_option()) -> None:
    """Deploy app generation 1 or 2 to a region's app (recorded; a running app of another generation restarts)."""

    def body(opts):
        from migrate.lab.topology import LabTopology
        from migrate.lab.world import deploy_app_generation

        from migrate.errors import LabError

        lab_dir, _ = lab_dir_and_env(opts)
        topology = LabTopology.load(lab_dir)
        if topology is None:
            raise LabError(f"no lab in {lab_dir}", hint="migrate lab up")
        actions = deploy_app_generation(topology, region, generation)
        report = {"region": region, "app_generation": generation,
                  "actions": actions or [f"{region} already runs app generation {generation}; nothing to do"]}
        if not opts.json:
            for line in report["actions"]:
                out.print(line)
        return report, exit_codes.OK

    execute(ctx, "lab deploy", body)


@app.command("record-writes")
def record_writes_cmd(ctx: typer.Context,
                      off: bool = typer.Option(False, "--off", help="stop recording and drop the log")) -> None:
    """Record every write each database accepts (the one-writer checker's history; lab instrumentation,
    never the game's schema): a trigger on the origin's players, inherited by home writers staged later."""

    def body(opts):
        from migrate.errors import LabError
        from migrate.lab import write_log
        from migrate.lab.topology import LabTopology

        lab_dir, _ = lab_dir_and_env(opts)
        topology = LabTopology.load(lab_dir)
        if topology is None:
            raise LabError(f"no lab in {lab_dir}", hint="migrate lab up")
        (write_log.uninstall if off else write_log.install)(topology.primary().dsn())
        line = ("stopped recording writes on the origin" if off else
                "recording every write the origin accepts (lab_write_log); home writers staged from now on inherit it")
        if not opts.json:
            out.print(line)
        return {"recording": not off, "actions": [line]}, exit_codes.OK

    execute(ctx, "lab record-writes", body)


def _links_command(ctx: typer.Context, region: str, cut: bool) -> None:
    def body(opts):
        from migrate.errors import LabError
        from migrate.lab.isolation import isolate, reconnect
        from migrate.lab.topology import LabTopology

        lab_dir, _ = lab_dir_and_env(opts)
        topology = LabTopology.load(lab_dir)
        if topology is None:
            raise LabError(f"no lab in {lab_dir}", hint="migrate lab up")
        names = (isolate if cut else reconnect)(topology, region)
        line = (f"{region} cut off: {len(names)} WAN links cut (players, other regions, its own links out); its "
                f"processes run on, unreachable" if cut else f"{region} reconnected: {len(names)} WAN links restored")
        if not opts.json:
            out.print(line)
        return {"region": region, "cut": cut, "links": names}, exit_codes.OK

    execute(ctx, "lab isolate" if cut else "lab reconnect", body)


@app.command("isolate")
def isolate_cmd(ctx: typer.Context, region: str = typer.Option(..., "--region", help="the region to cut off")) -> None:
    """The game day's region loss: cut every WAN link to or from the region (its processes run on, unreachable)."""
    _links_command(ctx, region, True)


@app.command("reconnect")
def reconnect_cmd(ctx: typer.Context, region: str = typer.Option(..., "--region", help="the region to bring back")) -> None:
    """Restore every WAN link of the region (the end of `lab isolate`)."""
    _links_command(ctx, region, False)


@app.command("status")
def status_cmd(ctx: typer.Context) -> None:
    """Every lab process (role, port, pid, state), WAN link (RTT, state) and Route 53 record."""

    def body(opts):
        from migrate.lab.world import lab_status

        lab_dir, _ = lab_dir_and_env(opts)
        report = lab_status(lab_dir)
        _print(report, opts)
        return report.to_json(), exit_codes.OK

    execute(ctx, "lab status", body)


lab_load.register(app)
