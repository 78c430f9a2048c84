"""Scores and leaderboards: the 53-bit packing, the exact total order (score, earlier time, id),
strict regional reads, home-region ownership, and the global merge with a peer down."""

from __future__ import annotations

import contextlib
import json
import time

import boto3
import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.ranking import MAX_PACKED, MAX_SCORE, MAX_TIME_OFFSET, TIME_EPOCH, Entry, member, merge, pack, unpack, utc
from migrate.lab.pg import free_port
from tests.app.conftest import AP, EU, US, Clock, internal, login, serve, settings_for
from tests.providers.aws.conftest import moto, moto_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.lab

T0 = 1_750_000_000


def test_packing_bounds_and_round_trip():
    assert MAX_PACKED == 2**53 - 1
    assert pack(MAX_SCORE, TIME_EPOCH) == MAX_PACKED  # best possible entry: the largest key
    assert pack(0, TIME_EPOCH + MAX_TIME_OFFSET) == 0  # worst possible entry: the smallest key
    for score, at in [(0, TIME_EPOCH), (MAX_SCORE, TIME_EPOCH + MAX_TIME_OFFSET), (12345, T0)]:
        packed = pack(score, at)
        assert 0 <= packed <= MAX_PACKED
        assert unpack(packed) == (score, at)
        assert float(-packed) == -packed  # a double (Redis' sorted-set score) holds it exactly
    for bad in [(-1, T0), (MAX_SCORE + 1, T0), (1, TIME_EPOCH - 1), (1, TIME_EPOCH + MAX_TIME_OFFSET + 1)]:
        with pytest.raises(ValueError):
            pack(*bad)
    # the order: higher score wins, then the earlier time
    assert pack(101, T0 + 999) > pack(100, T0)
    assert pack(100, T0) > pack(100, T0 + 1)
    assert member(2) < member(10) < member(2**63 - 1)  # byte order is numeric order


def test_extreme_keys_survive_redis_exactly(redis_url):
    client = redis.Redis.from_url(redis_url)
    keys = {member(1): -MAX_PACKED, member(2): -(MAX_PACKED - 1), member(3): 0, member(4): -1}
    client.zadd("k", keys)
    got = {m.decode(): int(s) for m, s in client.zrange("k", 0, -1, withscores=True)}
    assert got == keys
    client.close()


def test_exact_total_order_with_ties(make_client):
    clock = Clock(T0)
    app = make_client(US, clock=clock)
    plays = [  # (player, score, seconds after T0)
        (1, 100, 10),
        (10, 100, 5),  # ties (score, time) with 2 and 3: ids ascending → 2, 3, 10 (not "10" < "2")
        (3, 100, 5),
        (2, 100, 5),
        (4, 200, 20),
        (5, 99, 0),
        (6, 100, 4),  # same score, earlier → ahead of the 5-second group
    ]
    auths = {pid: login(app, pid) for pid, _, _ in plays}
    for pid, score, dt in plays:
        clock.now = T0 + dt
        response = app.post("/v1/scores", json={"score": score}, headers=auths[pid])
        assert response.status_code == 200, response.text
    board = app.get("/v1/leaderboard/regional").json()
    assert board["region"] == US
    assert [e["player_id"] for e in board["entries"]] == [4, 6, 2, 3, 10, 1, 5]
    assert [e["rank"] for e in board["entries"]] == list(range(1, 8))
    first = board["entries"][0]
    assert first["score"] == 200 and first["achieved_at"].startswith(utc(T0 + 20).isoformat()[:19])
    # the same total order as sorting the tuples directly
    expected = sorted(plays, key=lambda p: (-p[1], p[2], p[0]))
    assert [e["player_id"] for e in board["entries"]] == [p[0] for p in expected]


