"""shadow-traffic on a real lab, with players playing throughout (the load generator in the
background): Tokyo is stood up and attached once for the module, then the phase mirrors APAC reads
from us-east-1's app to Tokyo through the WAN link. Lifecycle, a crash at every step boundary and
inside every step, a candidate that really answers differently (and an ignore rule for it), a gate
without data that pauses for a human. What mirroring costs the live latency is measured in
bench/shadow_overhead.py, not here (timings belong in bench/). Crash cases run through the shared
phase harness (tests/phases/harness.py)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import psycopg
import pytest

from migrate.lab.load import start_load
from migrate.lab.topology import SOURCE_REGION
from migrate.providers.lab.global_database import LabGlobalDatabase
from migrate.providers.lab.shadow import LabShadowMirror
from tests.cli_helpers import envelope, migrate, start_migrate
from tests.conftest import a_lab, point_at, reset_targets, small_spec
from tests.phases import harness
from tests.phases.harness import PhaseUnderTest
from migrate.engine import services

pytestmark = pytest.mark.lab

REGION = "ap-northeast-1"
PHASE = "shadow-traffic"
STEP_IDS = ["start-mirror", "observe", "report", "watch-players"]
MIN_SAMPLES = 20
APAC = {"X-Player-Geo": "apac"}
LAB_SHADOW = """[environments.lab.shadow]
sample_rate = 0.5
min_samples = 100
"""  # migration.toml's lab sample, replaced by the module's



# This module has a lab of its own, not the worker's session lab: its gate judges the candidate's answers and latency, and a lab that other
# modules have used before (in the same worker, in any order) is not the world those figures are about.
@pytest.fixture(scope="module")
def lab():
    with a_lab() as topology:
        yield topology


@pytest.fixture(scope="module")
def lab_spec(lab):
    return small_spec(lab)


def _variant(text: str, **values) -> str:
    """migration.toml with some [shadow] values replaced (each must be there once)."""
    for key, (old, new) in values.items():
        assert text.count(old) == 1, f"{old!r} not unique in migration.toml ({key})"
        text = text.replace(old, new)
    return text


def _lab_bake(text: str, seconds: float) -> str:
    """The lab environment's bake_seconds (the first one in the file) set to `seconds`."""
    start = text.index("[environments.lab.timings]")
    head, tail = text[:start], text[start:]
    tail, n = re.subn(r"(?m)^bake_seconds = [0-9.]+", f"bake_seconds = {seconds:g}", tail, count=1)
    assert n == 1, "no bake_seconds under [environments.lab.timings]"
    return head + tail


@pytest.fixture(scope="module")
def tokyo(lab, lab_spec, tmp_path_factory):
    """Tokyo stood up and attached, a shadow spec for a small lab (every APAC player sampled, 20
    answers, 1 s bakes) and players playing at 20 requests/s for the whole module."""
    folder = tmp_path_factory.mktemp("shadow")
    text = _variant(_lab_bake(Path(lab_spec).read_text(), 1),
                    lab=(LAB_SHADOW, f"[environments.lab.shadow]\nsample_rate = 1.0\nmin_samples = {MIN_SAMPLES}\n"),
                    observe=("max_observe_bakes = 12", "max_observe_bakes = 30"))
    spec = folder / "migration.toml"
    spec.write_text(text)
    no_data = folder / "no-data.toml"
    no_data.write_text(_variant(text, rate=("\nsample_rate = 1.0\n", "\nsample_rate = 0.000001\n"),
                                observe=("max_observe_bakes = 30", "max_observe_bakes = 3")))
    reset_targets(lab)
    env = {"MIGRATE_LAB_DIR": str(lab.lab_dir), "MIGRATE_STATE": str(folder / "setup.db"),
           "MIGRATE_SPEC": str(spec)}
    migrate("phase", "run", "stand-up-region", "--region", REGION, "--yes", env=env, check=0)
    migrate("phase", "run", "attach-secondary", "--region", REGION, "--yes", env=env, check=0)
    load = start_load(lab, 3600, 20, seed=7)
    try:
        yield {"spec": spec, "no_data": no_data, "folder": folder}
    finally:
        LabShadowMirror(lab).stop_mirror(SOURCE_REGION)
        load.stop()
        report = load.wait(timeout=120)
        reset_targets(lab)
    # Mirroring never cost the game anything: no request failed, no acknowledged write was lost.
    assert report.ledger["lost"] == 0, report.ledger
    print(f"\nplayers during the module: {report.requests}, errors {report.errors_by_kind}")
    # The only failures seen here (a few in thousands, with or without a mirror) are the load
    # generator's pooled connections racing uvicorn's 5 s keep-alive across the WAN: the server closes
    # an idle connection as a request leaves on it. No 5xx, no timeout, nothing else.
    assert set(report.errors_by_kind) <= {"connection_closed", "connection_reset"}, report.errors_by_kind
    log = (lab.lab_dir / f"app-{SOURCE_REGION}.log").read_text()
    assert "shadow:" not in log, [line for line in log.splitlines() if "shadow:" in line][:5]


