"""Renderers: result values → text or Markdown. No state is read or changed here."""

from __future__ import annotations

from rich.table import Table

from migrate.phasekit.model import CheckResult
from migrate.engine.plan import Plan
from migrate.engine.runner import RunOutcome
from migrate.engine.services import StatusReport

_MARK = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[yellow]INCONCLUSIVE[/]"}


def checks_table(title: str, results: list[CheckResult]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("check", "result", "detail", "if it fails"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.check_id, _MARK[r.ok], r.detail, "" if r.ok else r.remediation)
    return table


def _where(p) -> str:
    return f"{p.phase} @ {p.region}" if p.region else p.phase


def plan_markdown(plan: Plan) -> str:
    lines = [f"# Migration plan — environment `{plan.env}`", "",
             f"Journal serial {plan.journal_serial} · spec sha256 `{plan.spec_digest[:12]}` · made {plan.created_at}",
             "", f"Changes pending: **{'yes' if plan.changes_pending else 'no'}**", ""]
    quarter = None
    for p in plan.phases:
        if p.quarter != quarter:
            quarter = p.quarter
            lines += [f"## {quarter}", ""]
        built = "" if p.built else " — **not built yet**"
        lines += [f"### {_where(p)}{built}", "", p.summary, "",
                  f"Status: `{p.status}`" + (" (nothing to do)" if not p.pending else ""), ""]
        if not p.built:
            lines += ["> This phase is planned, not implemented: `migrate phase run` refuses it.", ""]
        lines += ["**Preflight checks**", ""] + [f"- {c}" for c in p.preflight] + [""]
        lines += ["**Steps**", "", "| # | step | status | actions | undo |", "|---|---|---|---|---|"]
        for i, s in enumerate(p.steps, 1):
            lines.append(f"| {i} | `{s.id}` {s.title} | {s.status} | {'<br>'.join(s.actions)} | {'<br>'.join(s.undo)} |")
        lines.append("")
        if p.verify:
            lines += ["**Verify**", ""] + [f"- {c}" for c in p.verify] + [""]
        lines += ["**Rollback**", ""] + [f"- {r}" for r in p.rollback] + [""]
        if p.point_of_no_return:
            lines += [f"**Point of no return:** step `{p.point_of_no_return}`; after it, follow `{p.runbook}`.", ""]
        lines += [f"Runbook: `{p.runbook}`", ""]
    return "\n".join(lines)


def plan_text(plan: Plan) -> str:
    lines = [f"Plan for environment '{plan.env}' (journal serial {plan.journal_serial}, "
             f"spec {plan.spec_digest[:12]})", ""]
    quarter = None
    for p in plan.phases:
        if p.quarter != quarter:
            quarter = p.quarter
            lines.append(f"== {quarter} ==")
        tag = "" if p.built else "  [not built yet]"
        state = "done" if not p.pending else p.status
        lines.append(f"  {_where(p)}: {p.summary}{tag}  ({state})")
        for c in p.preflight:
            lines.append(f"      check  {c}")
        for s in p.steps:
            sign = "+" if s.will_run else "="
            lines.append(f"    {sign} {s.id}: {'; '.join(s.actions)}")
            lines.append(f"        undo: {'; '.join(s.undo)}")
        for c in p.verify:
            lines.append(f"      verify {c}")
        lines.append(f"      rollback: {'; '.join(p.rollback)}")
        if p.point_of_no_return:
            lines.append(f"      point of no return at {p.point_of_no_return}: runbook {p.runbook}")
    pending = sum(1 for p in plan.phases if p.pending)
    lines += ["", f"{pending} of {len(plan.phases)} phase(s) with changes pending."]
    return "\n".join(lines)


def outcome_text(o: RunOutcome) -> str:
    where = f"{o.phase} @ {o.region}" if o.region else o.phase
    lines = [f"{o.action} {where}: {o.status} in {o.duration_s:.1f}s (run {o.run_id[:8]})"]
    for s in o.steps:
        lines.append(f"  {s['result']:>12}  {s['id']}  {s['title']}")
    for step_id, outputs in o.outputs.items():
        if outputs:
            lines.append(f"  outputs of {step_id}: " + ", ".join(f"{k}={_short(v)}" for k, v in outputs.items()))
    if o.note:
        lines.append(o.note)
    return "\n".join(lines)


OUTPUT_VALUE_CHARS = 160  # a console line stays readable; `--output json` and `migrate history` keep it whole


def _short(value) -> str:
    """A step output for the console: long values (a whole shadow report) are cut, saying where they are."""
    text = str(value)
    if len(text) <= OUTPUT_VALUE_CHARS:
        return text
    return text[:OUTPUT_VALUE_CHARS] + f"… ({len(text):,} chars; whole in --output json)"


def status_tables(report: StatusReport) -> list[Table]:
    lock = Table(title=f"environment {report.env} · journal serial {report.serial}", title_justify="left")
    for col in ("lock", "holder", "operation", "since", "expires"):
        lock.add_column(col)
    if report.lock:
        l = report.lock
        lock.add_row(l.lock_id, l.holder, l.operation, l.acquired_at.isoformat(timespec="seconds"),
                     l.expires_at.isoformat(timespec="seconds"))
    else:
        lock.add_row("free", "", "", "", "")
    phases = Table(title="phases", title_justify="left")
    for col in ("quarter", "phase", "region", "status", "steps", "last gate", "last error"):
        phases.add_column(col, overflow="fold")
    for r in report.phases:
        status_text = r["status"] if r["built"] else f"{r['status']} (not built yet)"
        gate = r.get("last_gate")
        gate_text = f"{gate.get('verdict', '?')}: {gate.get('reason', '')}" if gate else ""
        phases.add_row(r["quarter"], r["phase"], r["region"] or "—", status_text,
                       f"{r['steps_applied']}/{r['steps_total']}", gate_text, r["last_error"] or "")
    repl = Table(title="replication per region", title_justify="left")
    for col in ("region", "state", "lag (s)", "lag (bytes)", "replay LSN", "reads from"):
        repl.add_column(col, overflow="fold")
    for r in report.replication:
        if "error" in r:
            repl.add_row(r["region"] or "—", r["state"], "", "", "", r["error"])
        else:
            repl.add_row(r["region"], r["state"], _num(r["lag_seconds"]), _num(r["lag_bytes"]),
                         r["replay_lsn"] or "", r["reader_endpoint"] or "")
    tables = [lock, phases, repl]
    if report.routing:
        tables.append(_routing_table(report.routing))
    if report.apps:
        tables.append(_apps_table(report.apps))
    return tables


def _apps_table(rows: list[dict]) -> Table:
    """Per region: the app generation running there and the schema it needs (expand/contract gates)."""
    table = Table(title="app per region (/health, live)", title_justify="left")
    for col in ("region", "state", "app", "needs schema", "breaks at"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if "generation" not in r:
            table.add_row(r["region"] or "—", r["state"], r.get("error", ""), "", "")
            continue
        table.add_row(r["region"], r["state"], f"v{r['generation']}", r["requires"] or "",
                      r["breaks_at"] or "—")
    return table


def _routing_table(rows: list[dict]) -> Table:
    """Route 53 per player geography: where its players go now (weights, or latency records)."""
    table = Table(title="routing per player geography (Route 53, live)", title_justify="left")
    for col in ("geography", "mode", "regions", "health checks", "TTL (s)"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if "error" in r:
            table.add_row(r["geography"] or "—", r["mode"], r["error"], "", "")
            continue
        if r["mode"] == "latency":
            regions = "latency: " + ", ".join(r["latency"])
        else:
            regions = ", ".join(f"{region} {weight}" for region, weight in r["weights"].items()) or "none"
        checks = ", ".join(f"{region} {'✓' if check else '—'}" for region, check in r["health_checks"].items())
        table.add_row(r["geography"], r["mode"], regions, checks, str(r["ttl_seconds"]))
    return table


def _num(v) -> str:
    if v is None:
        return "unknown"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def history_table(events) -> Table:
    """The journal, one row per event. Four columns, so that it stays readable at 80 (make, CI, a
    pipe): where the event happened reads "phase · region · step"; the date and the actor are shown
    only when they change."""
    table = Table(title="journal", title_justify="left")
    table.add_column("serial", justify="right")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("event", overflow="fold", ratio=2)
    table.add_column("detail", overflow="fold", ratio=3)
    last_day = last_actor = None
    for e in events:
        detail = e.data.get("error") or e.data.get("action") or e.data.get("reason") or ""
        if not detail and e.kind == "step_succeeded" and e.data.get("outputs"):
            detail = ", ".join(f"{k}={v}" for k, v in e.data["outputs"].items())
        day = e.at.strftime("%Y-%m-%d")
        when = e.at.strftime("%H:%M:%S") if day == last_day else e.at.strftime("%Y-%m-%d %H:%M:%S")
        last_day = day
        where = " · ".join(part for part in (e.phase, e.region, e.step) if part)
        event = f"{e.kind} ({where})" if where else e.kind
        if e.actor and e.actor != last_actor:
            event += f" by {e.actor}"
        last_actor = e.actor
        table.add_row(str(e.serial), when, event, str(detail))
    return table