def test_best_score_is_kept_and_every_ack_is_read_at_once(make_client):
    clock = Clock(T0)
    app = make_client(US, clock=clock)
    auth = login(app, 1)
    first = app.post("/v1/scores", json={"score": 500}, headers=auth).json()
    assert first["new_best"] and first["rank"] == 1 and first["in_top"]
    clock.now += 5
    worse = app.post("/v1/scores", json={"score": 400}, headers=auth).json()
    assert not worse["new_best"] and worse["best_score"] == 500
    clock.now += 5
    equal_later = app.post("/v1/scores", json={"score": 500}, headers=auth).json()
    assert not equal_later["new_best"]
    assert equal_later["best_achieved_at"] == first["submitted_at"]  # the earlier time is kept
    # strict: each acknowledged score is already in the top-100 read that follows it
    for pid in range(2, 21):
        clock.now += 1
        ack = app.post("/v1/scores", json={"score": 1000 + pid}, headers=login(app, pid)).json()
        board = app.get("/v1/leaderboard/regional", params={"limit": 100}).json()["entries"]
        assert board[ack["rank"] - 1]["player_id"] == pid
    limited = app.get("/v1/leaderboard/regional", params={"limit": 3}).json()["entries"]
    assert [e["player_id"] for e in limited] == [20, 19, 18]


def test_only_the_home_region_takes_a_players_scores(make_client):
    us = make_client(US)
    response = us.post("/v1/scores", json={"score": 1}, headers=login(us, 25))  # 25 is homed in Tokyo
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "wrong_region" and body["home_region"] == AP and body["serving_region"] == AP
    # before cutover us-east-1 serves every home (HOME_ROUTING), so the same player is accepted there
    before = make_client(US, home_routing={AP: US, EU: US})
    assert before.post("/v1/scores", json={"score": 1}, headers=login(before, 25)).status_code == 200


def test_home_routing_file_is_followed_while_running(make_client, tmp_path):
    routing = tmp_path / "routing.json"
    app = make_client(US, home_routing_file=routing)  # absent file: identity routing
    auth = login(app, 25)
    assert app.post("/v1/scores", json={"score": 1}, headers=auth).status_code == 409
    routing.write_text(json.dumps({AP: US}))
    assert app.post("/v1/scores", json={"score": 1}, headers=auth).status_code == 200
    routing.write_text(json.dumps({AP: AP, "pad": "ding"}))  # cutover: Tokyo serves its players
    response = app.post("/v1/scores", json={"score": 1}, headers=auth)
    assert response.status_code == 409 and response.json()["serving_region"] == AP


def test_answers_about_a_player_name_the_region_serving_its_home_so_clients_follow_a_re_home(make_client, tmp_path):
    routing = tmp_path / "routing.json"
    routing.write_text(json.dumps({AP: US}))
    app = make_client(US, home_routing_file=routing)
    auth = login(app, 25)  # homed in Tokyo
    assert app.get("/v1/players/25").headers["X-Serving-Region"] == US
    routing.write_text(json.dumps({AP: AP, "pad": "x"}))  # Tokyo's cutover re-homed its players
    assert app.get("/v1/players/25").headers["X-Serving-Region"] == AP
    written = app.patch("/v1/players/25", json={"coins": 3}, headers=auth)
    assert written.status_code == 200 and written.headers["X-Serving-Region"] == AP


@pytest.mark.parametrize("body, field", [
    ({}, "score"), ({"score": -1}, "score"), ({"score": MAX_SCORE + 1}, "score"),
    ({"score": "ten"}, "score"), ({"score": 1.5}, "score"), ({"score": 1, "bonus": 2}, "bonus"),
])
def test_malformed_scores_are_422_naming_the_field(client, body, field):
    response = client.post("/v1/scores", json=body, headers=login(client, 1))
    assert response.status_code == 422
    assert field in response.json()["fields"]


def test_malformed_leaderboard_queries(client):
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "many"}):
        for path in ("/v1/leaderboard/regional", "/v1/leaderboard/global"):
            response = client.get(path, params=params)
            assert response.status_code == 422 and response.json()["fields"] == ["limit"]


