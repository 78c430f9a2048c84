"""The public API of the engine: one function per CLI command. Each returns a result value; the
CLI renders it. Mutating functions take the environment's lock for their whole duration."""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from migrate.engine import journal
from migrate.engine.controls import RunControls
from migrate.phasekit.model import Providers, Target
from migrate.engine.plan import Plan, build_plan, check_not_stale, load_plan, phase_plan
from migrate.engine.reporting import Reporter, SilentReporter
from migrate.engine.runner import Runner, RunOutcome
from migrate.engine.state import Event, Lock, StateStore, open_store
from migrate.errors import (LockHeld, MigrateError, NothingRunning, PreflightFailed, UnknownRegion,
                            UsageError)
from migrate.engine.registry import built_names, get_phase, is_incident
from migrate.names import INCIDENT_PHASES, PHASES


def actor() -> str:
    """user@host of whoever runs this process (journaled with every event)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass
class Session:
    """One command's view of the world: spec, environment, state store and (lazily) providers."""

    spec: Any  # migrate.spec.Spec
    env: Any  # migrate.spec.EnvironmentSpec
    store: StateStore
    providers_factory: Callable[[], Providers]
    actor: str = field(default_factory=actor)
    _providers: Providers | None = None

    @property
    def providers(self) -> Providers:
        if self._providers is None:
            self._providers = self.providers_factory()
        return self._providers

    def close(self) -> None:
        self.store.close()


