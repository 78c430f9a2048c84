"""`lab up | status | down` with real processes: the whole "before" world on a fresh folder, checked
through the same paths players and phases use (WAN links, Route 53 and S3 in moto), then removed
without a trace. The tests of this module share one lab and run in file order."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path

import httpx
import pytest

from migrate.errors import LabError
from migrate.lab import aws_world, processes
from migrate.lab.aws_world import (API_NAME, bucket_name, lab_aws_clients, lb_name,
                                   pool_name, probe_health, region_of_record, set_identifier, zone_id)
from migrate.lab.load.resolver import Resolver, route53_client
from migrate.lab.pg import free_port, port_open
from migrate.lab.topology import GEOGRAPHIES, REGIONS, SOURCE_REGION, LabTopology, link_rtt_ms, wan_link_names
from migrate.providers.factory import route_lab_api
from migrate.lab.world import (lab_down, lab_status, lab_up, start_region_app, start_region_redis,
                               stop_region_app, stop_region_redis, wan_links)
from tests.conftest import reachable_tmpdir

pytestmark = pytest.mark.lab

PLAYERS = 300
US, AP = SOURCE_REGION, "ap-northeast-1"


@pytest.fixture(scope="module")
def world():
    """A fresh lab (its own folder, not the session's) and the report of the first `lab up`."""
    root = reachable_tmpdir("migrate-test-world-")
    lab_dir = root / "lab"
    try:
        report = lab_up(lab_dir, PLAYERS, route_api=route_lab_api)
        yield lab_dir, report
    finally:
        if lab_dir.exists():
            lab_down(lab_dir)
        shutil.rmtree(root, ignore_errors=True)


def components(report) -> dict[str, dict]:
    return {c["component"]: c for c in report.components}


def test_up_starts_every_process_of_the_before_world(world):
    lab_dir, report = world
    assert report.players == PLAYERS
    rows = components(report)
    for name in (f"postgresql {US}", f"redis {US}", f"app {US}", "moto", "wan proxy"):
        row = rows[name]
        assert row["state"] == "running", row
        assert processes.pid_alive(row["pid"]) and port_open(row["port"])
    assert rows[f"app {US}"]["health"] == 200
    for region in REGIONS:
        if region != US:  # built later by the phases
            for kind in ("postgresql", "redis", "app"):
                assert rows[f"{kind} {region}"]["state"] == "absent"
    # The same view from a separate `lab status`.
    assert components(lab_status(lab_dir)) == rows


def test_every_link_is_served_with_its_round_trip(world):
    _, report = world
    links = {link["name"]: link for link in report.links}
    assert sorted(links) == wan_link_names()
    assert all(link["state"] == "up" for link in links.values())
    assert links[f"apac->{US}:api"]["rtt_ms"] == 170 == link_rtt_ms(f"apac->{US}:api")
    assert links[f"{US}->{AP}:api"]["rtt_ms"] == 145  # peers: region → region
    assert {f"{g}->{r}:api" for g in GEOGRAPHIES for r in REGIONS} <= set(links)


def test_players_reach_the_app_through_their_links(world):
    lab_dir, _ = world
    t = LabTopology.load(lab_dir)
    health = httpx.get(f"{t.player_url('na', US)}/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["region"] == US and health.json()["role"] == "writer"

    rtt = link_rtt_ms(f"apac->{US}:api")
    with httpx.Client(base_url=t.player_url("apac", US), timeout=10) as http:
        http.get("/health")  # connection set up outside the samples
        samples = []
        for player_id in range(1, 12):
            start = time.perf_counter()
            assert http.get(f"/v1/players/{player_id}").status_code == 200
            samples.append((time.perf_counter() - start) * 1000)
    # A lower bound only: a request is one round trip through the link (each direction delayed by
    # half the RTT ± symmetric jitter, a response's later chunks never earlier than its first) plus
    # the app's own work, so the median sits at or above the RTT; 0.9 leaves room for the jitter.
    assert statistics.median(samples) >= 0.9 * rtt, samples


def test_internal_paths_answer_404_through_the_public_name_and_200_on_the_internal_listener(world):
    """/metrics and /internal/shadow/report (it holds player data) are not the players': resolved the
    way a player resolves api.game.example and sent through the APAC players' link, both are 404."""
    lab_dir, _ = world
    t = LabTopology.load(lab_dir)
    region = Resolver(route53_client(t.moto_endpoint)).resolve("apac", 1)
    assert region == US
    for path in ("/metrics", "/internal/shadow/report"):
        public = httpx.get(f"{t.player_url('apac', region)}{path}", timeout=10)
        assert public.status_code == 404 and public.json()["error"] == "not_found", path
        assert httpx.get(f"{t.internal_url(region)}{path}", timeout=10).status_code == 200, path
    # no player link reaches an internal listener; the regions' own peer links do (their private network)
    player_links = [link for link in wan_links(t) if link["name"].split("->")[0] in GEOGRAPHIES]
    assert player_links and not set(t.internal_ports.values()) & {link["target_port"] for link in player_links}


def test_route53_routes_each_geography_to_a_pool_holding_us_east_1_with_its_health_check(world):
    lab_dir, _ = world
    t = LabTopology.load(lab_dir)
    aws = lab_aws_clients(t)
    zone = zone_id(t)
    listed = aws.route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    front = {r["SetIdentifier"]: r for r in listed if r["Name"] == API_NAME}
    assert set(front) == {"geo-apac", "geo-eu", "geo-na"}
    assert front["geo-apac"]["ResourceRecords"] == [{"Value": pool_name("apac")}]
    for geography in ("apac", "eu", "na"):
        records = [r for r in listed if r["Name"] == pool_name(geography)]
        assert len(records) == 1
        record = records[0]
        assert record["Type"] == "CNAME"
        assert record["SetIdentifier"] == set_identifier(US, geography=geography) == f"us-east-1-{geography}-weighted"
        assert record["Weight"] == 100 and record["TTL"] == aws_world.lab_ttl_seconds()
        assert record["ResourceRecords"] == [{"Value": lb_name(US)}]
        assert region_of_record(record) == US
    check = aws.route53.get_health_check(HealthCheckId=record["HealthCheckId"])["HealthCheck"]
    config = check["HealthCheckConfig"]
    assert config["Type"] == "HTTP" and config["ResourcePath"] == "/health"
    assert config["Port"] == t.app_ports[US]
    assert probe_health(config)
    assert components(lab_status(lab_dir))["moto"]["state"] == "running"
    assert {r["region"] for r in lab_status(lab_dir).aws["records"]} == {US, None}


def test_the_asset_bucket_serves_the_apps_asset_urls(world):
    lab_dir, _ = world
    t = LabTopology.load(lab_dir)
    aws = lab_aws_clients(t)
    bucket = bucket_name(US)
    aws.s3.head_bucket(Bucket=bucket)
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"manifest.json", "ui/logo.svg"} <= keys
    asset = httpx.get(f"{t.app_url(US)}/v1/assets/ui/logo.svg", timeout=5).json()
    assert asset["bucket"] == bucket
    assert httpx.get(asset["url"], timeout=5).content.startswith(b"<svg")


def test_the_session_key_stays_in_its_0600_file(world):
    lab_dir, report = world
    t = LabTopology.load(lab_dir)
    assert t.session_keys_file.stat().st_mode & 0o777 == 0o600
    secret = next(iter(json.loads(t.session_keys_file.read_text()).values()))
    assert len(secret) >= 32
    leaks = [p.name for p in lab_dir.iterdir() if p.is_file() and p != t.session_keys_file
             and secret in p.read_text(errors="replace")]
    assert leaks == []
    assert secret not in json.dumps(report.to_json())
    # Sessions signed in us-east-1 work through a player link.
    login = httpx.post(f"{t.player_url('na', US)}/v1/login", json={"player_id": 3}, timeout=10)
    assert login.status_code == 200 and login.json()["serving_region"] == US


def test_a_region_app_starts_and_stops_idempotently(world):
    """The helpers stand-up-region uses: a region's Redis and app, reading and writing through its WAN links."""
    lab_dir, _ = world
    t = LabTopology.load(lab_dir)
    try:
        redis = start_region_redis(t, AP)
        app = start_region_app(t, AP)
        assert redis.started and app.started
        assert start_region_redis(t, AP) == processes.Started(redis.pid, False)
        assert start_region_app(t, AP) == processes.Started(app.pid, False)
        health = httpx.get(f"{t.app_url(AP)}/health", timeout=10).json()
        assert health["region"] == AP and health["reader"]["port"] == str(t.wan_port(AP, US))
        # us-east-1's global leaderboard now reaches its Tokyo peer through the region → region link.
        deadline = time.monotonic() + 15  # a failure cached before the peer was up expires first
        while AP not in (board := httpx.get(f"{t.app_url(US)}/v1/leaderboard/global", timeout=10).json())["regions"]:
            assert time.monotonic() < deadline, board
            time.sleep(0.5)
    finally:
        stopped_app, stopped_redis = stop_region_app(t, AP), stop_region_redis(t, AP)
    assert stopped_app == app.pid and stopped_redis == redis.pid
    assert not processes.pid_alive(app.pid) and not processes.pid_alive(redis.pid)
    assert stop_region_app(t, AP) is None and stop_region_redis(t, AP) is None
    rows = components(lab_status(lab_dir))
    assert rows[f"app {AP}"]["state"] == rows[f"redis {AP}"]["state"] == "absent"


def test_up_adds_links_a_running_proxy_lacks(world):
    """A proxy started by an older lab serves fewer links: `lab up` adds the missing ones at runtime."""
    from migrate.lab.wan import remove_link

    lab_dir, _ = world
    t = LabTopology.load(lab_dir)
    wan_pid = components(lab_status(lab_dir))["wan proxy"]["pid"]
    remove_link(t.wan_control_port, f"eu->{US}:api")
    assert {link["name"]: link for link in lab_status(lab_dir).links}[f"eu->{US}:api"]["state"] == "missing"
    report = lab_up(lab_dir, PLAYERS, route_api=route_lab_api)
    assert report.actions == [f"added 1 links to the running WAN proxy: eu->{US}:api"]
    assert all(link["state"] == "up" for link in report.links)
    assert components(report)["wan proxy"]["pid"] == wan_pid


def test_up_again_changes_nothing(world):
    lab_dir, first = world
    before = (lab_dir / "lab.json").read_bytes()
    pids = {name: row["pid"] for name, row in components(first).items()}
    report = lab_up(lab_dir, PLAYERS, route_api=route_lab_api)
    assert report.actions == []
    assert {name: row["pid"] for name, row in components(report).items()} == pids
    assert (lab_dir / "lab.json").read_bytes() == before


def test_down_leaves_no_process_and_no_folder(world):
    lab_dir, _ = world
    status = lab_status(lab_dir)
    pids = [row["pid"] for row in status.components if row["pid"]]
    ports = [row["port"] for row in status.components if row["state"] == "running"]
    ports += [link["port"] for link in status.links]
    assert len(pids) == 5
    report = lab_down(lab_dir)
    assert "checked: none of the 5 lab processes is left" in report.actions
    assert not lab_dir.exists()
    assert [pid for pid in pids if processes.pid_alive(pid)] == []
    assert [port for port in ports if port_open(port, timeout=0.2)] == []
    mentions = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(lab_dir).encode() in cmdline.read_bytes():
                mentions.append(cmdline.parent.name)
        except OSError:
            pass
    assert mentions == []
    assert lab_down(lab_dir).actions == ["no lab here; nothing to do"]


def test_an_older_lab_json_gets_its_missing_ports_once(tmp_path):
    """A lab.json from before Redis, apps, moto and the api links: ports are allocated on first load
    and then kept."""
    old = {"lab_dir": str(tmp_path), "pg_ports": {r: free_port() for r in REGIONS},
           "wan_ports": {f"{a}->{b}:pg": free_port() for a in REGIONS for b in REGIONS if a != b},
           "wan_control_port": free_port(), "players": 10, "from_a_newer_version": True}
    (tmp_path / "lab.json").write_text(json.dumps(old))
    first = LabTopology.load(tmp_path)
    assert sorted(first.wan_ports) == wan_link_names()
    assert first.pg_ports == old["pg_ports"] and first.wan_control_port == old["wan_control_port"]
    assert set(first.app_ports) == set(first.redis_ports) == set(REGIONS) and first.moto_port
    assert LabTopology.load(tmp_path) == first
    assert not first.missing()
    assert os.stat(tmp_path / "lab.json").st_size > 0


def test_process_helpers_start_once_stop_by_group_and_ignore_stale_pidfiles(tmp_path):
    import socket
    import sys

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    first = processes.start_detached(tmp_path, "sleeper", sleeper)
    assert first.started and processes.running_pid(tmp_path, "sleeper") == first.pid
    assert processes.start_detached(tmp_path, "sleeper", sleeper) == processes.Started(first.pid, False)
    assert processes.process_state(tmp_path, "sleeper") == ("running", first.pid)
    assert processes.stop_process(tmp_path, "sleeper") == first.pid
    assert not processes.pid_alive(first.pid) and not processes.pidfile_path(tmp_path, "sleeper").exists()
    assert processes.stop_process(tmp_path, "sleeper") is None

    # A pidfile naming a pid the kernel gave to someone else (here: this test) is not ours.
    processes.pidfile_path(tmp_path, "stale").write_text(f"{os.getpid()} 1\n")
    assert processes.running_pid(tmp_path, "stale") is None
    assert processes.process_state(tmp_path, "stale") == ("dead", os.getpid())
    assert processes.stop_process(tmp_path, "stale") is None  # and it is left alone

    # A port a stranger holds is refused rather than mistaken for our process being ready.
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        with pytest.raises(LabError, match="already in use"):
            processes.start_detached(tmp_path, "late", sleeper, port=stranger.getsockname()[1])
    assert processes.running_pid(tmp_path, "late") is None

    # A process that dies at start is reported with its log.
    with pytest.raises(LabError, match="exited.*boom"):
        processes.start_detached(tmp_path, "crash", [sys.executable, "-c", "raise SystemExit('boom')"],
                                 port=free_port(), timeout=10)
