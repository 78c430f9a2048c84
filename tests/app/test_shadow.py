"""Shadow traffic in the app (app/shadow.py): the three-way diff cancels noise and finds real
differences, sampling is keyed on the player, only the named geography's reads are mirrored, a
mirrored request is never mirrored again, and the mirror counts its own loss. Driven over real HTTP
(uvicorn in threads), with small apps whose answers the test controls and with the game app."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app import shadow
from app.main import create_app
from app.shadow import (
    ABSENT,
    ShadowConfig,
    answer_fields,
    flatten,
    ignored,
    player_sampled,
    three_way,
    token_subject,
)
from migrate.lab.pg import free_port
from tests.app.conftest import AP, US, internal, serve, settings_for

pytestmark = pytest.mark.lab


# --- the diff, pure ------------------------------------------------------------------------------

def _fields(body: dict, status: int = 200) -> dict:
    return answer_fields(status, json.dumps(body).encode())


def test_a_field_that_differs_between_the_two_primary_samples_is_noise_and_cancelled():
    primary = _fields({"id": 7, "server_time": "12:00:00.001", "items": [1, 2]})
    again = _fields({"id": 7, "server_time": "12:00:00.093", "items": [1, 2]})
    candidate = _fields({"id": 7, "server_time": "12:00:00.050", "items": [1, 2]})
    diff = three_way(primary, again, candidate)
    assert diff.mismatched == () and diff.noisy == (("server_time",),)


def test_a_field_the_candidate_alone_answers_differently_is_a_mismatch():
    primary = _fields({"id": 7, "coins": 10, "at": 1})
    candidate = _fields({"id": 7, "coins": 11, "at": 3})
    diff = three_way(primary, _fields({"id": 7, "coins": 10, "at": 2}), candidate)
    assert diff.mismatched == (("coins",),) and diff.noisy == (("at",),)


def test_status_absent_fields_types_and_empty_containers_count():
    p = _fields({"a": 1, "b": {}, "c": [], "d": None})
    assert three_way(p, p, _fields({"a": 1, "b": {}, "c": [], "d": None})).mismatched == ()
    assert three_way(p, p, _fields({"a": 1.0, "b": {}, "c": [], "d": None})).mismatched == (("a",),)
    assert three_way(p, p, _fields({"a": True, "b": {}, "c": [], "d": None})).mismatched == (("a",),)
    assert three_way(p, p, _fields({"a": 1, "b": [], "c": {}, "d": None})).mismatched == (("b",), ("c",))
    assert three_way(p, p, _fields({"a": 1, "b": {}, "c": []})).mismatched == (("d",),)
    assert three_way(p, p, _fields({"a": 1, "b": {}, "c": [], "d": None}, status=404)).mismatched == (("$status",),)
    assert flatten({"x": [{"y": 1}]}) == {("x", 0, "y"): 1}
    assert answer_fields(200, b"not json", "text/plain")[("$body",)] != ABSENT


def test_reordered_lists_between_primary_samples_are_noise():
    p1, p2 = _fields({"entries": [{"id": 1}, {"id": 2}]}), _fields({"entries": [{"id": 2}, {"id": 1}]})
    assert three_way(p1, p2, _fields({"entries": [{"id": 2}, {"id": 1}]})).mismatched == ()


def test_ignore_patterns_match_a_run_of_keys_anywhere_and_everything_below():
    pats = tuple(tuple(p.split(".")) for p in ("age_seconds", "entries.*.region", "req*_id"))
    assert ignored(("age_seconds", "us-east-1"), pats)
    assert ignored(("board", "entries", 3, "region"), pats)
    assert ignored(("request_id",), pats)
    assert not ignored(("entries", 3, "score"), pats)
    assert not ignored(("region",), pats)
    p, c = _fields({"region": "us-east-1", "age_seconds": {"us-east-1": 0.0}}), \
        _fields({"region": "ap-northeast-1", "age_seconds": {"us-east-1": 0.7}})
    assert three_way(p, p, c, pats).mismatched == (("region",),)


def test_sampling_is_a_stable_share_of_players_and_reads_the_token_subject():
    chosen = [pid for pid in range(1, 20_001) if player_sampled(str(pid), 0.05)]
    assert 0.04 < len(chosen) / 20_000 < 0.06
    assert chosen == [pid for pid in range(1, 20_001) if player_sampled(str(pid), 0.05)]
    assert set(chosen) <= {pid for pid in range(1, 20_001) if player_sampled(str(pid), 0.5)}
    payload = base64.urlsafe_b64encode(json.dumps({"sub": 42, "home": US}).encode()).rstrip(b"=").decode()
    assert token_subject(f"Bearer {payload}.c2ln") == "42"
    assert token_subject("Bearer garbage") is None and token_subject(None) is None


def test_the_shadow_file_is_validated():
    with pytest.raises(ValueError, match="candidate_url"):
        ShadowConfig.parse({"enabled": True, "mirror_id": "m", "geography": "apac", "primary_url": "http://x",
                            "sample_rate": 1})
    with pytest.raises(ValueError, match="sample_rate"):
        ShadowConfig.parse({"enabled": True, "mirror_id": "m", "geography": "apac", "primary_url": "http://x",
                            "candidate_url": "http://y", "sample_rate": 0})
    with pytest.raises(ValueError, match="ignore pattern"):
        ShadowConfig.parse({"enabled": True, "mirror_id": "m", "geography": "apac", "primary_url": "http://x",
                            "candidate_url": "http://y", "sample_rate": 1, "ignore_fields": ["a..b"]})
    assert not ShadowConfig.parse({"enabled": False}).enabled


# --- the mirror over real HTTP, with apps whose answers the test controls ------------------------

def _tiny(answer, mirror_file: Path | None = None) -> FastAPI:
    """An app with GET /things/{player_id}, /board and POST /things/{player_id}; `answer(name, pid)`
    makes each body. With `mirror_file` it runs the shadow middleware, like the game app."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        await app.state.shadow.close()

    app = FastAPI(lifespan=lifespan)
    app.state.shadow = shadow.Mirror(mirror_file)

    @app.get("/things/{player_id}")
    async def thing(player_id: int) -> dict:
        return answer("thing", player_id)

    @app.post("/things/{player_id}")
    async def write_thing(player_id: int) -> dict:
        return answer("write", player_id)

    @app.get("/board")
    async def board() -> dict:
        return answer("board", None)

    app.include_router(shadow.router)
    app.add_middleware(shadow.ShadowMiddleware, mirror=app.state.shadow)
    return app