def resolve_state_url(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the spec's folder, so every terminal shares one journal."""
    if url.startswith(("postgresql://", "postgres://")):
        return url
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    return str((base / path).absolute()) if not Path(path).is_absolute() else path


def open_session(spec_path: Path, env_name: str, state_url: str | None = None,
                 providers_factory: Callable[[], Providers] | None = None) -> Session:
    """Load and validate the spec, pick the environment, open its state store."""
    from migrate.providers.factory import build_providers
    from migrate.spec import load_spec

    spec = load_spec(spec_path)
    env = spec.environment(env_name)
    url = resolve_state_url(state_url or os.environ.get("MIGRATE_STATE") or env.state_url,
                            spec.path.parent)
    store = open_store(url)
    return Session(spec, env, store, providers_factory or (lambda: build_providers(spec, env)))


# --- validation of names ----------------------------------------------------------------------
def check_target(session: Session, phase_name: str, region: str | None):
    """The phase object for (phase, region); UsageError naming what is wrong and how to fix it."""
    phase = get_phase(phase_name)
    spec = session.spec
    if region is not None and region not in spec.regions:
        raise UnknownRegion(f"unknown region '{region}'",
                            hint="known regions: " + ", ".join(spec.regions))
    if phase.regional and region is None:
        targets = [e.region for e in spec.phase_entries(phase=phase_name)]
        raise UsageError(f"phase '{phase_name}' runs per region: pass --region",
                         hint="scheduled for: " + ", ".join(r for r in targets if r))
    if not phase.regional and region is not None:
        raise UsageError(f"phase '{phase_name}' is global: do not pass --region")
    if is_incident(phase_name):
        return phase  # not scheduled: an incident may strike any region of the spec
    if not spec.phase_entries(phase=phase_name, region=region):
        raise UsageError(f"phase '{phase_name}'" + (f" in region '{region}'" if region else "")
                         + " is not in the programme of " + str(spec.path.name),
                         hint="scheduled: " + ", ".join(f"{e.phase}@{e.region}" for e in spec.phase_entries(phase=phase_name)))
    return phase


def _target(session: Session, phase_name: str, region: str | None, state: journal.JournalState,
            with_providers: bool) -> Target:
    return Target(session.spec, session.env, phase_name, region, state.phase(phase_name, region),
                  (lambda: session.providers) if with_providers else None, journal=state)


def current_state(session: Session) -> journal.JournalState:
    return journal.fold(session.store.events(session.env.name))


# --- plan --------------------------------------------------------------------------------------
def make_plan(session: Session, phase: str | None = None, region: str | None = None) -> Plan:
    """The plan of the whole programme, or of the entries matching phase/region; no side effects."""
    if phase is not None:
        get_phase(phase)
    if region is not None and region not in session.spec.regions:
        raise UnknownRegion(f"unknown region '{region}'", hint="known regions: " + ", ".join(session.spec.regions))
    if phase is not None and is_incident(phase):
        check_target(session, phase, region)
        state = current_state(session)
        plans = [phase_plan(get_phase(phase), _target(session, phase, region, state, False), "incident")]
        return build_plan(session.env.name, session.spec.digest, state, plans)
    entries = session.spec.phase_entries(phase=phase, region=region)
    if phase is not None and not entries:
        raise UsageError(f"phase '{phase}'" + (f" in region '{region}'" if region else "")
                         + " is not in the programme", hint="see `migrate plan` for the whole programme")
    state = current_state(session)
    plans = [phase_plan(get_phase(e.phase), _target(session, e.phase, e.region, state, False), e.quarter)
             for e in entries]
    return build_plan(session.env.name, session.spec.digest, state, plans)


# --- run and rollback --------------------------------------------------------------------------
def _operation(verb: str, phase: str, region: str | None) -> str:
    return f"phase {verb} {phase}" + (f" --region {region}" if region else "")


def _holder_is_dead_here(holder: str) -> bool:
    """True when the lease holder ran on this host and its process no longer exists."""
    who, _, pid = holder.rpartition(":")
    if who.partition("@")[2] != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _acquire(session: Session, operation: str, run_id: str, reporter: Reporter) -> Lock:
    """Take the lease; a lease whose holder died on this very host is taken over (and journaled)."""
    env = session.env
    holder = f"{session.actor}:{os.getpid()}"
    try:
        return session.store.acquire_lock(env.name, holder=holder, operation=operation,
                                          run_id=run_id, ttl_seconds=env.lock_ttl_seconds)
    except LockHeld:
        stale = session.store.current_lock(env.name)
        if stale is None or not _holder_is_dead_here(stale.holder):
            raise
        session.store.force_unlock(env.name, stale.lock_id)
        session.store.append(env.name, journal.LOCK_BROKEN, actor=session.actor,
                             data={"lock_id": stale.lock_id, "holder": stale.holder,
                                   "operation": stale.operation,
                                   "reason": "holder process no longer exists on this host"})
        reporter.note(f"took over the lease of {stale.holder} ({stale.operation}): that process is gone")
        return session.store.acquire_lock(env.name, holder=holder, operation=operation,
                                          run_id=run_id, ttl_seconds=env.lock_ttl_seconds)


def _with_lock(session: Session, operation: str, body: Callable[[RunControls], RunOutcome],
               reporter: Reporter) -> RunOutcome:
    env = session.env
    run_id = uuid.uuid4().hex
    lock = _acquire(session, operation, run_id, reporter)
    try:
        with RunControls(session.store, env.name, lock, run_id, env.lock_ttl_seconds,
                         env.heartbeat_seconds, reporter) as controls:
            return body(controls)
    finally:
        session.store.release_lock(lock.lock_id)


def run_phase(session: Session, phase_name: str, region: str | None, *, plan_file: Path | None = None,
              reporter: Reporter | None = None) -> RunOutcome:
    """Apply the phase in the region, resuming where the journal says it stopped."""
    reporter = reporter or SilentReporter()
    phase = check_target(session, phase_name, region)
    if not phase.built:
        raise phase.not_built_error(built_names())
    saved_plan = load_plan(plan_file) if plan_file is not None else None

    def body(controls: RunControls) -> RunOutcome:
        if saved_plan is not None:  # checked under the lock, so nothing can move in between
            check_not_stale(saved_plan, env=session.env.name, spec_digest=session.spec.digest,
                            serial=session.store.last_serial(session.env.name), phase=phase_name,
                            region=region, path=plan_file)
        target = _target(session, phase_name, region, current_state(session), True)
        return Runner(session.store, phase, target, controls, reporter, session.actor).apply()

    return _with_lock(session, _operation("run", phase_name, region), body, reporter)


def rollback_phase(session: Session, phase_name: str, region: str | None,
                   reporter: Reporter | None = None) -> RunOutcome:
    """Undo every touched step of the phase in the region, in reverse; resumable and idempotent."""
    reporter = reporter or SilentReporter()
    phase = check_target(session, phase_name, region)
    if not phase.built:
        raise phase.not_built_error(built_names())

    def body(controls: RunControls) -> RunOutcome:
        target = _target(session, phase_name, region, current_state(session), True)
        return Runner(session.store, phase, target, controls, reporter, session.actor).rollback()

    return _with_lock(session, _operation("rollback", phase_name, region), body, reporter)


EVACUATE = "evacuate-region"


@dataclass
class ReturnOutcome:
    """What `migrate region return` did: the evacuation rolled back, then (if the home had been taken
    over) the region's cutover rolled back and run again; the lost writer's rows the origin lacked."""

    region: str
    outcomes: list[RunOutcome]
    home_taken: bool
    unreplicated: dict[str, Any] | None  # {"count", "players", "written_at"}; None when no writer came back

    @property
    def status(self) -> str:
        return "succeeded" if all(o.status in ("succeeded", "already-done", "rolled-back", "nothing-to-roll-back")
                                  for o in self.outcomes) else self.outcomes[-1].status

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "status": self.status, "home_taken": self.home_taken,
                "unreplicated": self.unreplicated, "runs": [o.to_json() for o in self.outcomes]}


