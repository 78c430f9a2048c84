"""Every geography's players held to the recorded baseline after a change that moves no traffic (a
cutover moves writers, not players): bake the world as it routes now and gate it (bake.py) with the
spec's gates lowered to baseline + slack (gates.thresholds_for). Without a recorded baseline there is
nothing to hold the players to: the step says so and passes nothing off as measured."""

from __future__ import annotations

import time
from typing import Any

from migrate.errors import ProviderError
from migrate.phasekit.bake import TICK_SECONDS, Bake, bake_and_gate
from migrate.phasekit.gates import thresholds_for
from migrate.phasekit.model import StepContext, Target
from migrate.providers.traffic import Routing, WindowPlan

# Of the environment's bake: 10 s in the lab, 12 min on AWS. Measured in the lab (make demo, 40 req/s, 96
# APAC players each acting every ~4 s): the APAC p95 was back at its new level 8 s after the re-home.
SETTLE_SHARE = 0.4


def api_regions(t: Target) -> tuple[str, ...]:
    """Every region with an API deployed now (its requests and errors are counted)."""
    return tuple(r for r in t.spec.regions if t.providers.runtime.api_endpoint(r) is not None)


def pools(t: Target) -> dict[str, Routing]:
    """geography → how its pool routes now (every geography of the traffic mix); read-only."""
    return {geo: t.providers.dns.pool(geo).routing() for geo in t.spec.traffic_mix}


def window_plan(t: Target, routes: dict[str, Routing]) -> WindowPlan:
    """A window over every geography routed as `routes` says, every region with an API and always the
    phase's own region, the target's lag."""
    # The target is judged even when its API looks undeployed (the lab: no app process): a target that
    # dies as a step begins must fail the gate as unreachable, not drop out of it while its players fail
    # over to another region and the gate passes on them (a CI run in session 7 did exactly that).
    deployed = set(api_regions(t))
    regions = tuple(r for r in t.spec.regions if r in deployed or r == t.region)
    serving = sorted({r for pool in routes.values() for r in pool.serving() if r in regions})
    own = routes[t.spec.regions[t.region].geography] if t.region else next(iter(routes.values()))
    return WindowPlan(regions=regions, serving=tuple(serving), routing=own, geographies=tuple(t.spec.traffic_mix),
                      mix=dict(t.spec.traffic_mix), lag_region=t.region, routes=routes)


def watch_players(ctx: StepContext, label: str, rollback_command: str) -> dict[str, Any]:
    """Bake for the environment's bake_seconds and gate every geography against its baseline; a failure
    fails the step (VerifyFailed, journaled with the figures) and names `rollback_command`: a change of
    writers is not put back by a gate on its own. Inconclusive pauses for a human, as every gate does."""
    t = ctx.target
    ctx.checkpoint()
    journal = getattr(t, "journal", None)
    if getattr(journal, "baseline", None) is None:
        return {"skipped": "no baseline recorded (`migrate baseline` while players play, before the programme)"}
    metrics = t.providers.traffic_metrics
    if metrics is None or t.providers.dns is None or t.providers.runtime is None:
        raise ProviderError("this environment cannot measure its players (traffic metrics, DNS, runtime)")
    timings = t.env.timings
    # Not judged: the move itself (held writes answered, clients re-learning where their home is served:
    # one detour each at most). bench/programme_report.py reports that stall; the gate judges what
    # players live with after it.
    settle = float(timings.bake_seconds) * SETTLE_SHARE
    until = time.monotonic() + settle
    while time.monotonic() < until:
        ctx.progress(0, None, f"{label}: letting the move settle ({until - time.monotonic():.0f} s) before the gate")
        ctx.checkpoint()
        time.sleep(TICK_SECONDS)
    result = bake_and_gate(ctx, Bake(
        label=label, index=0, count=1, bake_seconds=float(timings.bake_seconds), settle_seconds=0.0,
        poll_seconds=float(timings.poll_interval_seconds), thresholds=thresholds_for(t),
        open_window=lambda: metrics.open_window(window_plan(t, pools(t))),
        revert=lambda: f"nothing put back by the gate: `{rollback_command}` moves the writers back",
        rollback_command=rollback_command))
    return {"gate": result.verdict, "reason": result.reason}
