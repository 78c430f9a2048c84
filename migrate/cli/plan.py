"""`migrate plan`: what the programme (or one phase) would do, like `terraform plan`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from migrate import exit_codes
from migrate.cli.context import execute
from migrate.errors import UsageError
from migrate.output.console import err, out


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_cmd(ctx: typer.Context,
                 phase: Optional[str] = typer.Option(None, "--phase", help="only this phase"),
                 region: Optional[str] = typer.Option(None, "--region", help="only this region"),
                 fmt: str = typer.Option("text", "--format", help="text, markdown or json"),
                 out_file: Optional[Path] = typer.Option(None, "--out", help="save the plan (JSON) for `phase run --plan`")) -> None:
        """Show the exact actions, checks and rollback of every scheduled phase. Exit 0: nothing to do; 2: changes pending."""

        def body(opts):
            from migrate.engine.plan import save_plan
            from migrate.engine.services import make_plan
            from migrate.output.render import plan_markdown, plan_text

            if fmt not in ("text", "markdown", "json"):
                raise UsageError(f"--format '{fmt}' is not one of text, markdown, json")
            session = opts.session()
            try:
                plan = make_plan(session, phase, region)
            finally:
                session.close()
            if out_file is not None:
                save_plan(plan, out_file)
                err.print(f"plan saved to {out_file} (journal serial {plan.journal_serial}); "
                          f"apply with `migrate phase run PHASE --region R --plan {out_file}`")
            if not opts.json:
                if fmt == "markdown":
                    out.print(plan_markdown(plan), markup=False)
                elif fmt == "json":
                    import json

                    out.print(json.dumps(plan.to_json(), indent=2), markup=False)
                else:
                    out.print(plan_text(plan), markup=False)
            return plan.to_json(), exit_codes.CHANGES_PENDING if plan.changes_pending else exit_codes.OK

        execute(ctx, "plan", body)