def _enable(path: Path, primary: str, candidate: str, **extra) -> str:
    mirror_id = extra.pop("mirror_id", f"m-{time.monotonic_ns()}")
    doc = {"enabled": True, "mirror_id": mirror_id, "source": US, "target": AP, "geography": "apac",
           "primary_url": primary, "candidate_url": candidate, "sample_rate": 1.0,
           "recheck_seconds": 0.2, "timeout_seconds": 2.0, **extra}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return mirror_id


def _report(base: str) -> dict:
    return httpx.get(f"{base}/internal/shadow/report", timeout=5).json()


def _until(base: str, cond, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = _report(base)
        if cond(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"report never satisfied the condition: {json.dumps(report, indent=1)}")
        time.sleep(0.05)


APAC = {"X-Player-Geo": "apac"}


@contextlib.contextmanager
def _pair(tmp_path: Path, primary_answer, candidate_answer):
    """(primary URL, candidate URL, shadow file): both served over HTTP."""
    path = tmp_path / "shadow.json"
    with serve(_tiny(candidate_answer)) as candidate, serve(_tiny(primary_answer, path)) as primary:
        yield primary, candidate, path


def test_noise_is_cancelled_and_a_real_difference_found_over_http(tmp_path):
    tick = itertools.count()
    primary = lambda name, pid: {"id": pid, "coins": 10, "server_time": next(tick)}
    candidate = lambda name, pid: {"id": pid, "coins": 10 if pid != 13 else 99, "server_time": -1}
    with _pair(tmp_path, primary, candidate) as (p, c, path):
        _enable(path, p, c)
        for pid in range(1, 21):
            assert httpx.get(f"{p}/things/{pid}", headers=APAC).status_code == 200
        report = _until(p, lambda r: r["totals"]["compared"] == 20)
    thing = report["endpoints"]["/things/{player_id}"]
    assert (thing["compared"], thing["mismatched"], thing["matched"]) == (20, 1, 19)
    assert thing["noisy_fields"] == {"server_time": 20}
    assert thing["mismatched_fields"] == {"coins": 1}
    diff = thing["sample_diffs"][0]
    assert diff["request"] == "GET /things/13" and diff["fields"]["coins"]["candidate"] == 99
    assert thing["latency"]["candidate"]["count"] == 20  # the candidate's own time, from Server-Timing
    assert thing["latency"]["primary"]["p50_ms"] is not None


def test_ignore_rules_global_and_per_endpoint(tmp_path):
    primary = lambda name, pid: {"region": US, "n": 1, "age": {US: 0.0}}
    candidate = lambda name, pid: {"region": AP, "n": 1, "age": {US: 0.4}}
    with _pair(tmp_path, primary, candidate) as (p, c, path):
        _enable(path, p, c, ignore_fields=["region"], endpoints={"/board": {"ignore_fields": ["age"]}})
        httpx.get(f"{p}/board", headers=APAC)
        httpx.get(f"{p}/things/1", headers=APAC)
        report = _until(p, lambda r: r["totals"]["compared"] == 2)
        assert report["endpoints"]["/board"]["mismatched"] == 0
        assert report["endpoints"]["/things/{player_id}"]["mismatched_fields"] == {"age.us-east-1": 1}
        # diff = false: mirrored (latency, errors) but not compared
        _enable(path, p, c, endpoints={"/board": {"diff": False}})
        httpx.get(f"{p}/board", headers=APAC)
        board = _until(p, lambda r: r["totals"]["not_diffed"] == 1)["endpoints"]["/board"]
        assert (board["mirrored"], board["compared"], board["mismatched"]) == (1, 0, 0)


def test_a_lagging_candidate_converges_on_recheck_and_a_stale_cache_is_within_its_bound(tmp_path):
    calls = {"thing": 0}
    state = {"board": 1}

    def candidate(name, pid):
        if name == "thing":
            calls["thing"] += 1
            return {"v": "old" if calls["thing"] == 1 else "new"}  # behind once, then caught up
        return {"version": state["board"] - 1}  # always one version behind the primary

    def primary(name, pid):
        if name == "board":
            return {"version": state["board"]}
        return {"v": "new"}

    with _pair(tmp_path, primary, candidate) as (p, c, path):
        _enable(path, p, c, recheck_seconds=1.0, endpoints={"/board": {"staleness_seconds": 5}})
        httpx.get(f"{p}/things/1", headers=APAC)
        thing = _until(p, lambda r: r["totals"]["compared"] == 1)["endpoints"]["/things/{player_id}"]
        assert (thing["converged"], thing["mismatched"]) == (1, 0)
        # The board moves on every read; the candidate serves the version before (a cache):
        for i in range(1, 4):
            httpx.get(f"{p}/board", headers=APAC)
            _until(p, lambda r, i=i: r["endpoints"].get("/board", {}).get("mirrored", 0) >= i)
            state["board"] += 1
        board = _until(p, lambda r: r["endpoints"]["/board"]["compared"] == 3)["endpoints"]["/board"]
        assert (board["mismatched"], board["converged"], board["within_staleness"]) == (0, 1, 2), board


def test_only_the_geographys_sampled_players_reads_are_mirrored(tmp_path):
    answer = lambda name, pid: {"pid": pid}
    with _pair(tmp_path, answer, answer) as (p, c, path):
        _enable(path, p, c, sample_rate=0.3)
        for pid in range(1, 101):
            httpx.get(f"{p}/things/{pid}", headers=APAC)
        httpx.get(f"{p}/things/1", headers={"X-Player-Geo": "na"})  # another geography
        httpx.get(f"{p}/things/1")  # no geography
        httpx.post(f"{p}/things/1", headers=APAC)  # a write: never mirrored
        expected = sum(player_sampled(str(pid), 0.3) for pid in range(1, 101))
        report = _until(p, lambda r: r["totals"]["compared"] == expected)
        thing = report["endpoints"]["/things/{player_id}"]
        assert (thing["eligible"], thing["sampled"]) == (100, expected)
        assert report["totals"]["eligible"] == 100
        # the same players again: exactly the same ones are chosen
        for pid in range(1, 101):
            httpx.get(f"{p}/things/{pid}", headers=APAC)
        assert _until(p, lambda r: r["totals"]["compared"] == 2 * expected)["totals"]["sampled"] == 2 * expected


def test_a_mirrored_request_is_answered_with_server_timing_and_never_mirrored_again(tmp_path):
    answer = lambda name, pid: {"pid": pid}
    with _pair(tmp_path, answer, answer) as (p, _, path):
        _enable(path, p, p)  # the candidate is the primary itself: a loop if X-Shadow were mirrored
        response = httpx.get(f"{p}/things/5", headers={**APAC, "X-Shadow": "m"})
        assert response.headers["server-timing"].startswith("app;dur=")
        assert _report(p)["totals"]["eligible"] == 0
        httpx.get(f"{p}/things/5", headers=APAC)
        report = _until(p, lambda r: r["totals"]["compared"] == 1)
        time.sleep(0.3)
        assert _report(p)["totals"]["eligible"] == 1 == report["totals"]["mirrored"]


def test_disable_keeps_the_report_and_a_new_mirror_id_resets_it(tmp_path):
    answer = lambda name, pid: {"pid": pid}
    with _pair(tmp_path, answer, answer) as (p, c, path):
        first = _enable(path, p, c)
        httpx.get(f"{p}/things/1", headers=APAC)
        _until(p, lambda r: r["totals"]["compared"] == 1)
        path.write_text(json.dumps({"enabled": False, "mirror_id": first}))
        httpx.get(f"{p}/things/1", headers=APAC)
        report = _report(p)
        assert not report["enabled"] and report["mirror_id"] == first and report["totals"]["eligible"] == 1
        _enable(path, p, c)
        assert _report(p)["totals"]["eligible"] == 0


@contextlib.contextmanager
def _black_hole():
    """A port that accepts connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_candidate_timeouts_are_errors_and_a_full_queue_is_counted_loss_not_latency(tmp_path):
    """One worker stuck on a candidate that never answers (3 s timeout), a queue of two: of ten live
    reads, one is in flight, two wait and seven are dropped and counted; every live read was answered
    while the first mirrored one still hung (no candidate error yet), so none waited for the mirror."""
    answer = lambda name, pid: {"pid": pid}
    path = tmp_path / "shadow.json"
    with _black_hole() as hole, serve(_tiny(answer, path)) as p:
        _enable(path, p, hole, timeout_seconds=3.0, workers=1, queue_max=2)
        for pid in range(1, 11):
            assert httpx.get(f"{p}/things/{pid}", headers=APAC).status_code == 200
        during = _report(p)["totals"]
        report = _until(p, lambda r: r["totals"]["candidate_errors"] + r["totals"]["lost"] == 10)
    assert during["candidate_errors"] == 0 and during["loss"].get("queue_full") == 7, during
    totals = report["totals"]
    assert totals["candidate_errors"] == 3 and totals["loss"] == {"queue_full": 7}
    assert report["endpoints"]["/things/{player_id}"]["candidate_errors_by_kind"] == {"timeout": 3}


# --- the game app ------------------------------------------------------------------------------

def test_the_game_app_mirrors_profile_reads_keyed_on_the_player(db, redis_url, tmp_path):
    path = tmp_path / "shadow.json"
    readers = tmp_path / "readers.json"
    readers.write_text(json.dumps({US: db, AP: db}))
    port = free_port()  # its one listener is the internal one too: the report is read from it
    primary_app = create_app(settings_for(US, db, redis_url, readers_file=readers, internal_port=port))
    candidate_app = create_app(settings_for(AP, db, redis_url, redis_prefix="game:us-east-1:",
                                            readers_file=readers))
    assert primary_app.state.shadow.path == path  # shadow.json beside READERS_FILE
    with serve(candidate_app) as c, serve(primary_app, port) as p:
        _enable(path, p, c, ignore_fields=["region"], endpoints={"/v1/leaderboard/global": {"diff": False}})
        with httpx.Client(base_url=p, headers=APAC) as client:
            for pid in (1, 2, 21, 22):
                assert client.get(f"/v1/players/{pid}").status_code == 200
            assert client.get("/v1/players/999999").status_code == 404
            token = login_http(client, 3)
            assert client.get("/v1/leaderboard/regional", headers=token).status_code == 200
        report = _until(p, lambda r: r["totals"]["compared"] == 6)
        players = report["endpoints"]["/v1/players/{player_id}"]
        assert (players["compared"], players["mismatched"]) == (5, 0), players
        board = report["endpoints"]["/v1/leaderboard/regional"]
        assert board["compared"] == 1 and board["mismatched"] == 0, board
        assert "/v1/login" not in report["endpoints"]  # POST: not a read


def login_http(client: httpx.Client, player_id: int) -> dict:
    response = client.post("/v1/login", json={"player_id": player_id})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_only_the_source_regions_app_mirrors(db, redis_url, tmp_path):
    """The lab's apps share one shadow file: the candidate, reading it too, must not mirror."""
    readers = tmp_path / "readers.json"
    readers.write_text(json.dumps({US: db, AP: db}))
    port = free_port()
    candidate_app = create_app(settings_for(AP, db, redis_url, readers_file=readers, internal_port=port))
    with serve(candidate_app, port) as c:
        _enable(tmp_path / "shadow.json", "http://127.0.0.1:9", c)  # source: us-east-1
        assert httpx.get(f"{c}/v1/players/21", headers=APAC).status_code == 200
        report = _report(c)
    assert report["region"] == AP and report["enabled"] is False and report["totals"] is None


def test_without_a_shadow_file_the_app_reports_mirroring_unavailable(make_client):
    client = make_client(US)
    body = client.get(internal("/internal/shadow/report")).json()
    assert body["configured"] is False and body["enabled"] is False
    assert client.get("/v1/players/1", headers=APAC).status_code == 200
