"""`migrate region evacuate | return` as the incident commander meets them without a lab: bad input is
one line and changes nothing; the evacuation's plan reads like any phase's (an incident, on any region
of the spec, not only the programme's)."""

from __future__ import annotations

import pytest

from tests.cli_helpers import envelope, migrate


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRATE_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("MIGRATE_LAB_DIR", str(tmp_path / "no-lab"))


@pytest.mark.parametrize("command", [("region", "evacuate", "ap-northeast-9", "--yes"),
                                     ("region", "return", "ap-northeast-9", "--yes")])
def test_an_unknown_region_is_one_line_naming_the_known_ones(command):
    proc = migrate(*command)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error [UNKNOWN_REGION] unknown region 'ap-northeast-9'"
    assert "us-east-1, ap-northeast-1, eu-central-1" in proc.stderr and "Traceback" not in proc.stderr


def test_the_evacuation_plan_names_every_step_and_the_way_back_for_any_region():
    for region in ("ap-northeast-1", "us-east-1"):  # us-east-1 is in no target's programme: incidents need none
        proc = migrate("--output", "json", "plan", "--phase", "evacuate-region", "--region", region)
        assert proc.returncode == 2, proc.stderr
        [phase] = envelope(proc)["data"]["phases"]
        assert phase["quarter"] == "incident" and phase["region"] == region
        assert [s["id"] for s in phase["steps"]] == ["route-away", "take-home", "players-served"]
        assert any("migrate region return" in line for line in phase["rollback"])


def test_evacuate_is_regional_and_listed_as_an_incident_phase():
    proc = migrate("--output", "json", "phase", "list")
    rows = {r["phase"]: r for r in envelope(proc)["data"]}
    assert rows["evacuate-region"]["incident"] and rows["evacuate-region"]["regional"]
    assert not rows["cutover"]["incident"]
    assert migrate("plan", "--phase", "evacuate-region").returncode == 1  # regional: --region needed