def return_region(session: Session, region: str, reporter: Reporter | None = None) -> ReturnOutcome:
    """The way back from `evacuate-region`: its rollback (a returned lost writer fenced, its rows the origin
    lacks listed, removed; routing back once the region answers), then, when its home had been taken, the
    region's cutover rolled back (nothing of the lost writer is left to undo) and run again. Each run is
    journaled and resumable on its own; running this again after a failure goes on where it stopped."""
    check_target(session, EVACUATE, region)
    env = session.env.name
    since = session.store.last_serial(env)
    outcomes = [rollback_phase(session, EVACUATE, region, reporter)]
    events = list(session.store.events(env))
    unreplicated = None
    taken_at = cutover_done_at = 0  # serials: the last take-over of the home, the last cutover that succeeded
    for event in events:
        if event.region != region or event.phase not in (EVACUATE, "cutover"):
            continue
        if (event.phase == EVACUATE and event.kind == journal.STEP_PROGRESS and event.data.get("taken")
                and not event.data.get("origin_region")):  # a home taken, not the origin moved (no cutover then)
            taken_at = event.serial
        if event.phase == EVACUATE and event.kind == journal.STEP_PROGRESS and "unreplicated" in event.data:
            if event.serial > since:
                unreplicated = event.data["unreplicated"]
        if event.phase == "cutover" and event.kind == journal.RUN_SUCCEEDED:
            cutover_done_at = event.serial
    # a later cutover already gave the region its home back; a region outside the programme has none
    taken = taken_at > cutover_done_at and bool(session.spec.phase_entries(phase="cutover", region=region))
    if taken and outcomes[-1].status in ("rolled-back", "nothing-to-roll-back"):
        if current_state(session).phase("cutover", region).status != "rolled-back":
            outcomes.append(rollback_phase(session, "cutover", region, reporter))
        outcomes.append(run_phase(session, "cutover", region, reporter=reporter))
    return ReturnOutcome(region, outcomes, taken, unreplicated)


def preflight_only(session: Session, phase_name: str, region: str | None) -> list:
    """Run the phase's read-only preflight checks (for --dry-run); never journals."""
    phase = check_target(session, phase_name, region)
    if not phase.built:
        raise phase.not_built_error(built_names())
    target = _target(session, phase_name, region, current_state(session), True)
    return [check.run(target) for check in phase.preflight(target)]


def rehearse(session: Session, phase_name: str, region: str | None) -> dict[str, list[str]]:
    """For --dry-run: step id → what the provider says apply would change (e.g. `terraform plan`),
    for the steps that can tell and are not applied yet; changes nothing, never journals."""
    phase = check_target(session, phase_name, region)
    if not phase.built:
        raise phase.not_built_error(built_names())
    target = _target(session, phase_name, region, current_state(session), True)
    return {step.id: step.rehearse(target) for step in phase.steps(target)
            if hasattr(step, "rehearse") and target.state.step(step.id).status != journal.APPLIED}


