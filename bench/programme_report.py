"""What the whole programme did to the players, from one `make demo` run (scripts/demo.sh): p95 per
geography before, at every phase and after each cutover, the longest stall each cutover caused against
its physical floor, and the write ledger.

Sources, all written by that run: the load reports (`lab load --out`, per geography and request type),
the players' interval logs under `<lab>/players/` (per geography, every request type: the only record of
what a geography saw inside a phase's window) and the journal (when each phase and step ran).

    .venv/bin/python -m bench.programme_report --state .migrate/demo-state.db --lab .lab \\
        --before .migrate/load-baseline.json --after tokyo=.migrate/load-after-tokyo.json \\
        --during .migrate/load-during.json --out bench/results/programme.json

Stall floor: one round trip of the region's player link to the writer it leaves plus the promotion
(DESIGN §2 figures; the promote step's own duration from the journal)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.labkit import latency_in

GEOS = ("apac", "na", "eu")
KINDS = ("profile_read", "leaderboard_regional", "profile_write", "score_submit")
HOLD_S = 3.5  # WRITE_HOLD_SECONDS (3 s) and an interval: a held write is logged when it is answered


def baseline_of(spec: Path, state: str) -> dict[str, float] | None:
    """The baseline `migrate baseline` journaled (geography → p95 ms), if one was."""
    from migrate.engine import services

    session = services.open_session(spec, "lab", state_url=state)
    try:
        return (services.current_state(session).baseline or {}).get("p95_ms")
    finally:
        session.close()


def phase_runs(spec: Path, state: str) -> list[dict[str, Any]]:
    """Every forward run of a phase that succeeded: phase, region, epoch start and end, its steps' windows."""
    from migrate.engine import services

    session = services.open_session(spec, "lab", state_url=state)
    try:
        events = list(services.history(session, 0))
    finally:
        session.close()
    runs, open_runs = [], {}
    for e in events:
        key = (e.phase, e.region)
        if e.kind == "run_started":
            open_runs[key] = {"phase": e.phase, "region": e.region, "start": e.at.timestamp(), "steps": {}}
        elif key in open_runs and e.kind == "step_started":
            open_runs[key]["steps"][e.step] = {"start": e.at.timestamp()}
        elif key in open_runs and e.kind == "step_succeeded" and e.step in open_runs[key]["steps"]:
            open_runs[key]["steps"][e.step]["end"] = e.at.timestamp()
        elif key in open_runs and e.kind in ("run_succeeded", "run_failed", "run_aborted"):
            run = open_runs.pop(key)
            run["end"], run["outcome"] = e.at.timestamp(), e.kind
            runs.append(run)
    return [r for r in runs if r["outcome"] == "run_succeeded" and r["steps"]]  # a re-run with nothing to do is no phase


def cutover_stall(lab_dir: Path, run: dict[str, Any], settle_s: float) -> dict[str, Any]:
    """The players' longest request while the home's writes were held, against the floor."""
    from migrate.lab.topology import player_rtt_ms
    from migrate.names import SOURCE_REGION

    steps = run["steps"]
    fenced, routed = steps["fence-origin"]["start"], steps["route-writes"]["end"]
    seen = latency_in(lab_dir, fenced, routed + HOLD_S)
    # the move as players lived it: until the gate starts judging (re-home, clients re-learning their home)
    settled = steps["rehome"]["end"] + settle_s if "rehome" in steps else routed + HOLD_S
    moving = latency_in(lab_dir, fenced, settled)
    geography = {"ap-northeast-1": "apac", "eu-central-1": "eu"}.get(run["region"], "na")
    promote_s = steps["promote"]["end"] - steps["promote"]["start"]
    floor_ms = player_rtt_ms(geography, SOURCE_REGION) + promote_s * 1000
    return {"region": run["region"], "fence_to_routed_s": round(routed - fenced, 3),
            "longest_request_ms": {g: v["max_ms"] for g, v in seen.items()},
            "until_settled_s": round(settled - fenced, 1),
            "until_settled": {g: {k: v[k] for k in ("p95_ms", "max_ms", "failed")} for g, v in moving.items()},
            "failed_requests": sum(v["failed"] for v in seen.values()),
            "floor_ms": round(floor_ms, 1), "target_ms": round(floor_ms + 500, 1)}


def one_writer(spec: Path, state: str, lab_dir: Path) -> dict[str, Any]:
    """The one-writer checker over the run's history: every write each database accepted (the lab's
    write log, `migrate lab record-writes`) with the cutovers' fences and promotions from the journal."""
    from migrate.engine import services
    from migrate.lab import write_log
    from migrate.lab.checkers.writers import Accepted, check_one_writer
    from migrate.lab.topology import HOME_WRITER_REGIONS, LabTopology
    from migrate.names import REGIONS

    topology = LabTopology.load(lab_dir)
    homes = {r: topology.home_pg(r) for r in HOME_WRITER_REGIONS}
    homes = {r: pg for r, pg in homes.items() if pg.exists() and pg.is_running()}
    logs = write_log.read(topology.primary().dsn())
    for pg in homes.values():
        logs += write_log.read(pg.dsn())
    if not logs:
        return {"checked": False, "why": "no write log: run `migrate lab record-writes` before the players start"}
    session = services.open_session(spec, "lab", state_url=state)
    try:
        events = [e for e in services.history(session, 0) if e.phase == "cutover"]
    finally:
        session.close()
    started = min(w.at for w in logs) - 1.0
    history = write_log.history(topology.primary().port, {r: pg.port for r, pg in homes.items()}, logs, events, started)
    violations = check_one_writer(history, REGIONS)
    accepted: dict[str, int] = {}
    for e in history:
        if isinstance(e, Accepted):
            accepted[e.database] = accepted.get(e.database, 0) + 1
    return {"checked": True, "violations": violations[:20], "violation_count": len(violations),
            "writes_accepted": accepted}


