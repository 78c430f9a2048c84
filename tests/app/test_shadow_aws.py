"""The shadow mirror as it runs on ECS (app/shadow.py, app/watched.py): the switch is an SSM parameter
every task polls (moto's SSM), and the task prints its figures as CloudWatch EMF lines on stdout. The
lab path (the watched file) is tests/app/test_shadow.py's."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from app import shadow
from app.shadow import EmfEmitter, Mirror, ShadowConfig, ShadowReport
from app.watched import WatchedParameter
from tests.app.conftest import AP, US, serve, settings_for
from tests.providers.aws.conftest import moto, moto_clients, moto_url  # noqa: F401 (fixtures)

PARAMETER = "/game/us-east-1/api/shadow"
APAC = {"X-Player-Geo": "apac"}
T0 = 1_800_000_000.0


def _doc(primary: str, candidate: str, mirror_id: str = "m-1", **extra) -> dict:
    return {"enabled": True, "mirror_id": mirror_id, "source": US, "target": AP, "geography": "apac",
            "primary_url": primary, "candidate_url": candidate, "sample_rate": 1.0, "recheck_seconds": 0.0,
            "timeout_seconds": 2.0, **extra}


def _put(ssm, value) -> None:
    ssm.put_parameter(Name=PARAMETER, Value=value if isinstance(value, str) else json.dumps(value), Type="String",
                      Overwrite=True)


def _app(mirror: Mirror) -> FastAPI:
    """GET /things/{player_id} behind the shadow middleware; the lifespan starts the mirror's background
    work, as app/main.py's does."""

    @asynccontextmanager
    async def lifespan(app):
        mirror.start()
        yield
        await mirror.close()

    app = FastAPI(lifespan=lifespan)
    app.state.shadow = mirror

    @app.get("/things/{player_id}")
    async def thing(player_id: int) -> dict:
        return {"id": player_id}

    app.include_router(shadow.router)
    app.add_middleware(shadow.ShadowMiddleware, mirror=mirror)
    return app