# --- status, history, controls, lock -----------------------------------------------------------
@dataclass
class StatusReport:
    env: str
    serial: int
    lock: Lock | None
    phases: list[dict[str, Any]]
    replication: list[dict[str, Any]]
    routing: list[dict[str, Any]] = field(default_factory=list)  # per player geography, read live from Route 53
    apps: list[dict[str, Any]] = field(default_factory=list)  # per region: the app generation it runs, live

    def to_json(self) -> dict[str, Any]:
        lock = None
        if self.lock:
            lock = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                    for k, v in self.lock.__dict__.items()}
        return {"env": self.env, "journal_serial": self.serial, "lock": lock,
                "phases": self.phases, "replication": self.replication, "routing": self.routing,
                "apps": self.apps}


def status(session: Session, with_replication: bool = True) -> StatusReport:
    """Every scheduled phase's status from the journal, the lock, and replication lag per region."""
    state = current_state(session)
    lock = session.store.current_lock(session.env.name)
    # the programme's phases, then any incident (evacuate-region …) the journal holds, in any region
    targets = [(e.quarter, e.phase, e.region) for e in session.spec.programme]
    targets += [("incident", name, region) for name in INCIDENT_PHASES for region in session.spec.regions
                if journal.target_key(name, region) in state.phases]
    rows = []
    for quarter, phase_name, region in targets:
        ps = state.phase(phase_name, region)
        phase = get_phase(phase_name)
        status_text = ps.status
        if ps.status in ("running", "rolling-back") and lock is None:
            status_text = f"interrupted ({ps.status})"
        steps = phase.steps(_target(session, phase_name, region, state, False))
        done = sum(1 for s in steps if ps.step(s.id).status == journal.APPLIED)
        rows.append({"quarter": quarter, "phase": phase_name, "region": region,
                     "built": phase.built, "status": status_text, "steps_applied": done,
                     "steps_total": len(steps), "last_error": ps.last_error,
                     "last_gate": ps.gates[-1] if ps.gates else None,
                     "updated_at": ps.updated_at.isoformat() if ps.updated_at else None})
    replication, routing, apps = [], [], []
    if with_replication:
        replication = replication_report(session)
        routing = routing_report(session)
        apps = apps_report(session)
    return StatusReport(session.env.name, state.serial, lock, rows, replication, routing, apps)


def apps_report(session: Session) -> list[dict[str, Any]]:
    """Per region, the app generation its /health reports and the schema range it works with (what
    expand-schema and contract-schema check), read live; a region with no app says so."""
    try:
        runtime = session.providers.runtime
    except MigrateError as exc:
        return [{"region": None, "state": "unknown", "error": exc.one_line()}]
    out = []
    for name in session.spec.regions:
        try:
            if runtime.api_endpoint(name) is None:
                out.append({"region": name, "state": "no app"})
                continue
            health = runtime.api_health(name)
        except MigrateError as exc:
            out.append({"region": name, "state": "unknown", "error": exc.one_line()})
            continue
        app = health.app or {"generation": 1, "requires": None, "breaks_at": None}
        out.append({"region": name, "state": "healthy" if health.ok else "unhealthy",
                    "generation": app.get("generation"), "requires": app.get("requires"),
                    "breaks_at": app.get("breaks_at"), "detail": health.detail})
    return out


def routing_report(session: Session) -> list[dict[str, Any]]:
    """How Route 53 routes each player geography now (its pool's weights per region, or latency records),
    read live; a geography whose routing cannot be read says why."""
    try:
        dns = session.providers.dns
    except MigrateError as exc:
        return [{"geography": None, "mode": "unknown", "error": exc.one_line()}]
    out = []
    for geography in session.spec.traffic_mix:
        try:
            routing = dns.pool(geography).routing()
            out.append({"geography": geography, **routing.to_json()})
        except MigrateError as exc:
            out.append({"geography": geography, "mode": "unknown", "error": exc.one_line()})
    return out


