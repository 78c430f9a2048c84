"""The lab TrafficMetrics' arithmetic, without a lab: the app's own Prometheus text parsed (player routes only,
5xx as errors, 409 hand-offs apart), deltas and counter resets, the mixture quantile behind the per-geography
p95 estimate; a window's p95 from the players' interval logs, the estimate only where they logged nothing.
On a real lab: a window around a real load run reports exactly what the players measured. The whole adapter
on real processes is exercised by tests/phases/test_shift_traffic.py."""

from __future__ import annotations

import time

import pytest

from app.metrics import Metrics
from migrate.lab.load.players import GEO_MIX
from migrate.lab.player_logs import IntervalLogWriter
from migrate.lab.topology import GEOGRAPHIES, LabTopology
from migrate.providers.lab.traffic import (PLAYERS_SOURCE, SOURCE_LABEL, LabTrafficMetrics, mixture_quantile,
                                           parse_metrics, server_p95_ms)
from migrate.providers.traffic import Routing, WindowPlan
from phases.shift_traffic import split


def app_text(observations) -> str:
    m = Metrics("ap-northeast-1", "test")
    for method, route, status, seconds in observations:
        m.observe(method, route, status, seconds)
    return m.render().decode()


def test_player_routes_only_5xx_are_errors_and_409s_are_hand_offs():
    scrape = parse_metrics(app_text([
        ("GET", "/health", 200, 0.001), ("GET", "/metrics", 200, 0.001),  # probes and scrapes: not players
        ("GET", "/v1/players/{player_id}", 200, 0.004), ("GET", "/v1/players/{player_id}", 200, 0.006),
        ("PATCH", "/v1/players/{player_id}", 200, 0.31), ("PATCH", "/v1/players/{player_id}", 503, 0.02),
        ("POST", "/v1/scores", 409, 0.001), ("GET", "/v1/matchmaking/tickets/{ticket_id}", 404, 0.001),
    ]))
    assert (scrape.requests, scrape.errors, scrape.redirects, scrape.served) == (6, 1, 1, 5)
    assert scrape.buckets[-1][1] == 5  # served requests in the histogram, the hand-off apart
    assert scrape.redirect_buckets[-1][1] == 1


def test_deltas_and_a_restarted_app():
    before = parse_metrics(app_text([("GET", "/v1/players/{player_id}", 200, 0.004)] * 3))
    after = parse_metrics(app_text([("GET", "/v1/players/{player_id}", 200, 0.004)] * 5
                                   + [("GET", "/v1/players/{player_id}", 500, 0.004)]))
    delta, reset = after.minus(before)
    assert (delta.requests, delta.errors, reset) == (3, 1, False)
    assert delta.buckets[-1][1] == 3
    restarted, reset = before.minus(after)  # counters went down: the app restarted, its values are the delta
    assert reset and restarted.requests == 3


def test_mixture_quantile_shifts_and_mixes_histograms():
    fast = ((0.01, 100.0), (0.1, 100.0), (float("inf"), 100.0))  # everything under 10 ms
    slow = ((0.1, 0.0), (0.3, 0.0), (0.5, 100.0), (float("inf"), 100.0))  # everything in 300–500 ms
    # one region, shifted by a 170 ms round trip: p95 is 170 ms + 9.5 ms (linear inside the bucket)
    assert mixture_quantile([(1.0, fast, 0.170)], 0.95) == pytest.approx(0.1795, abs=1e-4)
    # 90 % fast at 25 ms, 10 % slow: p95 falls in the slow part, 25 ms + 300..500 ms
    p95 = mixture_quantile([(90, fast, 0.025), (10, slow, 0.025)], 0.95)
    assert 0.325 < p95 < 0.525
    assert mixture_quantile([], 0.95) is None
    assert mixture_quantile([(0, fast, 0.0)], 0.95) is None
    assert server_p95_ms(()) is None


@pytest.mark.parametrize("percent,weights", [(1, (1, 99)), (5, (5, 95)), (25, (25, 75)), (50, (50, 50)),
                                             (0.4, (1, 99)), (99.6, (99, 1)), (100, (100, 0)), (0, (0, 100))])
def test_a_percent_is_the_targets_weight_out_of_100(percent, weights):
    assert split(percent) == weights


def source_only_plan(regions: tuple[str, ...] = ()) -> WindowPlan:
    return WindowPlan(regions, regions, Routing({r: 100 for r in regions}, (), 5), GEOGRAPHIES, GEO_MIX, None)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_window_takes_the_players_p95_from_their_logs_and_estimates_only_where_they_logged_nothing(tmp_path):
    topology = LabTopology(lab_dir=tmp_path, pg_ports={}, wan_ports={}, wan_control_port=0)  # no apps at all
    window = LabTrafficMetrics(topology).open_window(source_only_plan())
    try:
        opened = window.opened_at = time.time() - 100  # intervals before and inside it, all already written
        clock = Clock(opened - 10)
        players = IntervalLogWriter(tmp_path, "1-run", GEOGRAPHIES, clock=clock)
        for _ in range(5):  # before the window: the previous weight, slow
            players.record("apac", 900.0, False)
        clock.now += 1
        players.publish()
        clock.now = opened + 1
        players.publish()  # nothing recorded meanwhile: nothing written
        for i in range(40):
            players.record("apac", 170.0 + i / 10, False)
            players.record("na", 25.0, False)
        players.record("apac", 5000.0, True)
        clock.now += 1
        players.close()

        measured = window.measurements()
    finally:
        window.close()
    got, notes = {g.geography: g for g in measured.geographies}, measured.notes
    assert (got["apac"].source, got["apac"].samples) == (PLAYERS_SOURCE, 40)
    assert 170 < got["apac"].p95_ms < 175  # the slow interval before the window is not in it
    assert (got["na"].source, got["na"].samples) == (PLAYERS_SOURCE, 40)
    assert any(n.startswith("apac players: 1 failed request") for n in notes)
    # EU logged nothing: the estimate, which has no app to read here either, says so
    assert (got["eu"].source, got["eu"].samples, got["eu"].p95_ms) == (SOURCE_LABEL, 0, None)
    assert any(n.startswith("eu: no player latency logged in the window") for n in notes)


@pytest.mark.lab
def test_a_window_around_a_real_load_run_reports_what_the_players_measured(lab):
    from migrate.lab.load import run_load

    window = LabTrafficMetrics(lab).open_window(source_only_plan(("us-east-1",)))
    try:
        report = run_load(lab, 3, 20, seed=21)
        got = window.measurements()
    finally:
        window.close()
    assert report.requests["finished"] > 0
    for g in got.geographies:
        players = report.per_geography[g.geography]["all"]  # the run's own histograms, all request types
        assert g.source == PLAYERS_SOURCE
        assert g.samples == players["ok"]  # every successful request, in intervals inside the window
        assert g.p95_ms == pytest.approx(players["p95_ms"], abs=0.001)
    assert got.regions[0].requests > 0  # the error rate is still the app's
