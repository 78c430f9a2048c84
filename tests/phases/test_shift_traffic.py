"""shift-traffic on a real lab: real apps behind the WAN proxy, Route 53 on moto, players from the load
generator resolving api.game.example with the TTL and health checks, gates from the apps' /metrics.

- A gate that sees no data (no players) is Inconclusive and pauses; resume re-evaluates, abort puts
  traffic back.
- Lifecycle: stand-up + attach Tokyo through the CLI, shift, end state (latency records with health
  checks, players' resolvers answering Tokyo for APAC), rollback (weights back to the source), shift again.
- Crashes: the process SIGKILLs itself at every step boundary and inside every step (forward and during
  the rollback), each run resumed by the next, to the same end state.
- Chaos: Tokyo's app is killed during the 100 % step under load: the gate fails, routing is back at the
  last passed step (50 %) without a human, no acknowledged write is lost, the error burst is reported.

No timing is a pass/fail threshold here; the lab spec is shortened (schedule 50 → 100, bake = the lab's
TTL + 3 s (make test runs this module with a 2 s TTL: MIGRATE_LAB_DNS_TTL), min_samples 5, p95 ceilings far out of the way: the tests pin the mechanics, bench/ the figures).
The journal is read in-process (tests/phases/harness.py); `migrate` runs as a subprocess where the
process boundary is the point (a SIGKILL, an abort from a second terminal, exit codes)."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from migrate.lab.load.resolver import Resolver, route53_client
from migrate.lab.load.runner import start_load
from migrate.lab import aws_world, processes, world
from migrate.lab.aws_world import lab_ttl_seconds
from migrate.engine import services
from tests.cli_helpers import envelope, migrate, start_migrate
from tests.phases import harness
from tests.conftest import point_at, reset_targets

pytestmark = pytest.mark.latency_gated  # the gates judge the players' p95: run alone (Makefile)

REGION, SOURCE = "ap-northeast-1", "us-east-1"
STEP_IDS = ["shift-weights", "latency-records"]
RATE = 40  # player requests per second: ≥ min_samples per geography in each 3 s gate window



def _sub(pattern: str, replacement: str, text: str) -> str:
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert n == 1, f"migration.toml no longer matches {pattern!r}"
    return new


@pytest.fixture(scope="module")
def shift_spec(lab_spec) -> Path:
    text = lab_spec.read_text()
    # shift-traffic's preflight wants Tokyo's shadow-traffic passed: every APAC player mirrored, 20 answers
    lab_shadow = "[environments.lab.shadow]\nsample_rate = 0.5\nmin_samples = 100\n"
    assert text.count(lab_shadow) == 1, "migration.toml's [environments.lab.shadow] changed"
    text = text.replace(lab_shadow, "[environments.lab.shadow]\nsample_rate = 1.0\nmin_samples = 20\n")
    text = _sub(r"^shift_schedule = .*$", "shift_schedule = [50, 100]", text)
    lab_env = text.index("[environments.lab.timings]")
    head, tail = text[:lab_env], text[lab_env:]
    # the first TTL of a bake settles, the 3 s after it are the gate window (RATE fills min_samples there)
    tail = _sub(r"^bake_seconds = \S+", f"bake_seconds = {lab_ttl_seconds() + 3}", tail)
    text = head + tail
    gates = text.index("[gates]")
    head, tail = text[:gates], text[gates:]
    tail = _sub(r"^min_samples = \d+", "min_samples = 5", tail)
    tail = _sub(r"^error_rate_max = \S+", "error_rate_max = 0.02", tail)
    tail = _sub(r"^apac = \d+\nna = \d+\neu = \d+", "apac = 5000\nna = 5000\neu = 5000", tail)
    path = lab_spec.parent / "shift-traffic.toml"
    path.write_text(head + tail)
    return path


@pytest.fixture(scope="module")
def tokyo(lab, shift_spec, tmp_path_factory):
    """The session lab with this module's journal and spec; Tokyo is stood up and attached by the first test
    that needs it (`ensure_tokyo`); everything the phases made is removed at the end."""
    state = tmp_path_factory.mktemp("shift") / "state.db"
    with pytest.MonkeyPatch.context() as mp:
        point_at(mp, lab, state, shift_spec)
        reset_targets(lab)
        try:
            yield lab
        finally:
            reset_targets(lab)


def ensure_tokyo() -> None:
    """stand-up-region, attach-secondary and shadow-traffic (under a short load) for Tokyo through the
    CLI where they are not done yet (read in-process first: most tests find them done), and
    shift-traffic not started: each test starts from traffic on the source, whatever the test before it
    left."""
    def status() -> dict[str, str]:
        with harness.session() as session:
            return {r["phase"]: r["status"] for r in services.status(session, with_replication=False).phases
                    if r["region"] == REGION}

    done = status()
    for phase in ("stand-up-region", "attach-secondary"):
        if done.get(phase) != "succeeded":
            migrate("phase", "run", phase, "--region", REGION, "--yes", check=0)
    if done.get("shadow-traffic") != "succeeded":
        load = start_players(_lab_topology(), seed=3)
        try:
            migrate("phase", "run", "shadow-traffic", "--region", REGION, "--yes", check=0)
        finally:
            load.stop()
            load.wait(timeout=180)
    if done.get("shift-traffic") not in (None, "not-started", "rolled-back"):
        with harness.session() as session:
            services.rollback_phase(session, "shift-traffic", REGION)


def _lab_topology():
    from migrate.lab.topology import LabTopology

    return LabTopology.load(Path(os.environ["MIGRATE_LAB_DIR"]))


def history() -> list[dict]:
    """The module's journal, read in-process (the wait loops poll it)."""
    with harness.session() as session:
        return [{"serial": e.serial, "at": e.at.isoformat(), "kind": e.kind, "phase": e.phase, "step": e.step,
                 "data": e.data}
                for e in services.history(session, 0)]


