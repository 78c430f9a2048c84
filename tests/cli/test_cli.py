"""The CLI as an operator meets it: exit codes, one-line errors, JSON envelopes, plans, locks.
These run the real `migrate` process; none of them needs the lab."""

from __future__ import annotations

import os

import pytest

from migrate.engine.state.sqlite import SqliteStateStore
from tests.cli_helpers import envelope, migrate
from tests.conftest import SPEC


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRATE_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("MIGRATE_LAB_DIR", str(tmp_path / "no-lab"))
    return tmp_path / "state.db"


def test_plan_markdown_lists_every_phase_of_every_quarter_with_actions_checks_and_rollback():
    proc = migrate("plan", "--format", "markdown")
    assert proc.returncode == 2  # changes pending
    text = proc.stdout
    from migrate.spec import load_spec

    spec = load_spec(SPEC)
    for quarter in spec.quarters:
        assert f"## {quarter.name}" in text
    for entry in spec.programme:
        heading = f"### {entry.phase} @ {entry.region}" if entry.region else f"### {entry.phase}"
        assert heading in text
    assert text.count("**Preflight checks**") == len(spec.programme)
    assert text.count("**Rollback**") == len(spec.programme)
    assert "`seed-secondary`" in text and "pg_basebackup" in text
    from migrate.engine.registry import all_phases

    built = {p.name for p in all_phases() if p.built}
    assert text.count("— **not built yet**") == len([e for e in spec.programme if e.phase not in built])


def test_plan_json_is_a_stamped_frozen_value():
    proc = migrate("--output", "json", "plan")
    assert proc.returncode == 2
    doc = envelope(proc)
    assert doc["schema"] == "migrate/v1" and doc["ok"] is True and doc["exit_code"] == 2
    plan = doc["data"]
    assert plan["format"] == "migrate.plan/v1" and plan["journal_serial"] == 0
    assert len(plan["spec_digest"]) == 64 and plan["changes_pending"] is True


def test_running_a_phase_without_its_lab_fails_in_one_line_saying_so():
    proc = migrate("phase", "run", "cutover", "--region", "ap-northeast-1", "--yes")
    assert proc.returncode == 1
    assert "the lab is not up" in proc.stderr and "migrate lab up" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_phase_list_says_which_phases_are_built():
    proc = migrate("phase", "list", check=0)
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert all("built" in lines[name] and "not built yet" not in lines[name]
               for name in ("attach-secondary", "cutover", "contract-schema"))


@pytest.mark.parametrize("args,needle", [
    (("phase", "run", "attach-secondry", "--region", "ap-northeast-1", "--yes"), "did you mean 'attach-secondary'"),
    (("phase", "run", "attach-secondary", "--region", "mars-1", "--yes"), "unknown region 'mars-1'"),
    (("phase", "run", "attach-secondary", "--yes"), "pass --region"),
    (("phase", "run", "attach-secondary", "--region", "us-east-1", "--yes"), "not in the programme"),
    (("plan", "--format", "yaml"), "--format 'yaml'"),
    (("--env", "staging", "plan"), "staging"),
    (("phase", "run", "attach-secondary", "--region", "ap-northeast-1", "--plan", "/nonexistent/plan.json"), "plan file not found"),
    (("--output", "xml", "plan"), "xml"),
    (("phase", "frobnicate"), "frobnicate"),
])
def test_bad_input_gets_one_clear_line_a_non_zero_exit_and_changes_nothing(args, needle, own_state):
    proc = migrate(*args)
    assert proc.returncode == 1, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    error_lines = [l for l in proc.stderr.splitlines() if l.startswith("error")]
    assert len(error_lines) == 1
    if own_state.exists():
        assert SqliteStateStore(str(own_state)).last_serial("lab") == 0


def test_failures_still_print_the_json_envelope():
    proc = migrate("--output", "json", "phase", "run", "cutover", "--region", "ap-northeast-1", "--yes")
    assert proc.returncode == 1
    doc = envelope(proc)
    assert doc["ok"] is False and doc["error"]["code"] == "PREFLIGHT_FAILED"
    assert "the lab is not up" in doc["error"]["message"] and "migrate lab up" in doc["error"]["hint"]


MALFORMED = {
    "syntax": ("version = 1\n[traffic_mix\napac = 0.6\n", "migration.toml:2"),
    "negative bake": (None, "bake_seconds"),
    "unknown phase": (None, "did you mean"),
}