@pytest.fixture
def shadow_env(tokyo, lab, tmp_path, monkeypatch):
    """A fresh journal for each test; the mirror switched off before and after."""
    mirror = LabShadowMirror(lab)
    mirror.stop_mirror(SOURCE_REGION)
    point_at(monkeypatch, lab, tmp_path / "state.db", tokyo["spec"])
    yield mirror
    mirror.stop_mirror(SOURCE_REGION)


def _history() -> list[dict]:
    """The test's journal, read in-process (the wait loops poll it)."""
    with harness.session() as session:
        return [{"kind": e.kind, "step": e.step, "data": e.data} for e in services.history(session, 0)]


def assert_shadowing(mirror: LabShadowMirror) -> dict:
    """Read from the source app, not from the journal: mirroring APAC reads to Tokyo, enough answers
    compared and none really different; the phase is recorded as succeeded."""
    report = mirror.mirror_report(SOURCE_REGION)
    assert report.enabled and report.target == REGION and report.geography == "apac"
    assert report.compared >= MIN_SAMPLES and report.mismatched == 0, report.summary()
    assert report.candidate_errors == 0, report.summary()
    with harness.session() as session:
        phases = services.status(session, with_replication=False).phases
    row = next(r for r in phases if r["phase"] == PHASE and r["region"] == REGION)
    assert row["status"] == "succeeded"
    assert row["last_gate"]["verdict"] == "pass"
    return report.summary()


def assert_not_shadowing(mirror: LabShadowMirror) -> None:
    report = mirror.mirror_report(SOURCE_REGION)
    assert not report.enabled
    assert json.loads(mirror.path.read_text())["enabled"] is False


def test_shadow_report_rollback_shadow_again(shadow_env):
    run = envelope(migrate("--output", "json", "phase", "run", PHASE, "--region", REGION, "--yes", check=0))
    assert run["data"]["status"] == "succeeded"
    summary = assert_shadowing(shadow_env)
    report_out = run["data"]["outputs"]["report"]
    assert report_out["verdict"] == "pass" and "/v1/players/{player_id}" in report_out["report"]["endpoints"]
    players = report_out["report"]["endpoints"]["/v1/players/{player_id}"]
    assert players["latency"]["candidate"]["p50_ms"] is not None  # Tokyo's own time, and …
    assert players["latency"]["candidate_round_trip"]["p50_ms"] > 100  # … seen across the Pacific
    print("\nshadow report:", json.dumps(summary["totals"]),
          "\n  noise cancelled:", {r: e.get("noisy_fields") for r, e in summary["endpoints"].items()})

    back = envelope(migrate("--output", "json", "phase", "rollback", PHASE, "--region", REGION, check=0))
    assert [s["result"] for s in back["data"]["steps"]] == ["undone"] * len(STEP_IDS)
    assert_not_shadowing(shadow_env)
    migrate("phase", "run", PHASE, "--region", REGION, "--yes", check=0)
    assert_shadowing(shadow_env)
    again = envelope(migrate("--output", "json", "phase", "run", PHASE, "--region", REGION, "--yes", check=0))
    assert again["data"]["status"] == "already-done"


SHADOW = PhaseUnderTest(PHASE, REGION, tuple(STEP_IDS),
                        applied=lambda lab: assert_shadowing(LabShadowMirror(lab)),
                        nothing_left=lambda lab: assert_not_shadowing(LabShadowMirror(lab)))


def test_a_crash_at_every_point_resumes_to_the_same_end(shadow_env, lab):
    harness.crash_at_every_point_in_turn(SHADOW, lab)


