"""`migrate phase list | run | rollback`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from migrate import exit_codes
from migrate.cli.context import confirm, execute, yes_option
from migrate.output.console import err, out

app = typer.Typer(no_args_is_help=True, help="List, run and roll back phases.")


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Every phase of the catalogue and whether it is built."""

    def body(opts):
        from migrate.engine.services import phase_catalogue

        rows = phase_catalogue()
        if not opts.json:
            for r in rows:
                tag = "built" if r["built"] else "not built yet"
                scope = "per region" if r["regional"] else "global"
                out.print(f"{r['phase']:<17} {tag:<14} {scope:<10} {r['summary']}", markup=False)
        return rows, exit_codes.OK

    execute(ctx, "phase list", body)


@app.command("run")
def run_cmd(ctx: typer.Context, phase: str = typer.Argument(..., help="phase name"),
            region: Optional[str] = typer.Option(None, "--region", help="target region"),
            dry_run: bool = typer.Option(False, "--dry-run", help="show the plan and run preflight only; change nothing"),
            plan_file: Optional[Path] = typer.Option(None, "--plan", help="a plan saved by `migrate plan --out`; refused if stale"),
            yes: bool = yes_option()) -> None:
    """Apply a phase (resuming where the journal says it stopped)."""
    run_command(ctx, "phase run", phase, region, dry_run, plan_file, yes)


def run_command(ctx: typer.Context, command: str, phase: str, region: Optional[str], dry_run: bool,
                plan_file: Optional[Path], yes: bool) -> None:
    """`phase run` and the commands that are a phase run by another name (`region evacuate`)."""

    def body(opts):
        from migrate.engine.services import make_plan, preflight_only, rehearse, run_phase
        from migrate.output.live import RichReporter
        from migrate.output.render import checks_table, outcome_text, plan_text

        session = opts.session()
        try:
            if dry_run:
                plan = make_plan(session, phase, region)
                results = preflight_only(session, phase, region)
                ok = all(r.ok for r in results)
                rehearsal = rehearse(session, phase, region) if ok else {}
                if not opts.json:
                    out.print(plan_text(plan), markup=False)
                    err.print(checks_table("preflight (read-only)", results))
                    for step_id, lines in rehearsal.items():
                        out.print(f"rehearsal of {step_id}:", markup=False)
                        for line in lines:
                            out.print(f"    {line}", markup=False)
                data = {"plan": plan.to_json(), "preflight": [r.to_json() for r in results],
                        "rehearsal": rehearsal}
                return data, exit_codes.CHANGES_PENDING if ok and plan.changes_pending else (
                    exit_codes.OK if ok else exit_codes.ERROR)
            if plan_file is None:  # a saved plan was reviewed already
                confirm(f"Run {phase}" + (f" in {region}" if region else "") + f" on environment '{opts.env}'?",
                        yes, opts)
            outcome = run_phase(session, phase, region, plan_file=plan_file,
                                reporter=None if opts.json else RichReporter())
        finally:
            session.close()
        if not opts.json:
            out.print(outcome_text(outcome), markup=False)
        code = exit_codes.ABORTED if outcome.status == "aborted" else exit_codes.OK
        return outcome.to_json(), code

    execute(ctx, command, body)


@app.command("rollback")
def rollback_cmd(ctx: typer.Context, phase: str = typer.Argument(..., help="phase name"),
                 region: Optional[str] = typer.Option(None, "--region", help="target region"),
                 yes: bool = yes_option()) -> None:
    """Undo every step of the phase that was touched, in reverse; safe to repeat, resumes after a crash."""

    def body(opts):
        from migrate.engine.services import rollback_phase
        from migrate.output.live import RichReporter
        from migrate.output.render import outcome_text

        confirm(f"Roll back {phase}" + (f" in {region}" if region else "") + f" on environment '{opts.env}'?",
                yes, opts)
        session = opts.session()
        try:
            outcome = rollback_phase(session, phase, region, reporter=None if opts.json else RichReporter())
        finally:
            session.close()
        if not opts.json:
            out.print(outcome_text(outcome), markup=False)
        return outcome.to_json(), exit_codes.OK

    execute(ctx, "phase rollback", body)

