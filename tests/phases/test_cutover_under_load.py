"""cutover and its rollback while players play (the load generator: 60/25/15 geographies, profile
writes with the ledger), on a real lab: no acknowledged write lost, no player request failed (writes
to the moving home are held, not refused), and, over the recorded history — every write each database
accepted (its own log) with the fences and promotion from the journal — never two writers for a home.
The players' slowest request during the cutover is printed next to the quiet stretch before it (the
figure belongs to bench/, not to a threshold here)."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from migrate.engine import services
from migrate.lab import write_log
from migrate.lab.checkers.writers import Accepted, check_one_writer
from migrate.lab.load.runner import start_load
from migrate.lab.player_logs import INTERVAL_S, read_range
from migrate.lab.topology import REGIONS
from tests.cli_helpers import migrate
from tests.phases import harness

REGION = "ap-northeast-1"
RATE = 30  # player requests per second: a few profile writes a second for Tokyo's home
HOLD_S = 3.5  # the apps' WRITE_HOLD_SECONDS (3 s) and an interval


@pytest.fixture
def logged_lab(clean_lab):
    """Tokyo stood up (its app and Redis: re-homed players submit scores there), expanded, every write
    each database accepts logged; all of it removed afterwards."""
    with harness.session() as session:
        assert services.run_phase(session, "stand-up-region", REGION).status == "succeeded"
        assert services.run_phase(session, "expand-schema", None).status == "succeeded"
    write_log.install(clean_lab.primary().dsn())
    yield clean_lab
    with harness.session() as session:
        services.rollback_phase(session, "cutover", REGION)
    write_log.uninstall(clean_lab.primary().dsn())
    with harness.session() as session:
        services.rollback_phase(session, "expand-schema", None)


def own_writes(dsn: str, port: int, home: str | None = None) -> int:
    return sum(1 for w in write_log.read(dsn) if w.server_port == port and (home is None or w.home == home))


def explain(lab) -> None:
    """On a failure: the fences, the routes and the end of us-east-1's app log (where the players' requests went)."""
    from migrate.providers.lab.home_writers import ORIGIN, LabHomeWriters

    hw = LabHomeWriters(lab)
    print(f"origin fenced for {hw.fenced(ORIGIN)}; {REGION} routed in {hw.writes_routed(REGION)}")
    log = (lab.lab_dir / "app-us-east-1.log").read_text().splitlines()
    print("us-east-1 app log, last 60 lines:\n" + "\n".join(log[-60:]))


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_cutover_and_rollback_under_load_lose_nothing_fail_nothing_and_keep_one_writer(logged_lab):
    lab = logged_lab
    origin, home = lab.primary(), lab.home_pg(REGION)
    started_at = time.time()
    since = harness.last_serial()
    ready = threading.Event()
    load = start_load(lab, duration_s=900, rate=RATE, seed=5, on_start=lambda _info: ready.set())
    try:
        assert ready.wait(60), "the players never started"
        quiet_from = time.time()
        time.sleep(5)  # a quiet stretch to compare with
        cut = migrate("phase", "run", "cutover", "--region", REGION, "--yes")
        assert cut.returncode == 0, cut.stderr
        wait_for(lambda: own_writes(home.dsn(), home.port, REGION) >= 3, "the new writer to take Tokyo's writes")
        home_log = write_log.read(home.dsn())  # before the rollback removes it
        back = migrate("phase", "rollback", "cutover", "--region", REGION, "--yes")
        assert back.returncode == 0, back.stderr
        after = own_writes(origin.dsn(), origin.port, REGION)
        wait_for(lambda: own_writes(origin.dsn(), origin.port, REGION) >= after + 3,
                 "the origin to take Tokyo's writes again")
    except AssertionError:
        explain(lab)
        raise
    finally:
        load.stop()
        report = load.wait(timeout=180).to_json()
    ledger = report["ledger"]
    assert ledger["acknowledged"] > 0 and ledger["lost"] == 0, ledger["examples"]
    if report["errors_by_kind"]:
        explain(lab)
    assert report["errors_by_kind"] == {}, report["errors_by_kind"]  # held, never failed

    with harness.session() as session:
        events = [e for e in services.history(session, 0) if e.serial > since and e.phase == "cutover"]
    history = write_log.history(origin.port, {REGION: home.port}, write_log.read(origin.dsn()) + home_log,
                                events, started_at)
    assert check_one_writer(history, REGIONS) == []
    assert any(isinstance(e, Accepted) and e.database.startswith(REGION) for e in history)

    steps = {(e.kind, e.step): e.at.timestamp() for e in events}
    fenced, routed = steps[("step_started", "fence-origin")], steps[("step_succeeded", "route-writes")]
    # a held write is logged when it is answered, after routing flipped: the window runs a hold further
    window = {g: read_range(lab.lab_dir, g, fenced - INTERVAL_S, routed + HOLD_S) for g in ("apac", "na", "eu")}
    quiet = {g: read_range(lab.lab_dir, g, quiet_from, quiet_from + 5) for g in ("apac", "na", "eu")}
    print("\ncutover under load:", json.dumps({
        "fence_to_routed_s": round(routed - fenced, 3),
        "catch_up": next(e.data["outputs"] for e in events if e.kind == "step_succeeded" and e.step == "catch-up"),
        "steps_s": {step: round(steps[("step_succeeded", step)] - steps[("step_started", step)], 3)
                    for step in ("fence-origin", "catch-up", "promote", "reverse-stream", "route-writes")},
        "slowest_request_ms_during_cutover": {g: round(v.histogram.get_max_value() / 1000, 1)
                                              for g, v in window.items() if v.samples},
        "slowest_request_ms_quiet_before": {g: round(v.histogram.get_max_value() / 1000, 1)
                                            for g, v in quiet.items() if v.samples},
        "player_requests": report["requests"]["finished"], "ledger": {k: ledger[k] for k in ("acknowledged", "lost")},
        "writes_taken_by_the_new_writer": sum(1 for e in history if isinstance(e, Accepted)
                                              and e.database.startswith(REGION))}))