def gates(since: int = 0) -> list[dict]:
    return [e["data"] for e in history() if e["kind"] == "gate" and e["phase"] == "shift-traffic"
            and e["serial"] > since]


def last_serial() -> int:
    events = history()
    return events[-1]["serial"] if events else 0


def routing(lab, geography: str = "apac") -> tuple[dict[str, int], dict[str, str | None]]:
    """(weights, latency region → health check) of the geography's pool, read from moto."""
    records = [r for r in aws_world.api_records(aws_world.lab_aws_clients(lab), aws_world.zone_id(lab))
               if r["Name"] == aws_world.pool_name(geography)]
    weights = {r["LabRegion"]: r["Weight"] for r in records if "Weight" in r}
    latency = {r["Region"]: r.get("HealthCheckId") for r in records if "Region" in r}
    return weights, latency


def assert_other_geographies_untouched(lab) -> None:
    for geography in ("na", "eu"):
        assert routing(lab, geography) == ({SOURCE: 100}, {}), geography


def assert_shifted(lab) -> None:
    weights, latency = routing(lab)
    assert weights == {}, "the weighted records are replaced (Route 53 refuses two policies on one name)"
    assert set(latency) == {SOURCE, REGION} and all(latency.values()), latency
    # what players' resolvers answer now: APAC to Tokyo, NA and EU to us-east-1 (their nearest active region)
    resolver = Resolver(route53_client(lab.moto_endpoint))
    resolver.refresh(force=True)
    assert [resolver.resolve(g, 7) for g in ("apac", "na", "eu")] == [REGION, SOURCE, SOURCE]
    assert_other_geographies_untouched(lab)


def assert_back_on_source(lab) -> None:
    weights, latency = routing(lab)
    assert latency == {}
    assert weights == {SOURCE: 100, REGION: 0}
    assert_other_geographies_untouched(lab)


def start_players(lab, seed: int):
    """Players at RATE in the background, returned once they resolved the API name and set off."""
    started = threading.Event()
    load = start_load(lab, duration_s=900, rate=RATE, seed=seed, on_start=lambda _info: started.set())
    assert started.wait(60), "the players never started"
    return load


def wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def players(tokyo):
    """Players playing in the background for one test; the report (ledger checked) after it."""
    ensure_tokyo()
    load = start_players(tokyo, seed=7)
    reports = []
    yield reports
    load.stop()
    reports.append(load.wait(timeout=180).to_json())
    ledger = reports[-1]["ledger"]
    assert ledger["acknowledged"] > 0
    assert ledger["lost"] == 0, ledger["examples"]


