"""The region-kill game day (DESIGN §6b), on a real lab while players play: Tokyo serves APAC (latency
records with its health check) and writes its home (cutover); then every WAN link of Tokyo is cut
(`migrate lab isolate`: its processes run on, unreachable — a region lost to everyone). The incident
commander runs `migrate region evacuate ap-northeast-1` once the health check sees it: APAC's players
go to us-east-1, the origin takes Tokyo's home under epoch 2, sessions refresh and carry on. Tokyo comes
back (`migrate lab reconnect`) and `migrate region return` fences its stale writer, lists what it held
that the origin lacked, routes APAC back and cuts Tokyo over again.

Figures (printed, never thresholds): seconds of APAC disruption from the players' own logs, requests
failed, and every acknowledged write not replicated — checked against the tool's list from the stale
writer: the ledger may lose only what the tool listed, and nothing acknowledged after the return."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from migrate.engine import services
from migrate.lab.isolation import reconnect
from migrate.lab.load.runner import start_load
from migrate.lab.player_logs import read_range
from migrate.lab.topology import SOURCE_REGION
from migrate.lab.world import ensure_home_routing
from migrate.providers.aws.runtime import stand_up_providers
from migrate.providers.lab.home_serving import LabHomeServing
from migrate.providers.lab.home_writers import LabHomeWriters
from migrate.providers.lab.runtime import LabRegionRuntime
from migrate.spec import load_spec
from tests.cli_helpers import migrate
from tests.conftest import REPO, SPEC
from tests.phases import harness
from tests.phases.cutover_world import assert_cut_over

REGION = "ap-northeast-1"
RATE = 30


def apac_pool(lab):
    spec = load_spec(SPEC)
    return stand_up_providers(spec, spec.environment("lab"), REPO, topology=lab)["dns"].pool("apac")


@pytest.fixture
def tokyo_live(clean_lab):
    """Tokyo stood up, APAC routed to it by latency records (shift-traffic's end state, set directly),
    the schema expanded and Tokyo cut over; afterwards its links restored and everything rolled back."""
    lab = clean_lab
    with harness.session() as session:
        assert services.run_phase(session, "stand-up-region", REGION).status == "succeeded"
        assert services.run_phase(session, "expand-schema", None).status == "succeeded"
    runtime = LabRegionRuntime(lab)
    apac_pool(lab).use_latency_routing({r: runtime.api_endpoint(r) for r in (REGION, SOURCE_REGION)})
    with harness.session() as session:
        assert services.run_phase(session, "cutover", REGION).status == "succeeded"
    yield lab
    reconnect(lab, REGION)
    with harness.session() as session:
        services.rollback_phase(session, "evacuate-region", REGION)
        services.rollback_phase(session, "cutover", REGION)
        services.rollback_phase(session, "expand-schema", None)
    lab.home_routing_file.unlink(missing_ok=True)  # epoch 1 again for the modules after this one
    ensure_home_routing(lab)


def wait_for(condition, what: str, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return time.time()


def failing_seconds(lab, start: float, end: float) -> list[int]:
    """The whole seconds after `start` in which some APAC player's request failed (the players' logs)."""
    return [s for s in range(int(end - start) + 1)
            if read_range(lab.lab_dir, "apac", start + s, start + s + 1).errors]


def test_a_region_killed_under_load_is_evacuated_its_home_taken_and_it_comes_back_with_nothing_lost_after(
        tokyo_live):
    lab = tokyo_live
    hw, runtime = LabHomeWriters(lab), LabRegionRuntime(lab)
    ready = threading.Event()
    load = start_load(lab, duration_s=900, rate=RATE, seed=11, on_start=lambda _info: ready.set())
    figures: dict = {}
    try:
        assert ready.wait(60), "the players never started"
        time.sleep(6)  # players on Tokyo, writing its home there

        killed_at = time.time()
        isolated = migrate("lab", "isolate", "--region", REGION)
        assert isolated.returncode == 0, isolated.stderr
        # the incident commander acts when the health check (through APAC's link) sees Tokyo gone
        detected_at = wait_for(lambda: not runtime.api_health(REGION, through_geography="apac").ok, "detection")
        evac = migrate("--output", "json", "region", "evacuate", REGION, "--yes")
        assert evac.returncode == 0, evac.stdout + evac.stderr
        evacuated_at = time.time()
        outputs = json.loads(evac.stdout)["data"]["outputs"]
        assert outputs["route-away"]["moved"] == {"apac": SOURCE_REGION}
        took = outputs["take-home"]
        assert took["taken"] and took["epoch"] == 2 and took["served_by"] == SOURCE_REGION, took
        assert LabHomeServing(lab).home_epoch(REGION) == 2
        assert not any(hw.writes_routed(REGION).values()) and REGION not in hw.fenced("origin")

        time.sleep(8)  # APAC plays on us-east-1 under the new epoch
        reconnect_at = time.time()
        back = migrate("lab", "reconnect", "--region", REGION)
        assert back.returncode == 0, back.stderr
        returned = migrate("--output", "json", "region", "return", REGION, "--yes")
        assert returned.returncode == 0, returned.stdout + returned.stderr
        returned_at = time.time()
        result = json.loads(returned.stdout)["data"]
        assert result["home_taken"] and [r["phase"] for r in result["runs"]] == [
            "evacuate-region", "cutover", "cutover"], result
        unreplicated = result["unreplicated"]
        assert unreplicated is not None and unreplicated["count"] == len(unreplicated["players"])
        assert_cut_over(lab)  # Tokyo writes its home again, from a fresh copy of the origin
        assert LabHomeServing(lab).home_epoch(REGION) == 2  # the epoch never goes back
        time.sleep(6)  # APAC back on Tokyo
    finally:
        load.stop()
        report = load.wait(timeout=180).to_json()

    ledger = report["ledger"]
    lost = [w for w in ledger["lost_writes"] if w["kind"] == "profile"]
    # exactly listed: every acknowledged profile write the origin never got is one the tool found on the
    # stale writer, acknowledged by Tokyo before the cut
    assert {w["player_id"] for w in lost} <= set(unreplicated["players"]), (lost, unreplicated)
    assert all(w["region"] == REGION for w in lost), lost
    assert ledger["acknowledged"] > 0
    failed = failing_seconds(lab, killed_at, report_end := time.time())
    after_return = [s for s in failed if killed_at + s > returned_at + 1]
    figures = {
        "detected_after_s": round(detected_at - killed_at, 1),
        "evacuated_after_s": round(evacuated_at - killed_at, 1),
        "apac_seconds_with_failed_requests": len(failed),
        "last_failing_second_after_kill": max(failed, default=None),
        "requests_failed": report["errors_by_kind"],
        "sessions_refreshed": report.get("recovered", {}),
        "acknowledged_writes_not_replicated": {"ledger": lost, "listed_by_the_tool": unreplicated},
        "return_s": round(returned_at - reconnect_at, 1), "observed_s": round(report_end - killed_at, 1)}
    print("\ngame day:", json.dumps(figures, default=str))
    assert after_return == [], f"APAC requests failed after the return: {figures}"
    if os.environ.get("GAMEDAY_OUT"):
        with open(os.environ["GAMEDAY_OUT"], "w") as fh:
            json.dump({"figures": figures, "load": report}, fh, indent=2, default=str)