def _spec_variant(tmp_path, name):
    text = SPEC.read_text()
    if name == "syntax":
        body = MALFORMED[name][0]
    elif name == "negative bake":
        body = text.replace("bake_seconds = 25 ", "bake_seconds = -5 ", 1)
    else:
        body = text.replace('phase = "attach-secondary"', 'phase = "atach-secondary"', 1)
    assert body != text
    path = tmp_path / "migration.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_spec_gives_one_line_naming_file_and_field_and_writes_nothing(tmp_path, case, own_state):
    spec = _spec_variant(tmp_path, case)
    before = sorted(os.listdir(tmp_path))
    for args in (("plan",), ("phase", "run", "attach-secondary", "--region", "ap-northeast-1", "--yes"), ("status",)):
        proc = migrate(*args, spec=spec)
        assert proc.returncode == 1, proc.stderr
        error_lines = [l for l in proc.stderr.splitlines() if l.startswith("error")]
        assert len(error_lines) == 1 and "migration.toml" in error_lines[0]
        assert MALFORMED[case][1] in proc.stderr
        assert "hint:" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == before
    assert not own_state.exists()


def test_a_second_mutating_run_is_refused_naming_the_holder(own_state):
    store = SqliteStateStore(str(own_state))
    lock = store.acquire_lock("lab", holder="alice@ops-box:4242", operation="phase run attach-secondary --region eu-central-1",
                              run_id="r1", ttl_seconds=600)
    proc = migrate("phase", "run", "attach-secondary", "--region", "ap-northeast-1", "--yes")
    assert proc.returncode == 1
    assert "alice@ops-box:4242" in proc.stderr and lock.lock_id in proc.stderr
    assert "unlock --force" in proc.stderr
    status = envelope(migrate("--output", "json", "status"))
    assert status["data"]["lock"]["holder"] == "alice@ops-box:4242"
    migrate("unlock", lock.lock_id, check=1)  # without --force: refused
    migrate("unlock", "--force", lock.lock_id, check=0)
    assert store.current_lock("lab") is None
    history = envelope(migrate("--output", "json", "history"))["data"]
    assert history[-1]["kind"] == "lock_broken" and history[-1]["data"]["holder"] == "alice@ops-box:4242"


def test_controls_with_nothing_running_say_so():
    for action in ("pause", "resume", "abort"):
        proc = migrate(action)
        assert proc.returncode == 1 and "nothing is running" in proc.stderr


def test_rollback_of_a_phase_never_run_is_a_no_op_that_needs_no_lab():
    # no lab here: rollback must still say there is nothing to undo rather than crash
    proc = migrate("phase", "rollback", "attach-secondary", "--region", "ap-northeast-1")
    assert proc.returncode == 0, proc.stderr
    assert "nothing-to-roll-back" in proc.stdout


def test_a_team_shared_postgresql_journal_works_through_the_cli(pg_database):
    lock_refusal = None
    proc = migrate("--state", pg_database, "--output", "json", "plan")
    assert proc.returncode == 2 and envelope(proc)["data"]["journal_serial"] == 0
    from migrate.engine.state.postgres import PostgresStateStore

    store = PostgresStateStore(pg_database)
    lock = store.acquire_lock("lab", holder="bob@bastion:7", operation="phase run attach-secondary --region ap-northeast-1",
                              run_id="r", ttl_seconds=600)
    lock_refusal = migrate("--state", pg_database, "phase", "run", "attach-secondary", "--region", "eu-central-1", "--yes")
    assert lock_refusal.returncode == 1 and "bob@bastion:7" in lock_refusal.stderr
    migrate("--state", pg_database, "unlock", "--force", lock.lock_id, check=0)
    history = envelope(migrate("--state", pg_database, "--output", "json", "history"))["data"]
    assert [e["kind"] for e in history] == ["lock_broken"]
    store.close()


@pytest.mark.parametrize("command", [["phase", "rollback", "attach-secondary", "--region", "eu-central-1"],
                                     ["abort"], ["pause"], ["resume"], ["unlock", "--force", "x"],
                                     ["lab", "down"]], ids=lambda c: " ".join(c[:2]))
def test_every_mutating_command_takes_yes_like_phase_run(command, own_state):
    """Runbooks pass --yes to every command alike; none may refuse it as an unknown option."""
    proc = migrate(*command, "--yes")
    assert "No such option" not in proc.stderr and proc.returncode in (0, 1), proc.stderr


@pytest.mark.parametrize("seconds", ["0", "-5", "7200"])
def test_a_baseline_over_a_window_that_makes_no_sense_is_one_line_and_journals_nothing(seconds, own_state):
    proc = migrate("baseline", "--seconds", seconds)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error [") and f"--seconds {float(seconds):g}" in lines[0], proc.stderr
    history = envelope(migrate("--output", "json", "history", "--limit", "0"))["data"]
    assert [e for e in history if e["kind"] == "baseline"] == []