def replication_report(session: Session) -> list[dict[str, Any]]:
    """Lag per target region, read live; a region whose provider cannot answer says why."""
    try:
        gdb = session.providers.global_database
    except MigrateError as exc:
        return [{"region": None, "state": "unknown", "error": exc.one_line()}]
    out = []
    for name, region in session.spec.regions.items():
        if region.role == "source":
            continue
        try:
            lag = gdb.replication_lag(name)
            reader = gdb.reader_endpoint(name)
            out.append({"region": name, "state": lag.state, "lag_seconds": lag.lag_seconds,
                        "lag_bytes": lag.lag_bytes, "replay_lsn": lag.replay_lsn,
                        "reader_endpoint": reader})
        except MigrateError as exc:
            out.append({"region": name, "state": "unknown", "error": exc.one_line()})
    return out


def history(session: Session, limit: int = 50, phase: str | None = None,
            region: str | None = None) -> list[Event]:
    """The newest `limit` journal events, optionally for one phase/region, oldest first."""
    if phase is not None:
        get_phase(phase)
    events = [e for e in session.store.events(session.env.name)
              if (phase is None or e.phase == phase) and (region is None or e.region == region)]
    return events[-limit:] if limit > 0 else events


def record_baseline(session: Session, seconds: float) -> Event:
    """Journal each geography's p95 as its players measured it over the last `seconds`: what every later
    gate holds the programme to ("no geography worse than before"). Refused, changing nothing, when a
    geography has fewer than the gates' min_samples requests in the window."""
    if not 0 < seconds <= 3600:
        raise UsageError(f"--seconds {seconds:g} is outside 0 < seconds ≤ 3600", hint="e.g. --seconds 20")
    metrics = session.providers.traffic_metrics
    if metrics is None:
        raise UsageError(f"the {session.env.kind} environment has no traffic metrics adapter")
    end = time.time()
    seen = metrics.players_latency(tuple(session.spec.traffic_mix), end - seconds, end)
    need = session.spec.gates.min_samples
    short = [g for g in seen if g.p95_ms is None or g.samples < need]
    if short:
        raise PreflightFailed(
            "baseline not recorded: " + ", ".join(f"{g.geography} {g.samples} requests" for g in short)
            + f" in the last {seconds:g} s (each geography needs min_samples {need})",
            hint="record it while players play (in the lab: `migrate lab load`), or over more --seconds")
    data = {"p95_ms": {g.geography: round(g.p95_ms, 1) for g in seen},
            "samples": {g.geography: g.samples for g in seen}, "window_seconds": seconds,
            "from": round(end - seconds, 3), "to": round(end, 3), "source": seen[0].source if seen else ""}
    return session.store.append(session.env.name, journal.BASELINE, actor=session.actor, data=data)


def request(session: Session, action: str) -> Event:
    """Journal pause/resume/abort for the run holding the lock; NothingRunning when none does."""
    lock = session.store.current_lock(session.env.name)
    if lock is None:
        raise NothingRunning(f"nothing is running in environment '{session.env.name}'",
                             hint="to undo a finished or crashed phase use `migrate phase rollback PHASE --region R`"
                             if action == "abort" else None)
    return session.store.append(session.env.name, journal.OPERATOR_REQUEST, actor=session.actor,
                                data={"action": action, "run_id": lock.run_id,
                                      "operation": lock.operation, "holder": lock.holder})


def unlock(session: Session, lock_id: str) -> Lock:
    """Break the lease `lock_id` (after a crashed holder); journaled."""
    lock = session.store.force_unlock(session.env.name, lock_id)
    session.store.append(session.env.name, journal.LOCK_BROKEN, actor=session.actor,
                         data={"lock_id": lock.lock_id, "holder": lock.holder,
                               "operation": lock.operation})
    return lock


def phase_catalogue() -> list[dict[str, Any]]:
    """Every phase in catalogue order with whether it is built, then the incident phases."""
    return [{"phase": p.name, "built": p.built, "regional": p.regional, "summary": p.summary,
             "runbook": p.runbook, "incident": is_incident(p.name)}
            for p in (get_phase(n) for n in (*PHASES, *INCIDENT_PHASES))]