def load_p95(path: Path) -> dict[str, dict[str, float | None]]:
    report = json.loads(path.read_text())
    return {geo: {kind: report["per_geography"][geo].get(kind, {}).get("p95_ms")
                  for kind in ("all", *KINDS)} for geo in GEOS}


def ledger(path: Path) -> dict[str, Any]:
    report = json.loads(path.read_text())
    return {"requests": report["requests"]["finished"], "errors": sum(report["errors_by_kind"].values()),
            **{k: report["ledger"][k] for k in ("acknowledged", "checked", "found", "lost", "unknown")}}


def build(spec: Path, state: str, lab_dir: Path, before: Path, after: dict[str, Path],
          during: list[Path]) -> dict[str, Any]:
    from migrate.phasekit.players_gate import SETTLE_SHARE
    from migrate.spec import load_spec

    loaded = load_spec(spec)
    settle_s = loaded.environment("lab").timings.bake_seconds * SETTLE_SHARE
    base = load_p95(before)
    recorded = baseline_of(spec, state) or {g: base[g]["all"] for g in GEOS}
    slack = loaded.gates.baseline_slack_ms
    runs = phase_runs(spec, state)
    phases = []
    for run in runs:
        seen = latency_in(lab_dir, run["start"], run["end"])
        worse = [g for g in GEOS if seen[g]["p95_ms"] is not None and recorded.get(g) is not None
                 and seen[g]["p95_ms"] > recorded[g] + slack]
        phases.append({"phase": run["phase"], "region": run["region"],
                       "seconds": round(run["end"] - run["start"], 1), "players": seen, "worse_than_before": worse})
    from migrate.lab.machine import describe_machine

    return {"benchmark": "programme", "command": "make demo (scripts/demo.sh), then python -m bench.programme_report",
            "machine": describe_machine(), "baseline_p95_ms": recorded, "baseline_slack_ms": slack,
            "before": base, "after": {name: load_p95(path) for name, path in after.items()},
            "phases": phases,
            "cutovers": [cutover_stall(lab_dir, r, settle_s) for r in runs if r["phase"] == "cutover"],
            "ledger": [ledger(p) for p in during], "one_writer": one_writer(spec, state, lab_dir)}


def render(report: dict[str, Any]) -> str:
    lines = ["p95 per geography and request type (ms), same run: before (all players on us-east-1) and after each cutover"]
    stages = [("before", report["before"]), *report["after"].items()]
    lines.append(f"  {'geography':9} {'requests':20} " + " ".join(f"{name[:14]:>14}" for name, _ in stages))
    for geo in GEOS:
        for kind in ("all", *KINDS):
            cells = " ".join(f"{_ms(p[geo][kind]):>14}" for _, p in stages)
            lines.append(f"  {geo:9} {kind:20} {cells}")
    lines.append("p95 per geography (all requests, ms) while each phase ran (* = worse than the recorded baseline "
                 "+ [gates] baseline_slack_ms; shift-traffic's bakes and every other phase's watch-players judge it):")
    for p in report["phases"]:
        label = p["phase"] + (f" {p['region']}" if p["region"] else "")
        cells = "  ".join(f"{g} {_ms(p['players'][g]['p95_ms'])}{'*' if g in p['worse_than_before'] else ''}"
                          for g in GEOS)
        lines.append(f"  {label:34} {p['seconds']:7.1f} s  {cells}")
    for c in report["cutovers"]:
        longest = ", ".join(f"{g} {_ms(v)}" for g, v in c["longest_request_ms"].items())
        lines.append(f"cutover {c['region']}: writes held {c['fence_to_routed_s']:.2f} s; players' longest request "
                     f"{longest} ms; floor (1 RTT + promotion) {c['floor_ms']:.0f} ms, target "
                     f"{c['target_ms']:.0f} ms; {c['failed_requests']} failed requests")
        lines.append(f"  until the gate judged ({c['until_settled_s']:.0f} s: re-home, clients re-learning their home): "
                     + ", ".join(f"{g} p95 {_ms(v['p95_ms'])} max {_ms(v['max_ms'])} ms, {v['failed']} failed"
                                 for g, v in c["until_settled"].items()))
    for i, led in enumerate(report["ledger"], 1):
        lines.append(f"load {i}: {led['requests']} requests, {led['errors']} errors; {led['acknowledged']} acknowledged "
                     f"writes, latest of {led['checked']} checked in the database: {led['found']} found, "
                     f"{led['lost']} lost, {led['unknown']} unknown")
    w = report["one_writer"]
    if w["checked"]:
        taken = ", ".join(f"{db} {n}" for db, n in sorted(w["writes_accepted"].items()))
        lines.append(f"one writer per player: {w['violation_count']} violations over every write each database "
                     f"accepted ({taken})" + ("" if not w["violations"] else f"; first: {w['violations'][0]}"))
    else:
        lines.append(f"one writer per player: not checked ({w['why']})")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    parser.add_argument("--state", required=True, help="the demo's journal (sqlite path or URL)")
    parser.add_argument("--lab", type=Path, default=Path(".lab"))
    parser.add_argument("--before", type=Path, required=True, help="the baseline load report")
    parser.add_argument("--after", action="append", default=[], help="name=load report, in programme order")
    parser.add_argument("--during", action="append", type=Path, default=[], help="a background load report")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    after = dict(item.split("=", 1) for item in args.after)
    state = args.state if "://" in args.state else f"sqlite:///{Path(args.state).absolute()}"
    report = build(args.spec, state, args.lab, args.before, {k: Path(v) for k, v in after.items()}, args.during)
    print(render(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
