"""`migrate status | history | unlock`."""

from __future__ import annotations

from typing import Optional

import typer

from migrate import exit_codes
from migrate.cli.context import execute, yes_option
from migrate.errors import UsageError
from migrate.output.console import err, out


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(ctx: typer.Context) -> None:
        """Every phase's status, the lock, and replication lag per region."""

        def body(opts):
            from migrate.engine.services import status
            from migrate.output.render import status_tables

            session = opts.session()
            try:
                report = status(session)
            finally:
                session.close()
            if not opts.json:
                for table in status_tables(report):
                    out.print(table)
            return report.to_json(), exit_codes.OK

        execute(ctx, "status", body)

    @app.command("history")
    def history_cmd(ctx: typer.Context,
                    limit: int = typer.Option(50, "--limit", help="newest N events (0: all)"),
                    phase: Optional[str] = typer.Option(None, "--phase"),
                    region: Optional[str] = typer.Option(None, "--region")) -> None:
        """The journal: who did what, when, with which outputs."""

        def body(opts):
            from migrate.engine.services import history
            from migrate.output.render import history_table

            session = opts.session()
            try:
                events = history(session, limit, phase, region)
            finally:
                session.close()
            if not opts.json:
                out.print(history_table(events))
            return [{"serial": e.serial, "at": e.at.isoformat(), "actor": e.actor, "kind": e.kind,
                     "phase": e.phase, "region": e.region, "step": e.step, "run_id": e.run_id,
                     "data": e.data} for e in events], exit_codes.OK

        execute(ctx, "history", body)

    @app.command("baseline")
    def baseline_cmd(ctx: typer.Context,
                     seconds: float = typer.Option(20.0, "--seconds",
                                                   help="how far back the players' requests are measured")) -> None:
        """Record each geography's p95 now, as players measured it: every later gate fails a geography
        that gets worse than this (plus [gates] baseline_slack_ms). Record it before the first phase."""

        def body(opts):
            from migrate.engine.services import record_baseline

            session = opts.session()
            try:
                event = record_baseline(session, seconds)
            finally:
                session.close()
            if not opts.json:
                out.print("baseline recorded: " + ", ".join(
                    f"{geo} p95 {ms:g} ms ({event.data['samples'][geo]} requests)"
                    for geo, ms in event.data["p95_ms"].items()) + f", over the last {seconds:g} s")
            return {"serial": event.serial, **event.data}, exit_codes.OK

        execute(ctx, "baseline", body)

    @app.command("unlock")
    def unlock_cmd(ctx: typer.Context, lock_id: str = typer.Argument(..., help="the lock id shown in the refusal or `migrate status`"),
                   force: bool = typer.Option(False, "--force", help="required: breaking a lease is deliberate"),
                   yes: bool = yes_option()) -> None:
        """Break a stale lease left by a crashed run (`migrate unlock --force LOCK_ID`)."""

        def body(opts):
            from migrate.engine.services import unlock

            if not force:
                raise UsageError("unlock breaks another run's lease: pass --force to confirm",
                                 hint=f"migrate unlock --force {lock_id}")
            session = opts.session()
            try:
                lock = unlock(session, lock_id)
            finally:
                session.close()
            err.print(f"lock {lock.lock_id} held by {lock.holder} ({lock.operation}) broken")
            return {"lock_id": lock.lock_id, "holder": lock.holder, "operation": lock.operation}, exit_codes.OK

        execute(ctx, "unlock", body)