def test_a_crash_at_every_undo_point_rolls_back_again_to_nothing(shadow_env, lab):
    harness.crash_at_every_undo_point_in_turn(SHADOW, lab)


def test_preflight_refuses_a_region_that_was_never_stood_up(shadow_env):
    proc = migrate("--output", "json", "phase", "run", PHASE, "--region", "eu-central-1", "--yes")
    assert proc.returncode == 1
    failed = {c["check"] for c in envelope(proc)["error"]["details"]["failed"]}
    assert {"region-api-healthy", "region-secondary-streaming"} <= failed
    assert not shadow_env.mirror_report(SOURCE_REGION).enabled  # preflight changed nothing


@pytest.fixture
def tokyo_reads_other_data(lab):
    """A candidate that answers wrongly: Tokyo's reader gets a search_path under which `players` is
    a view of the live table with one more coin each (made on the writer, replicated to Tokyo)."""
    primary = lab.primary()
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS shadow_broken")
        conn.execute("CREATE OR REPLACE VIEW shadow_broken.players AS SELECT id, handle, home_region, level, "
                     "xp, coins + 1 AS coins, created_at, updated_at, profile FROM public.players")
    readers = json.loads(lab.readers_file.read_text())
    readers[REGION] = lab.pg(REGION).dsn() + "?options=-csearch_path%3Dshadow_broken%2Cpublic"
    tmp = lab.readers_file.with_name(".readers.test.tmp")
    tmp.write_text(json.dumps(readers))
    os.replace(tmp, lab.readers_file)
    try:
        yield
    finally:
        LabGlobalDatabase(lab).route_reads_to_secondary(REGION)
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS shadow_broken CASCADE")


def test_a_candidate_that_answers_differently_fails_the_gate_until_the_field_is_ignored(
        shadow_env, tokyo, tokyo_reads_other_data, tmp_path):
    failed = migrate("--output", "json", "phase", "run", PHASE, "--region", REGION, "--yes")
    assert failed.returncode == 1, failed.stderr
    error = envelope(failed)["error"]
    assert "shadow gate failed" in error["message"] and "coins" in error["message"]
    gate = next(e for e in reversed(_history()) if e["kind"] == "gate")["data"]
    assert gate["verdict"] == "fail" and gate["values"]["mismatched"] >= 1
    assert "coins" in gate["sample_diffs"][0]["fields"]  # journaled: the evidence outlives the run
    report = shadow_env.mirror_report(SOURCE_REGION)
    players = next(e for e in report.endpoints if e.route == "/v1/players/{player_id}")
    assert "coins" in players.mismatched_fields
    diff = players.sample_diffs[0]["fields"]["coins"]
    assert diff["candidate"] == diff["primary"] + 1  # the sample diff shows both answers

    # "The difference is by design": ignore the field; the re-run judges fresh answers only.
    ignoring = tmp_path / "ignoring.toml"
    ignoring.write_text(tokyo["spec"].read_text().replace(
        'ignore_fields = ["server_time", "request_id", "served_by"]',
        'ignore_fields = ["server_time", "request_id", "served_by", "coins"]'))
    passed = migrate("phase", "run", PHASE, "--region", REGION, "--yes", spec=ignoring,
                     env={"MIGRATE_SPEC": str(ignoring)})
    assert passed.returncode == 0, passed.stderr
    after = shadow_env.mirror_report(SOURCE_REGION)
    assert after.mirror_id != report.mirror_id and after.compared >= MIN_SAMPLES and after.mismatched == 0


def test_a_gate_without_data_is_inconclusive_and_pauses_until_abort(shadow_env, tokyo):
    env = {"MIGRATE_SPEC": str(tokyo["no_data"])}
    run = start_migrate("phase", "run", PHASE, "--region", REGION, "--yes", env=env, spec=tokyo["no_data"])
    try:
        deadline = time.monotonic() + 60
        while not any(e["kind"] == "run_paused" for e in _history()):
            assert time.monotonic() < deadline and run.poll() is None, run.stderr.read() if run.poll() else ""
            time.sleep(0.2)
        gate = next(e for e in _history() if e["kind"] == "gate")["data"]
        assert gate["verdict"] == "inconclusive" and gate["reason"].startswith("no data")
        assert shadow_env.mirror_report(SOURCE_REGION).enabled  # paused, still mirroring
        migrate("abort", check=0)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, err  # aborted, rollback completed
    assert_not_shadowing(shadow_env)