# --- no data -------------------------------------------------------------------------------------
def test_a_gate_without_data_is_inconclusive_pauses_and_abort_puts_traffic_back(tokyo):
    ensure_tokyo()
    since = last_serial()
    run = start_migrate("phase", "run", "shift-traffic", "--region", REGION, "--yes")
    try:
        first = wait_for(lambda: gates(since), "the first gate evaluation")[0]
        assert first["verdict"] == "inconclusive" and first["at"] == "50 %"
        assert first["action"] == "held for a human"
        assert first["values"]["regions"][REGION]["requests"] == 0  # nobody plays: no data, never a pass
        assert any("no request in the window" in r for r in first["reasons"])
        wait_for(lambda: [e for e in history() if e["kind"] == "run_paused" and e["serial"] > since], "the pause")
        assert routing(tokyo)[0] == {SOURCE: 50, REGION: 50}  # held at the step, not moved further

        migrate("resume", check=0)  # resume bakes and evaluates again: still nothing, so it pauses again
        wait_for(lambda: len(gates(since)) >= 2, "the second evaluation")
        assert gates(since)[1]["verdict"] == "inconclusive"
        wait_for(lambda: len([e for e in history() if e["kind"] == "run_paused" and e["serial"] > since]) >= 2,
                 "the second pause")

        migrate("abort", check=0)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, err  # ABORTED, rollback completed
    assert_back_on_source(tokyo)
    kinds = [e["kind"] for e in history() if e["serial"] > since]
    assert kinds.index("run_aborted") < kinds.index("rollback_succeeded")
    status = envelope(migrate("--output", "json", "status"))["data"]
    row = next(r for r in status["phases"] if r["phase"] == "shift-traffic" and r["region"] == REGION)
    assert row["last_gate"]["verdict"] == "inconclusive"


# --- lifecycle -----------------------------------------------------------------------------------
def test_shift_verify_rollback_shift_again(tokyo, players):
    since = last_serial()
    done = migrate("--output", "json", "phase", "run", "shift-traffic", "--region", REGION, "--yes", check=0)
    outcome = envelope(done)["data"]
    assert outcome["status"] == "succeeded"
    assert all(c["ok"] for c in outcome["verify"])
    assert outcome["outputs"]["shift-weights"]["last_passed"] == 50
    assert outcome["outputs"]["latency-records"]["routing"]["mode"] == "latency"
    assert_shifted(tokyo)
    passed = gates(since)
    assert [(g["at"], g["verdict"]) for g in passed] == [("50 %", "pass"), ("100 % (latency records)", "pass")]
    assert passed[0]["routing"]["weights"] == {SOURCE: 50, REGION: 50}
    for g in passed:  # what was measured is journaled with the verdict
        assert g["values"]["regions"][REGION]["requests"] > 0
        assert all(v["samples"] >= 5 and v["p95_ms"] for v in g["values"]["geographies"].values())
        assert g["values"]["replication_lag_seconds"] is not None

    assert migrate("phase", "run", "shift-traffic", "--region", REGION, "--yes", check=0)  # already done
    back = envelope(migrate("--output", "json", "phase", "rollback", "shift-traffic", "--region", REGION, check=0))
    assert [s["result"] for s in back["data"]["steps"]] == ["undone", "undone"]
    assert_back_on_source(tokyo)

    migrate("phase", "run", "shift-traffic", "--region", REGION, "--yes", check=0)
    assert_shifted(tokyo)
    migrate("phase", "rollback", "shift-traffic", "--region", REGION, check=0)
    assert_back_on_source(tokyo)


# --- crashes -------------------------------------------------------------------------------------
# inside (@1) is right after the routing change; inside@2 is the bake's first tick (the bake has begun, no gate
# has been judged). A count that relies on how many ticks fit in a bake (e.g. @20) depends on the machine's
# speed: on a busy one the bake ended first and the run succeeded instead of dying.
SHIFT = harness.PhaseUnderTest("shift-traffic", REGION, tuple(STEP_IDS), assert_shifted, assert_back_on_source,
                               inside_at={step: ("", "@2") for step in STEP_IDS}, undo_inside=tuple(STEP_IDS))


