"""Which regions a gate window judges (migrate/phasekit/players_gate.window_plan), on stand-ins for the
spec and the providers: the phase's own region is always among them. And the judgement over the phase so
far (judge_phase_so_far): a geography its players saw worse than its baseline while the phase ran fails
the step, naming the phase's rollback, even when the end of the phase is quiet again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from migrate.errors import VerifyFailed
from migrate.phasekit.gates import Thresholds
from migrate.phasekit.players_gate import judge_phase_so_far, window_plan
from migrate.providers.traffic import GeographyLatency, Routing

US, AP, EU = "us-east-1", "ap-northeast-1", "eu-central-1"


def target(running: set[str], region: str | None = AP) -> SimpleNamespace:
    regions = {US: SimpleNamespace(geography="na"), AP: SimpleNamespace(geography="apac"),
               EU: SimpleNamespace(geography="eu")}
    runtime = SimpleNamespace(api_endpoint=lambda r: object() if r in running else None)
    spec = SimpleNamespace(regions=regions, traffic_mix={"apac": 0.6, "na": 0.25, "eu": 0.15})
    return SimpleNamespace(spec=spec, region=region, providers=SimpleNamespace(runtime=runtime))


ROUTES = {"apac": Routing(weights={}, latency=(AP, US), ttl_seconds=5), "na": Routing({US: 100}, (), 5),
          "eu": Routing({US: 100}, (), 5)}


def test_a_target_whose_api_is_gone_is_still_judged_and_serving():
    plan = window_plan(target(running={US}), ROUTES)  # Tokyo's app died as the step began
    assert plan.regions == (US, AP) and AP in plan.serving


def test_other_regions_without_an_api_are_left_out():
    plan = window_plan(target(running={US, AP}), ROUTES)
    assert EU not in plan.regions and set(plan.serving) == {US, AP}
    assert window_plan(target(running={US}, region=None), ROUTES).regions == (US,)  # a global phase judges what runs


# --- over the phase so far ---------------------------------------------------------------------------
BASELINE = Thresholds(error_rate_max=0.01, p95_ms_max={"apac": 250, "na": 250, "eu": 250},
                      replication_lag_seconds_max=5, min_samples=20,
                      baseline_p95_ms={"apac": 184, "na": 36, "eu": 122}, baseline_slack_ms=20)


class Ctx:
    """A step context whose players measured `seen` since the phase began a minute ago."""

    def __init__(self, seen: dict[str, tuple[int, float | None]], started: bool = True) -> None:
        self.asked: list[tuple[float, float]] = []

        def players_latency(geographies, start, end):
            self.asked.append((start, end))
            return [GeographyLatency(g, *seen.get(g, (0, None))) for g in geographies]

        began = datetime.now(timezone.utc) - timedelta(minutes=1) if started else None
        self.target = SimpleNamespace(
            phase="attach-secondary", region=AP, state=SimpleNamespace(started_at=began),
            spec=SimpleNamespace(traffic_mix={"apac": 0.6, "na": 0.25, "eu": 0.15}),
            providers=SimpleNamespace(traffic_metrics=SimpleNamespace(players_latency=players_latency)))
        self.gates: list[dict] = []

    def record_gate(self, result: dict) -> None:
        self.gates.append(result)


def test_a_geography_worse_than_its_baseline_while_the_phase_ran_fails_the_step_naming_the_rollback():
    ctx = Ctx({"apac": (400, 190.0), "na": (150, 61.0), "eu": (90, 125.0)})  # NA: 61 > 36 + 20
    with pytest.raises(VerifyFailed) as failed:
        judge_phase_so_far(ctx, BASELINE, "attach-secondary ap-northeast-1")
    assert "na: p95 61 ms > 56 ms, worse than before" in failed.value.message
    assert "migrate phase rollback attach-secondary --region ap-northeast-1" in failed.value.hint
    assert [g["verdict"] for g in ctx.gates] == ["fail"]
    start, end = ctx.asked[0]
    assert 55 < end - start < 120  # the window is the phase's, from its first run


def test_players_within_their_baseline_pass_and_too_few_requests_are_left_to_the_bake():
    ok = Ctx({"apac": (400, 190.0), "na": (150, 50.0), "eu": (90, 125.0)})
    assert judge_phase_so_far(ok, BASELINE, "x")["verdict"] == "pass" and ok.gates[0]["action"] == "continue"
    few = Ctx({"apac": (400, 190.0), "na": (3, 900.0), "eu": (90, 125.0)})  # 3 requests judge nothing
    assert "not_judged" in judge_phase_so_far(few, BASELINE, "x") and few.gates == []
    assert "not_judged" in judge_phase_so_far(Ctx({}, started=False), BASELINE, "x")