def _until(base: str, cond, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = httpx.get(f"{base}/internal/shadow/report", timeout=5).json()
        if cond(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"report never satisfied the condition: {json.dumps(report, indent=1)}")
        time.sleep(0.02)


# --- the switch ----------------------------------------------------------------------------------

def test_settings_choose_the_parameter_over_the_file_and_emf(tmp_path):
    base = dict(writer_dsn="host=x", redis_url="redis://x", shadow_file=tmp_path / "shadow.json")
    on_aws = Mirror.from_settings(settings_for(US, shadow_parameter=PARAMETER, shadow_metrics="emf", **base))
    assert isinstance(on_aws.switch, WatchedParameter) and on_aws.switch.region == US
    assert on_aws.where == f"ssm:{US}:{PARAMETER}" and on_aws.emf is not None
    in_lab = Mirror.from_settings(settings_for(US, **base))
    assert in_lab.where == str(tmp_path / "shadow.json") and in_lab.emf is None  # unchanged


def test_the_running_app_follows_the_ssm_switch_without_restart(moto, moto_clients):
    ssm = moto_clients("ssm", US)
    switch = WatchedParameter(PARAMETER, US, interval=0.05, client=ssm)
    with serve(_app(Mirror(None, US))) as candidate, serve(_app(Mirror(None, US, switch=switch))) as primary:
        assert _until(primary, lambda r: r["configured"])["enabled"] is False  # no parameter yet: off
        _put(ssm, _doc(primary, candidate))
        _until(primary, lambda r: r["enabled"])
        assert httpx.get(f"{primary}/things/7", headers=APAC).status_code == 200
        report = _until(primary, lambda r: r["totals"]["compared"] == 1)
        assert report["mirror_id"] == "m-1" and report["switch"] == f"ssm:{US}:{PARAMETER}"
        _put(ssm, {"enabled": False, "mirror_id": "m-1"})
        off = _until(primary, lambda r: not r["enabled"])
        assert off["totals"]["compared"] == 1  # the last report stays readable


def test_a_bad_or_deleted_parameter_keeps_the_last_good_switch(moto, moto_clients, caplog):
    ssm = moto_clients("ssm", US)
    switch = WatchedParameter(PARAMETER, US, client=ssm)
    switch.refresh()
    assert switch.get() == {} and not switch.loaded  # not written yet
    _put(ssm, _doc("http://p", "http://c"))
    switch.refresh()
    good = switch.get()
    assert good["mirror_id"] == "m-1" and switch.loaded
    switch.refresh()
    assert switch.get() is good  # unchanged: the same object, so the mirror does not re-parse it
    _put(ssm, "{not json")
    switch.refresh()
    assert switch.get() is good and "unreadable" in caplog.text
    ssm.delete_parameter(Name=PARAMETER)
    switch.refresh()
    assert switch.get() is good


# --- the figures as EMF --------------------------------------------------------------------------

def _report(mirror_id: str = "m-1") -> ShadowReport:
    return ShadowReport(ShadowConfig.parse(_doc("http://p", "http://c", mirror_id)))


def test_emf_lines_carry_deltas_per_route_a_heartbeat_while_mirroring_and_each_sample_diff_once():
    report = _report()
    stats = report.endpoint("/v1/players/{player_id}")
    stats.eligible, stats.sampled, stats.mirrored, stats.compared, stats.mismatched = 10, 8, 8, 7, 1
    stats.candidate_errors["timeout"] += 1
    stats.loss["queue_full"] += 2
    stats.sample_diffs.append({"request": "GET /v1/players/7", "fields": {"coins": {"candidate": 9}}})
    for ms in range(250):
        stats.candidate_round_trip_ms.record(100.0 + ms)
    stats.primary_ms.record(4.5)
    emf = EmfEmitter(US, clock=lambda: T0)
    docs = emf.documents(report.config, report)

    beat, first, second, third, diff = docs
    assert beat["Heartbeat"] == 1 and beat["MirrorId"] == "m-1" and "Route" not in beat
    assert beat["_aws"]["Timestamp"] == int(T0 * 1000)
    assert first["Route"] == "/v1/players/{player_id}" and first["Region"] == US
    assert (first["Eligible"], first["Compared"], first["Mismatched"], first["CandidateErrors"], first["Lost"]) \
        == (10, 7, 1, 1, 2)
    assert first["PrimaryLatency"] == [4.5] and len(first["CandidateRoundTripLatency"]) == 100
    assert [len(d["CandidateRoundTripLatency"]) for d in (second, third)] == [100, 50]  # 100 values a line
    assert "Eligible" not in second and "PrimaryLatency" not in second
    for doc in (first, second, third):  # every member a directive names is there, nothing else is a metric
        names = {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        assert names <= set(doc) and len(json.dumps(doc)) < 16 * 1024
    assert "_aws" not in diff and diff["shadow_sample_diff"]["request"] == "GET /v1/players/7"

    stats.eligible += 3
    again = emf.documents(report.config, report)
    assert [d.get("Eligible") for d in again] == [None, 3]  # the delta; the diff is not printed twice
    assert again[1]["Compared"] == 0 and "CandidateRoundTripLatency" not in again[1]
    assert emf.documents(None, report) == []  # stopped, nothing new: silent (no heartbeat)
    fresh = _report("m-2")  # a new mirror id: counted from zero
    fresh.endpoint("/v1/leaderboard/regional").eligible = 2
    assert emf.documents(fresh.config, fresh)[1]["Eligible"] == 2


def test_the_mirror_prints_its_last_lines_when_the_app_stops(tmp_path):
    lines: list[str] = []
    path = tmp_path / "shadow.json"
    path.write_text(json.dumps(_doc("http://p", "http://c")))
    mirror = Mirror(path, US, emf=EmfEmitter(US, write=lines.append))
    assert mirror.active() is not None  # reads the switch: a report exists
    mirror.report.endpoint("/things/{player_id}").eligible = 1
    asyncio.run(mirror.close())  # a task scaled in still prints its last interval
    assert [json.loads(line).get("Eligible") for line in lines] == [None, 1]
