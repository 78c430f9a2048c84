"""Every geography's players held to the recorded baseline by the phases that move no traffic (stand-up,
attach, shadow, expand, cutover: a cutover moves writers, not players). Two judgements, both with the
spec's gates lowered to baseline + slack (gates.thresholds_for):
- over the phase so far: the players' own p95 per geography from the phase's first run to now, so a
  phase that hurt players while a step ran (a pg_basebackup filling the link, a lock held by a
  revision) fails even when the world is quiet again by the end;
- over a bake of the world as the phase left it (bake.py).
Without a recorded baseline there is nothing to hold the players to: the step says so and passes
nothing off as measured. A failure fails the step and names the phase's rollback: moving writers or
tearing a region down is not something a gate does on its own."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from migrate.errors import ProviderError, VerifyFailed
from migrate.phasekit.bake import TICK_SECONDS, Bake, bake_and_gate
from migrate.phasekit.gates import FAIL, PASS, Thresholds, evaluate, thresholds_for
from migrate.phasekit.model import StepContext, Target
from migrate.providers.traffic import Measurements, Routing, WindowPlan

# Of the environment's bake, for a change players feel as a move (cutover: 10 s in the lab, 12 min on
# AWS). Measured in the lab (make demo, 40 req/s, 96 APAC players each acting every ~4 s): the APAC p95
# was back at its new level 8 s after the re-home.
SETTLE_SHARE = 0.4


def api_regions(t: Target) -> tuple[str, ...]:
    """Every region with an API deployed now (its requests and errors are counted)."""
    return tuple(r for r in t.spec.regions if t.providers.runtime.api_endpoint(r) is not None)


def pools(t: Target) -> dict[str, Routing]:
    """geography → how its pool routes now (every geography of the traffic mix); read-only."""
    return {geo: t.providers.dns.pool(geo).routing() for geo in t.spec.traffic_mix}


def window_plan(t: Target, routes: dict[str, Routing], *, lag: bool = True) -> WindowPlan:
    """A window over every geography routed as `routes` says, every region with an API and always the
    phase's own region, the target's lag (none judged without `lag` or a region: no replica in play)."""
    # The target is judged even when its API looks undeployed (the lab: no app process): a target that
    # dies as a step begins must fail the gate as unreachable, not drop out of it while its players fail
    # over to another region and the gate passes on them (a CI run in session 7 did exactly that).
    deployed = set(api_regions(t))
    regions = tuple(r for r in t.spec.regions if r in deployed or r == t.region)
    serving = sorted({r for pool in routes.values() for r in pool.serving() if r in regions})
    own = routes[t.spec.regions[t.region].geography] if t.region else next(iter(routes.values()))
    return WindowPlan(regions=regions, serving=tuple(serving), routing=own, geographies=tuple(t.spec.traffic_mix),
                      mix=dict(t.spec.traffic_mix), lag_region=t.region if lag else None, routes=routes)


def rollback_command(t: Target) -> str:
    """The command that rolls `t`'s phase back, for a failed gate's hint."""
    return f"migrate phase rollback {t.phase}" + (f" --region {t.region}" if t.region else "")


def judge_phase_so_far(ctx: StepContext, thresholds: Thresholds, label: str) -> dict[str, Any]:
    """Every geography's p95 as its players measured it from the phase's first run to now, held to
    `thresholds`; a geography over its ceiling on min_samples requests fails the step (journaled); one
    with fewer is not judged here (the bake after judges the world as it is)."""
    t = ctx.target
    started = getattr(t.state, "started_at", None)
    if started is None:
        return {"not_judged": "the journal has no start for this phase"}
    start, end = started.timestamp(), time.time()
    seen = t.providers.traffic_metrics.players_latency(tuple(t.spec.traffic_mix), start, end)
    result = evaluate(Measurements(regions=(), geographies=tuple(seen), replication_lag_seconds=None,
                                   window_seconds=end - start, lag_judged=False), thresholds)
    at = f"{label} (players over the phase, {end - start:.0f} s)"
    if result.verdict == FAIL:
        record = {**result.to_json(), "at": at, "action": "held: nothing put back by the gate"}
        ctx.record_gate(record)
        raise VerifyFailed(f"gate failed at {at}: {result.reason}",
                           hint="find the cause (the gate in `migrate status`/`migrate history`), then roll "
                                f"back: `{rollback_command(t)}`", details={"gate": record})
    if result.verdict == PASS:
        ctx.record_gate({**result.to_json(), "at": at, "action": "continue"})
        return {"verdict": PASS, "reason": result.reason}
    return {"not_judged": result.reason}


def watch_players(ctx: StepContext, label: str, *, settle_share: float = 0.0, lag: bool = True) -> dict[str, Any]:
    """Judge every geography over the phase so far, then bake for the environment's bake_seconds (after
    letting a move settle for `settle_share` of it) and gate every geography against its baseline; a
    failure fails the step (VerifyFailed, journaled with the figures) and names the phase's rollback.
    Inconclusive pauses for a human, as every gate does."""
    t = ctx.target
    ctx.checkpoint()
    journal = getattr(t, "journal", None)
    if getattr(journal, "baseline", None) is None:
        return {"skipped": "no baseline recorded (`migrate baseline` while players play, before the programme)"}
    metrics = t.providers.traffic_metrics
    if metrics is None or t.providers.dns is None or t.providers.runtime is None:
        raise ProviderError("this environment cannot measure its players (traffic metrics, DNS, runtime)")
    timings = t.env.timings
    thresholds = thresholds_for(t)
    so_far = judge_phase_so_far(ctx, thresholds, label)
    # Not judged: the move itself (held writes answered, clients re-learning where their home is served:
    # one detour each at most). bench/programme_report.py reports that stall; the gate judges what
    # players live with after it.
    settle = float(timings.bake_seconds) * settle_share
    until = time.monotonic() + settle
    while time.monotonic() < until:
        ctx.progress(0, None, f"{label}: letting the move settle ({until - time.monotonic():.0f} s) before the gate")
        ctx.checkpoint()
        time.sleep(TICK_SECONDS)
    result = bake_and_gate(ctx, Bake(
        label=label, index=0, count=1, bake_seconds=float(timings.bake_seconds), settle_seconds=0.0,
        poll_seconds=float(timings.poll_interval_seconds), thresholds=thresholds,
        open_window=lambda: metrics.open_window(window_plan(t, pools(t), lag=lag)),
        revert=lambda: f"nothing put back by the gate: `{rollback_command(t)}` puts the phase back",
        rollback_command=rollback_command(t)))
    return {"over_the_phase": so_far, "gate": result.verdict, "reason": result.reason}


@dataclass(frozen=True)
class WatchPlayers:
    """The last step of a phase players could feel without their traffic moving: watch_players."""

    settle_share: float = 0.0  # of the bake, before the gate window (a move players feel: cutover)
    lag: bool = True  # judge the target's replication lag (False: no replica in play yet)
    id: str = "watch-players"
    title: str = "Hold every geography's players to their baseline: over the phase, then a bake and gate"

    def describe(self, target: Target) -> list[str]:
        t = target.env.timings
        lag = f", {target.region} replication lag" if self.lag and target.region else ""
        return [f"judge every geography's p95 over the phase so far, then bake {t.bake_seconds:g} s and gate: p95 ≤ "
                f"the lower of [gates] p95_ms_max and the baseline recorded by `migrate baseline` + "
                f"{target.spec.gates.baseline_slack_ms:g} ms, 5xx{lag}; skipped, saying so, when no baseline is "
                "recorded"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        t = ctx.target
        label = f"{t.phase}" + (f" {t.region}" if t.region else "")
        return watch_players(ctx, label, settle_share=self.settle_share, lag=self.lag)

    def verify(self, ctx: StepContext) -> None:
        pass  # apply returns only on a pass (or a skip it names)

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()