def test_merge_keeps_the_better_duplicate_and_orders_by_id_on_ties():
    def e(pid, key, region):
        return Entry(rank=1, player_id=pid, score=0, achieved_at=utc(T0), sort_key=key, region=region)

    merged = merge([[e(5, 10, US), e(1, 7, US)], [e(2, 7, AP), e(5, 12, AP)]], 10)
    assert [(x.player_id, x.region, x.rank) for x in merged] == [(5, AP, 1), (1, US, 2), (2, AP, 3)]


def test_global_board_merges_peers_and_flags_a_missing_one(db, redis_url, start_redis):
    clock = Clock(T0)
    redis_ap = start_redis()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    ap_app = create_app(settings_for(AP, db, redis_ap.url), clock=clock)
    with serve(ap_app) as ap_url, contextlib.ExitStack() as stack:
        peers = {US: "http://unused", AP: ap_url, EU: dead}
        us = TestClient(create_app(settings_for(US, db, redis_url, peer_regions=peers), clock=clock))
        stack.enter_context(us)
        ap = TestClient(create_app(settings_for(AP, db, redis_ap.url), clock=clock))
        stack.enter_context(ap)
        for pid, score in [(1, 50), (2, 70), (3, 70)]:
            assert us.post("/v1/scores", json={"score": score}, headers=login(us, pid)).status_code == 200
        for pid, score in [(21, 70), (22, 90)]:
            assert ap.post("/v1/scores", json={"score": score}, headers=login(ap, pid)).status_code == 200

        board = us.get("/v1/leaderboard/global").json()
        assert board["complete"] is False
        assert board["missing"] == [EU] and EU in board["errors"]
        assert board["regions"] == [AP, US]
        assert [(e["player_id"], e["region"]) for e in board["entries"]] == [
            (22, AP), (2, US), (3, US), (21, AP), (1, US)]
        assert [e["rank"] for e in board["entries"]] == [1, 2, 3, 4, 5]

        # the same world with every peer up is complete
        us_full = TestClient(create_app(settings_for(US, db, redis_url, peer_regions={AP: ap_url}), clock=clock))
        stack.enter_context(us_full)
        full = us_full.get("/v1/leaderboard/global", params={"limit": 2}).json()
        assert full["complete"] is True and full["missing"] == []
        assert [e["player_id"] for e in full["entries"]] == [22, 2]
        metrics = us.get(internal("/metrics")).text
        assert f'app_peer_fetches_total{{outcome="error",peer="{EU}"}}' in metrics


def test_on_aws_every_task_follows_the_home_routing_parameter_read_before_its_first_request(
        make_client, moto, monkeypatch):
    """HOME_ROUTING_PARAMETER (app/runtime.home_routing_source): moto's SSM stands for the region's; the
    map is read as the task starts (a task serving by identity until its first poll would send a cut-over
    home's writes to the origin), then polled."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    ssm = boto3.client("ssm", region_name=US, endpoint_url=moto)
    name = "/game/us-east-1/api/home-routing"
    ssm.put_parameter(Name=name, Value=json.dumps({AP: US}), Type="String")
    app = make_client(US, home_routing_parameter=name, home_routing_poll_seconds=0.1)
    auth = login(app, 25)  # homed in Tokyo
    assert app.post("/v1/scores", json={"score": 1}, headers=auth).status_code == 200  # from the first request
    ssm.put_parameter(Name=name, Value=json.dumps({AP: AP}), Type="String", Overwrite=True)  # Tokyo's cutover
    deadline = time.monotonic() + 30
    while (answer := app.post("/v1/scores", json={"score": 2}, headers=auth)).status_code == 200:
        assert time.monotonic() < deadline, "the task never polled the new map"
        time.sleep(0.05)
    assert answer.status_code == 409 and answer.json()["serving_region"] == AP
    ssm.put_parameter(Name=name, Value="{broken", Type="String", Overwrite=True)  # a botched write …
    source = app.app.state.runtime.home_routing_source
    while source.error is None:  # polled and found unreadable
        assert time.monotonic() < deadline, "the task never polled the botched map"
        time.sleep(0.05)
    assert app.post("/v1/scores", json={"score": 3}, headers=auth).json()["serving_region"] == AP  # … keeps the map
