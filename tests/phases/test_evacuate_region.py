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

import psycopg

from migrate.engine import services
from migrate.lab import write_log
from migrate.lab.checkers.writers import Accepted, check_one_writer
from migrate.lab.gameday import figures, problems, region_kill
from migrate.lab.load.runner import start_load
from migrate.lab.wan_client import cut_link
from migrate.lab.topology import REGIONS, SOURCE_REGION
from migrate.providers.lab.home_serving import LabHomeServing
from migrate.providers.lab.home_writers import LabHomeWriters
from migrate.providers.lab.runtime import LabRegionRuntime
from tests.cli_helpers import migrate
from tests.phases import harness
from tests.phases.cutover_world import assert_cut_over
from tests.phases.evacuation_world import REGION, apac_pool, tokyo_live  # noqa: F401 (the fixture)

RATE = 30



def cli(*args: str) -> dict:
    """`migrate --output json ARGS` as the incident commander runs it; the envelope's data."""
    proc = migrate("--output", "json", *args)
    assert proc.returncode == 0, f"migrate {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return json.loads(proc.stdout)["data"]


def test_a_region_killed_under_load_is_evacuated_its_home_taken_and_it_comes_back_with_nothing_lost_after(
        tokyo_live):
    lab = tokyo_live
    hw = LabHomeWriters(lab)
    origin, home = lab.primary(), lab.home_pg(REGION)
    lost_writer_log: list = []
    ready = threading.Event()
    load = start_load(lab, duration_s=900, rate=RATE, seed=11, on_start=lambda _info: ready.set())
    try:
        assert ready.wait(60), "the players never started"
        day = region_kill(lab, cli, REGION, "apac", before_s=4, away_s=6, after_s=4,
                          before_return=lambda: lost_writer_log.extend(write_log.read(home.dsn())))
    finally:
        load.stop()
        report = load.wait(timeout=180).to_json()
    figs = figures(lab, day, report)

    # one writer per player throughout, over what every database recorded accepting: the first Tokyo
    # writer until its home was taken (nothing after), the origin from its unfence, the fresh Tokyo
    # writer from its promotion
    with harness.session() as session:
        events = [e for e in services.history(session, 0) if e.phase in ("cutover", "evacuate-region")]
    logs = lost_writer_log + write_log.read(origin.dsn()) + write_log.read(home.dsn())
    history = write_log.history(origin.port, {REGION: home.port}, logs, events, 0.0)
    assert check_one_writer(history, REGIONS) == []
    assert sum(isinstance(e, Accepted) and e.database.startswith(REGION) for e in history) > 0
    print("\ngame day:", json.dumps(figs, default=str))

    moved = day.evacuation["outputs"]
    assert moved["route-away"]["moved"] == {"apac": SOURCE_REGION}
    took = moved["take-home"]
    assert took["taken"] and took["epoch"] == 2 and took["served_by"] == SOURCE_REGION, took
    assert [r["phase"] for r in day.returned["runs"]] == ["evacuate-region", "cutover", "cutover"], day.returned
    unreplicated = day.returned["unreplicated"]
    assert unreplicated is not None and unreplicated["count"] == len(unreplicated["players"])
    assert_cut_over(lab)  # Tokyo writes its home again, from a fresh copy of the origin
    assert LabHomeServing(lab).home_epoch(REGION) == 2  # the epoch never goes back
    assert hw.reverse_stream(REGION) is not None
    assert report["ledger"]["acknowledged"] > 0
    assert report.get("recovered", {}).get("stale_home_epoch", 0) > 0  # sessions refreshed, no new login
    assert problems(figs) == [], figs
    if os.environ.get("GAMEDAY_OUT"):
        with open(os.environ["GAMEDAY_OUT"], "w") as fh:
            json.dump({"figures": figs, "load": report}, fh, indent=2, default=str)


def test_the_return_lists_exactly_the_rows_the_lost_writer_took_that_never_reached_the_origin(tokyo_live):
    lab = tokyo_live
    hw = LabHomeWriters(lab)
    home = lab.home_pg(REGION)
    with psycopg.connect(home.dsn(), autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM players WHERE home_region = %s ORDER BY id LIMIT 5",
                                          (REGION,)).fetchall()]
    # the reverse stream's link goes first: what Tokyo's writer takes from here on never reaches the origin
    cut_link(lab.wan_control_port, f"{SOURCE_REGION}->{REGION}:pghome")
    time.sleep(0.5)
    with psycopg.connect(home.dsn(), autocommit=True) as conn:
        for pid in ids[:3]:
            conn.execute("UPDATE players SET coins = coalesce(coins, 0) + 1, updated_at = now() WHERE id = %s", (pid,))
    cli("lab", "isolate", "--region", REGION)
    took = cli("region", "evacuate", REGION, "--yes")["outputs"]["take-home"]
    assert took["taken"] and took["origin_current_to"]["lsn"] is not None, took
    with psycopg.connect(lab.primary().dsn(), autocommit=True) as conn:  # the origin writes the home now
        conn.execute("UPDATE players SET coins = coalesce(coins, 0) + 5, updated_at = now() WHERE id = %s", (ids[4],))
    cli("lab", "reconnect", "--region", REGION)
    returned = cli("region", "return", REGION, "--yes")

    assert returned["unreplicated"]["players"] == sorted(ids[:3]), returned["unreplicated"]
    assert returned["unreplicated"]["count"] == 3
    assert hw.is_writer(REGION)  # a fresh one: the stale copy is gone with its three rows
    with psycopg.connect(home.dsn(), autocommit=True) as conn:
        fresh = dict(conn.execute("SELECT id, coins FROM players WHERE id = ANY(%s)", (ids,)).fetchall())
    with psycopg.connect(lab.primary().dsn(), autocommit=True) as conn:
        origin = dict(conn.execute("SELECT id, coins FROM players WHERE id = ANY(%s)", (ids,)).fetchall())
    assert fresh == origin  # the new writer is a copy of the origin: the origin's write kept, the lost ones not


def test_draining_a_healthy_region_moves_its_weighted_players_keeps_its_writer_and_the_return_puts_them_back(
        tokyo_live):
    lab = tokyo_live
    runtime = LabRegionRuntime(lab)
    pool = apac_pool(lab)
    pool.use_weighted_routing({REGION: 100, SOURCE_REGION: 0},
                              {r: runtime.api_endpoint(r) for r in (REGION, SOURCE_REGION)})
    out = cli("region", "evacuate", REGION, "--yes")["outputs"]
    assert out["route-away"]["moved"] == {"apac": SOURCE_REGION}
    assert "answers" in out["take-home"]["skipped"]  # a drain, not a loss: Tokyo keeps writing its home
    assert pool.routing().weights == {REGION: 0, SOURCE_REGION: 100}
    assert_cut_over(lab)

    back = cli("region", "return", REGION, "--yes")
    assert not back["home_taken"] and [r["phase"] for r in back["runs"]] == ["evacuate-region"]
    assert pool.routing().weights == {REGION: 100, SOURCE_REGION: 0} and pool.routing().latency == ()
    assert_cut_over(lab)
    assert LabHomeServing(lab).home_epoch(REGION) == 1  # nothing was taken: no new epoch
