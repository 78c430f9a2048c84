"""Which regions a gate window judges (migrate/phasekit/players_gate.window_plan), on stand-ins for the
spec and the providers: the phase's own region is always among them."""

from __future__ import annotations

from types import SimpleNamespace

from migrate.phasekit.players_gate import window_plan
from migrate.providers.traffic import Routing

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
