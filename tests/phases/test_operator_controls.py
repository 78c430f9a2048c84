"""Operators in other terminals: a second run is refused naming the holder, pause holds the run,
abort rolls it back, and a saved plan is refused once the journal has moved."""

from __future__ import annotations

import json
import time

from migrate.engine.state.sqlite import SqliteStateStore
from migrate.engine import services
from tests.cli_helpers import envelope, migrate, start_migrate
from tests.phases import harness
from tests.phases.test_attach_secondary import REGION, assert_attached_and_verified, assert_nothing_left


def _wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _history():
    """The test's journal, read in-process (the wait loops poll it)."""
    with harness.session() as session:
        return [{"kind": e.kind, "at": e.at.isoformat(), "data": e.data} for e in services.history(session, 0)]


def test_pause_refuse_second_run_then_abort_rolls_back(clean_lab, tmp_path):
    run = start_migrate("phase", "run", "attach-secondary", "--region", REGION, "--yes")
    try:
        # The lock is watched and the pause journaled in-process: a `migrate` start costs ~1.5 s of CPU,
        # long enough on a loaded machine for the whole (small) attach to finish before a CLI pause lands.
        # Paused once a first step is done, so that abort has something to roll back.
        with harness.session() as session:
            held = _wait_for(lambda: session.store.current_lock(session.env.name), "the lock")
            _wait_for(lambda: any(e["kind"] == "step_succeeded" for e in _history()), "a first step")
            services.request(session, "pause")
        lock = {"holder": held.holder, "lock_id": held.lock_id}
        assert lock["holder"].endswith(f":{run.pid}")
        _wait_for(lambda: any(e["kind"] == "run_paused" for e in _history()), "the run to pause")

        second = migrate("phase", "run", "attach-secondary", "--region", "eu-central-1", "--yes")
        assert second.returncode == 1
        assert lock["holder"] in second.stderr and lock["lock_id"] in second.stderr

        migrate("abort", check=0)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, err  # ABORTED, rollback completed
    events = _history()
    kinds = [e["kind"] for e in events]
    assert kinds.index("operator_request") < kinds.index("run_aborted") < kinds.index("rollback_succeeded")
    abort_at = next(e["at"] for e in events if e["kind"] == "operator_request" and e["data"]["action"] == "abort")
    aborted_at = next(e["at"] for e in events if e["kind"] == "run_aborted")
    print(f"abort honoured after {(_ts(aborted_at) - _ts(abort_at)):.2f}s")
    assert_nothing_left(clean_lab)
    assert envelope(migrate("--output", "json", "status"))["data"]["lock"] is None


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_a_saved_plan_is_refused_once_the_journal_moved(clean_lab, tmp_path):
    plan = tmp_path / "plan.json"
    proc = migrate("plan", "--out", str(plan))
    assert proc.returncode == 2
    migrate("phase", "run", "attach-secondary", "--region", REGION, "--plan", str(plan), check=0)
    assert_attached_and_verified(clean_lab)

    serial = SqliteStateStore(str(tmp_path / "state.db")).last_serial("lab")
    stale = migrate("phase", "run", "attach-secondary", "--region", "eu-central-1", "--plan", str(plan))
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "journal" in stale.stderr
    assert SqliteStateStore(str(tmp_path / "state.db")).last_serial("lab") == serial
    assert not clean_lab.pg("eu-central-1").exists()

    tampered = json.loads(plan.read_text())
    tampered["spec_digest"] = "0" * 64
    tampered["journal_serial"] = serial
    plan.write_text(json.dumps(tampered))
    refused = migrate("phase", "run", "attach-secondary", "--region", "eu-central-1", "--plan", str(plan))
    assert refused.returncode == 1 and "migration.toml changed" in refused.stderr
