"""The gate evaluator on its own: no data is Inconclusive (never Pass), broken thresholds Fail,
Fail wins over Inconclusive, and every result carries the measured values and the reasons."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from migrate.phasekit.gates import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    GeographyLatency,
    Measurements,
    RegionErrors,
    Thresholds,
    evaluate,
    summary,
)

T = Thresholds(error_rate_max=0.005, p95_ms_max={"apac": 250, "na": 250, "eu": 300},
               replication_lag_seconds_max=5, min_samples=100)


def healthy(**overrides) -> Measurements:
    values = {
        "regions": (RegionErrors("us-east-1", 2000, 1), RegionErrors("ap-northeast-1", 1000, 0)),
        "geographies": (GeographyLatency("apac", 1800, 190.0), GeographyLatency("na", 750, 40.0),
                        GeographyLatency("eu", 450, 125.0)),
        "replication_lag_seconds": 0.2, "lag_region": "ap-northeast-1", "window_seconds": 30.0}
    values.update(overrides)
    return Measurements(**values)


def test_healthy_measurements_pass_with_their_values():
    result = evaluate(healthy(), T)
    assert result.verdict == PASS and result.passed
    assert result.values["regions"]["us-east-1"] == {"requests": 2000, "errors": 1, "error_rate": 0.0005,
                                                       "server_p95_ms": None}
    assert result.values["geographies"]["apac"]["p95_ms"] == 190.0
    assert result.values["replication_lag_seconds"] == 0.2
    assert result.values["errors"] == 1
    assert result.thresholds["p95_ms_max"]["eu"] == 300
    assert "apac 190 ms" in result.reason and "lag 0.20 s" in result.reason
    json.dumps(result.to_json())  # journaled as is


def test_no_data_at_all_is_inconclusive_never_pass():
    nothing = Measurements(regions=(RegionErrors("us-east-1", 0, 0), RegionErrors("ap-northeast-1", 0, 0)),
                           geographies=(GeographyLatency("apac", 0, None), GeographyLatency("na", 0, None),
                                        GeographyLatency("eu", 0, None)),
                           replication_lag_seconds=None)
    result = evaluate(nothing, T)
    assert result.verdict == INCONCLUSIVE
    assert any("no request" in r for r in result.reasons)
    assert any("no latency data" in r for r in result.reasons)
    assert any("replication lag unknown" in r for r in result.reasons)


def test_empty_measurements_are_inconclusive():
    # Nothing measured at all (not even the lag): still never a pass.
    result = evaluate(Measurements(regions=(), geographies=(), replication_lag_seconds=None), T)
    assert result.verdict == INCONCLUSIVE


@pytest.mark.parametrize("samples", [0, 1, 99])
def test_too_few_samples_is_inconclusive(samples):
    result = evaluate(healthy(geographies=(GeographyLatency("apac", samples, 100.0 if samples else None),
                                           GeographyLatency("na", 750, 40.0), GeographyLatency("eu", 450, 125.0))), T)
    assert result.verdict == INCONCLUSIVE


def test_a_slow_geography_with_too_few_samples_is_not_yet_a_failure():
    result = evaluate(healthy(geographies=(GeographyLatency("apac", 10, 900.0),
                                           GeographyLatency("na", 750, 40.0), GeographyLatency("eu", 450, 125.0))), T)
    assert result.verdict == INCONCLUSIVE
    assert "10 requests < min_samples 100" in result.reason


def test_p95_over_its_ceiling_fails():
    result = evaluate(healthy(geographies=(GeographyLatency("apac", 1800, 325.6),
                                           GeographyLatency("na", 750, 40.0), GeographyLatency("eu", 450, 125.0))), T)
    assert result.verdict == FAIL
    assert result.reasons == ("apac: p95 326 ms > 250 ms (1800 requests)",)


def test_a_geography_without_a_ceiling_is_inconclusive():
    result = evaluate(healthy(geographies=(GeographyLatency("mars", 500, 10.0),)), T)
    assert result.verdict == INCONCLUSIVE and "no p95 ceiling" in result.reason


def test_error_rate_over_the_limit_fails():
    result = evaluate(healthy(regions=(RegionErrors("us-east-1", 2000, 1), RegionErrors("ap-northeast-1", 1000, 6))), T)
    assert result.verdict == FAIL
    assert "ap-northeast-1: 6 of 1000 requests failed (0.60 % > 0.50 %)" in result.reasons


def test_few_requests_fail_only_on_errors_no_clean_traffic_could_dilute():
    # 1 error in 3 requests: over 0.5 %, but padded to min_samples (100) it would be 1 %: still a fail.
    assert evaluate(healthy(regions=(RegionErrors("ap-northeast-1", 3, 1),)), T).verdict == FAIL
    # With a looser limit (2 %) one error in 3 requests could still dilute below it: not a failure.
    loose = Thresholds(0.02, T.p95_ms_max, 5, 100)
    assert evaluate(healthy(regions=(RegionErrors("ap-northeast-1", 3, 1),)), loose).verdict == PASS


def test_a_required_region_without_requests_is_inconclusive_an_idle_one_is_not():
    idle_target = healthy(regions=(RegionErrors("us-east-1", 2000, 0), RegionErrors("ap-northeast-1", 0, 0)))
    assert evaluate(idle_target, T).verdict == INCONCLUSIVE
    not_required = healthy(regions=(RegionErrors("us-east-1", 2000, 0),
                                    RegionErrors("ap-northeast-1", 0, 0, required=False)))
    assert evaluate(not_required, T).verdict == PASS


def test_unknown_counts_of_a_required_region_are_inconclusive():
    result = evaluate(healthy(regions=(RegionErrors("us-east-1", 2000, 0), RegionErrors("ap-northeast-1", None, None))), T)
    assert result.verdict == INCONCLUSIVE and "counts unknown" in result.reason


def test_unreachable_region_fails_even_when_everything_else_is_missing():
    result = evaluate(Measurements(regions=(RegionErrors("ap-northeast-1", None, None),), geographies=(),
                                   replication_lag_seconds=None,
                                   unreachable={"ap-northeast-1 from apac": "3 probes failed (ConnectError)"}), T)
    assert result.verdict == FAIL
    assert result.reasons[0] == "ap-northeast-1 from apac unreachable: 3 probes failed (ConnectError)"
    assert result.values["unreachable"] == {"ap-northeast-1 from apac": "3 probes failed (ConnectError)"}


def test_replication_lag_over_the_ceiling_fails_and_unknown_is_inconclusive():
    assert evaluate(healthy(replication_lag_seconds=7.5), T).verdict == FAIL
    assert "ap-northeast-1 replication lag 7.50 s > 5 s" in evaluate(healthy(replication_lag_seconds=7.5), T).reason
    assert evaluate(healthy(replication_lag_seconds=None), T).verdict == INCONCLUSIVE
    assert evaluate(healthy(replication_lag_seconds=float("nan")), T).verdict == INCONCLUSIVE


def test_fail_wins_over_inconclusive_and_lists_only_failures():
    result = evaluate(healthy(replication_lag_seconds=None,
                              regions=(RegionErrors("us-east-1", 2000, 50),)), T)
    assert result.verdict == FAIL
    assert all("failed" in r for r in result.reasons)


def test_thresholds_from_the_spec():
    gates = SimpleNamespace(error_rate_max=0.01, p95_ms_max={"apac": 200}, replication_lag_seconds_max=2,
                            min_samples=10)
    t = Thresholds.from_spec(gates)
    assert t == Thresholds(0.01, {"apac": 200}, 2.0, 10)


def test_summary_handles_missing_figures():
    line = summary({"regions": {"us-east-1": {"errors": None, "requests": None}},
                    "geographies": {"apac": {"p95_ms": None}}, "replication_lag_seconds": None})
    assert line == "errors us-east-1 ?; p95 apac –; lag –"


def test_a_recorded_baseline_lowers_each_geographys_ceiling_to_baseline_plus_slack():
    gates = SimpleNamespace(error_rate_max=0.01, p95_ms_max={"apac": 400, "na": 300, "eu": 350},
                            replication_lag_seconds_max=2, min_samples=10, baseline_slack_ms=15)
    t = Thresholds.from_spec(gates, {"p95_ms": {"apac": 213.4, "na": 44.4}})
    assert (t.ceiling("apac"), t.ceiling("na"), t.ceiling("eu")) == (228.4, 59.4, 350)
    assert Thresholds.from_spec(gates).ceiling("na") == 300  # no baseline recorded: the spec's ceiling


def test_a_geography_worse_than_its_baseline_fails_the_gate_and_says_so():
    gates = SimpleNamespace(error_rate_max=0.01, p95_ms_max={"apac": 400, "na": 300, "eu": 350},
                            replication_lag_seconds_max=2, min_samples=10, baseline_slack_ms=15)
    t = Thresholds.from_spec(gates, {"p95_ms": {"apac": 210.0, "na": 40.0, "eu": 125.0}})
    worse = Measurements(regions=(RegionErrors("us-east-1", 500, 0),),
                         geographies=(GeographyLatency("apac", 300, 39.0), GeographyLatency("na", 100, 61.0),
                                      GeographyLatency("eu", 60, 126.0)),
                         replication_lag_seconds=0.1)
    result = evaluate(worse, t)
    assert result.verdict == FAIL
    assert result.reasons == ("na: p95 61 ms > 55 ms, worse than before: baseline 40 ms + 15 (100 requests)",)
    assert evaluate(replace(worse, geographies=(GeographyLatency("apac", 300, 39.0), GeographyLatency("na", 100, 54.0),
                                                GeographyLatency("eu", 60, 126.0))), t).verdict == PASS


def test_a_partial_window_is_held_to_the_spec_ceiling_and_only_the_whole_window_to_the_baseline():
    gates = SimpleNamespace(error_rate_max=0.01, p95_ms_max={"apac": 400, "na": 300, "eu": 350},
                            replication_lag_seconds_max=2, min_samples=10, baseline_slack_ms=20)
    t = Thresholds.from_spec(gates, {"p95_ms": {"apac": 185.0, "na": 38.0, "eu": 125.0}})
    transient = Measurements(regions=(RegionErrors("eu-central-1", 50, 0),),
                             geographies=(GeographyLatency("apac", 300, 40.0), GeographyLatency("na", 100, 39.0),
                                          GeographyLatency("eu", 43, 219.0)),
                             replication_lag_seconds=0.1)
    assert evaluate(transient, t, partial=True).verdict == PASS  # still under eu's 350 ms
    assert evaluate(transient, t).verdict == FAIL  # the whole window: worse than 125 + 20
    disaster = replace(transient, geographies=(GeographyLatency("apac", 300, 40.0), GeographyLatency("na", 100, 39.0),
                                               GeographyLatency("eu", 43, 900.0)))
    assert evaluate(disaster, t, partial=True).verdict == FAIL


def test_a_window_with_no_replica_in_play_does_not_wait_for_a_lag_but_one_with_a_replica_does():
    no_lag = healthy(replication_lag_seconds=None, lag_region=None)
    assert evaluate(no_lag, T).verdict == INCONCLUSIVE  # a replica was in play and its lag is unknown
    assert evaluate(replace(no_lag, lag_judged=False), T).verdict == PASS  # stand-up, a schema change
    assert evaluate(replace(no_lag, lag_judged=False, geographies=(GeographyLatency("apac", 1800, 900.0),)),
                    T).verdict == FAIL  # the players are still judged
