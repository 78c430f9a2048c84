"""`migrate region evacuate | return`: the incident commands (DESIGN §6b, runbooks/evacuate-region.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from migrate import exit_codes
from migrate.cli.context import confirm, execute, yes_option
from migrate.cli.phase import run_command
from migrate.output.console import out

app = typer.Typer(no_args_is_help=True, help="Incidents: evacuate a lost region, and bring it back.")


@app.command("evacuate")
def evacuate_cmd(ctx: typer.Context, region: str = typer.Argument(..., help="the lost region"),
                 dry_run: bool = typer.Option(False, "--dry-run", help="show the plan and run preflight only; change nothing"),
                 plan_file: Optional[Path] = typer.Option(None, "--plan", help="a plan saved by `migrate plan --out`; refused if stale"),
                 yes: bool = yes_option()) -> None:
    """Serve the region's players from the nearest healthy region; take its home if its writer is gone
    (the phase evacuate-region: journaled, resumable; `migrate region return` is the way back)."""
    run_command(ctx, "region evacuate", "evacuate-region", region, dry_run, plan_file, yes)


@app.command("return")
def return_cmd(ctx: typer.Context, region: str = typer.Argument(..., help="the region coming back"),
               yes: bool = yes_option()) -> None:
    """Bring an evacuated region back: a returned lost writer fenced, its unreplicated rows listed and it
    removed; players routed back once the region answers; its cutover run again if its home was taken."""

    def body(opts):
        from migrate.engine.services import return_region
        from migrate.output.live import RichReporter
        from migrate.output.render import outcome_text

        confirm(f"Return {region} (routing back, and its home writer again if it was taken) on environment "
                f"'{opts.env}'?", yes, opts)
        session = opts.session()
        try:
            result = return_region(session, region, reporter=None if opts.json else RichReporter())
        finally:
            session.close()
        if not opts.json:
            for outcome in result.outcomes:
                out.print(outcome_text(outcome), markup=False)
            if result.unreplicated is not None:
                lost = result.unreplicated
                out.print(f"{region}'s returned writer held {lost['count']} player row(s) the origin lacked "
                          f"(written after the stream's last confirmed point; not merged): "
                          + (", ".join(str(p) for p in lost["players"][:20]) or "none")
                          + (" …" if lost["count"] > 20 else ""), markup=False)
        code = exit_codes.OK if result.status == "succeeded" else exit_codes.ERROR
        return result.to_json(), code

    execute(ctx, "region return", body)