def test_a_crash_at_every_point_resumes_to_the_same_end_state(tokyo, players):
    """Each run dies at the next point and the next run resumes it (tests/phases/harness.py); the rollback
    is crashed the same way at every undo point. A killed bake never counts as passed."""
    since = last_serial()
    harness.crash_at_every_point_in_turn(SHIFT, tokyo)
    # 50 % passed once before the crash after it; the 100 % step passed in the run that died just after it
    # and again in the last run (its bake restarts)
    verdicts = [(g["at"], g["verdict"]) for g in gates(since)]
    assert verdicts.count(("50 %", "pass")) >= 1 and ("100 % (latency records)", "pass") in verdicts
    assert all(v == "pass" for _, v in verdicts)
    harness.crash_at_every_undo_point_in_turn(SHIFT, tokyo)


# --- chaos ---------------------------------------------------------------------------------------
def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_chaos_target_app_killed_mid_shift_reverts_to_the_last_passed_step(tokyo):
    ensure_tokyo()
    load = start_players(tokyo, seed=99)
    since = last_serial()
    run = start_migrate("phase", "run", "shift-traffic", "--region", REGION, "--yes")
    try:
        wait_for(lambda: any(g["at"] == "50 %" and g["verdict"] == "pass" for g in gates(since)), "50 % to pass")
        wait_for(lambda: routing(tokyo)[1], "the latency records")  # the 100 % step's bake has begun
        pid = processes.running_pid(tokyo.lab_dir, world.app_process(REGION))
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # Tokyo's app dies mid-step, without draining
        killed_at = time.time()
        _, err = run.communicate(timeout=120)  # returns once the revert is journaled
    finally:
        if run.poll() is None:
            run.kill()
        load.stop()
        report = load.wait(timeout=180).to_json()
        world.stop_region_app(tokyo, REGION)  # forget the dead pid
        world.start_region_app(tokyo, REGION)
    # When this fails, say when the kill came against the 100 % step's gate (one CI run in session 7 saw
    # the 100 % bake pass and verify find the app dead: either the kill came after the gate was judged,
    # or the gate missed a dead target; the journal's times tell which)
    timeline = [(e["at"], e["kind"], e["step"], (e["data"] or {}).get("verdict"), (e["data"] or {}).get("values"))
                for e in history() if e["serial"] > since and e["kind"] in ("gate", "step_started", "step_succeeded")]
    assert run.returncode != 0 and "gate failed at 100 % (latency records)" in err, (
        f"killed at {datetime.fromtimestamp(killed_at, UTC).isoformat()}; journal: {json.dumps(timeline, default=str)}\n{err}")
    # back at the last passed step, without a human: the weighted records at 50 %, no latency record
    assert routing(tokyo) == ({SOURCE: 50, REGION: 50}, {})
    failed_events = [e for e in history() if e["kind"] == "gate" and e["serial"] > since
                     and e["data"]["verdict"] == "fail"]
    assert len(failed_events) == 1
    failed = failed_events[0]["data"]
    assert failed["at"] == "100 % (latency records)"
    assert any(what.startswith(f"{REGION} from") for what in failed["values"]["unreachable"])
    assert failed["action"].startswith("reverted: weighted records back")
    kinds = [e["kind"] for e in history() if e["serial"] > since]
    assert kinds[-2:] == ["step_failed", "run_failed"]

    # nothing acknowledged is lost; the players' error burst is finite and reported, with the gate's own count
    ledger = report["ledger"]
    assert ledger["acknowledged"] > 0 and ledger["lost"] == 0, ledger["examples"]
    burst = sum(report["errors_by_kind"].values())
    assert burst < report["requests"]["finished"]
    journaled_revert = _ts(failed_events[0]["at"]) - killed_at
    print("chaos:", json.dumps({
        "player_errors": report["errors_by_kind"], "player_requests": report["requests"]["finished"],
        "gate_unreachable": failed["values"]["unreachable"], "gate_5xx_during_bake": failed["errors_during_bake"],
        "kill_to_revert_journaled_s": round(journaled_revert, 2),
        "gate_detected_after_change_s": failed["detected_after_seconds"], "revert_s": failed["revert_seconds"],
        "ledger": {k: ledger[k] for k in ("acknowledged", "found", "lost", "unknown")}}))

    migrate("phase", "rollback", "shift-traffic", "--region", REGION, check=0)
    assert_back_on_source(tokyo)
