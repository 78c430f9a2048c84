"""Phase shift-traffic: move one geography's players to the target region through Route 53, one gated
step at a time, ending with latency-based records with health checks for every active region.

Routing is scoped per player geography (migrate/providers/aws/dns.py): the API name answers each
geography with its own pool name ("apac.api.game.example"), and the phase moves records in the target's
geography pool only. So 50 % means half of APAC on Tokyo, and no EU or NA player is touched.

Steps
- `shift-weights` walks the spec's shift_schedule below 100 %. A step of p % UPSERTs, in ONE change
  batch, the target's weighted record in the pool to weight p and the source's to 100 − p (weights are
  0–255; a total of 100 reads as percent; p is rounded to a whole percent, at least 1 when p > 0).
- `latency-records` is the schedule's 100 % step: ONE change batch deletes the pool's weighted records
  and creates a latency record "<region>-<geography>-latency" with the region's health check for every
  active region (the source, every region already shifted, this target). Route 53 refuses two routing
  policies on one name, hence the swap rather than both. Latency, not weight 100, so that the
  geography's players still fail over to the nearest other healthy region when the target's health
  check fails, without anyone touching DNS.
- After each change: bake for the environment's bake_seconds, then gate. Players see a change only
  after the record TTL (lab 5 s, AWS 60 s), so the bake is split: the first TTL is a settling window
  (watched for failures only), the rest is the gate window whose measurements the verdict is on. The
  preflight refuses a bake that does not exceed the TTL.
- Gate (engine/gates.py): error rate per serving region, p95 per geography, the target's replication
  lag, reachability of the serving regions from the geographies they serve. Every evaluation is
  journaled (`migrate status` shows the last). Pass → the step is saved as passed, next step. Fail —
  at the end of the bake or as soon as an interim check (every poll interval) sees it — → the routing
  goes back to the last passed step AT ONCE (weights, or weighted records instead of latency ones),
  the revert is journaled with the gate, and the step fails; no human is needed. Inconclusive (no or too
  little data) → the run pauses for a human: `migrate resume` bakes and evaluates again, `migrate abort`
  rolls back.
- Resumable: the last passed step is journaled (ctx.save); after a crash the run resumes with the step
  after it (applied again from its start: its bake restarts).

Undo: the pool's latency records out and its weighted records back as they were before the swap (one
batch), this region's latency record out of every other geography's pool, then weights back to the
source (target 0, source 100). Weighted steps are skipped, with a note, when the pool already routes by
latency before the phase starts (another region serving the same geography shifted first): partial
steps would reach no player, the shift is the one gated latency step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from migrate.phasekit.bake import Bake
from migrate.phasekit.bake import bake_and_gate as bake_and_gate_loop
from migrate.phasekit.gates import GateResult, thresholds_for
from migrate.phasekit.players_gate import pools, window_plan
from migrate.phasekit.checks import api_endpoints, geography_routing, lag_within_budget
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.errors import ProviderError, VerifyFailed
from migrate.providers.protocols import ApiEndpoint
from migrate.providers.traffic import (
    Routing,
    TrafficDns,
    TrafficMetrics,
    WindowPlan,
)

SCALE = 100  # weights of the source and the target add up to this: a weight reads as a percent


def split(percent: float) -> tuple[int, int]:
    """(target weight, source weight) for `percent` of players on the target: 25 → (25, 75), 0.4 → (1, 99)."""
    target = round(percent)
    if percent > 0:
        target = max(1, target)
    # a partial step never rounds up to the whole set: 99.6 % keeps 1 on the source
    target = min(SCALE - 1 if percent < 100 else SCALE, target)
    return target, SCALE - target


def _dns(t: Target) -> TrafficDns:
    """The Route 53 adapter bound to the target's geography pool: every weight this phase moves is there."""
    return t.providers.dns.pool(_geography(t))


def _shifted_regions(t: Target) -> set[str]:
    """Regions other than the source and the target whose own geography's pool routes by latency to them:
    shifted already, so "active" in every latency set this phase writes."""
    root, out = t.providers.dns, set()
    for name, region in t.spec.regions.items():
        if name in (t.region, t.spec.source_region) or region.geography not in t.spec.traffic_mix:
            continue
        if name in root.pool(region.geography).routing().latency:
            out.add(name)
    return out


def _metrics(t: Target) -> TrafficMetrics:
    metrics = t.providers.traffic_metrics
    if metrics is None:
        raise ProviderError("this environment has no traffic metrics provider",
                            hint="build providers with migrate.providers.factory (traffic_metrics)")
    return metrics


def _geography(t: Target) -> str:
    return t.spec.regions[t.region].geography


def _source(t: Target) -> str:
    return t.spec.source_region


def _weighted_schedule(t: Target) -> list[float]:
    return [p for p in t.spec.shift_schedule if p < 100]


def _per_env(t: Target, lab: str, aws: str) -> str:
    return aws if t.env.kind == "aws" else lab


def _weights_text(weights) -> str:
    return ", ".join(f"{r} {w}" for r, w in sorted(weights.items())) or "none"


# --- bake and gate ------------------------------------------------------------------------------
@dataclass
class _Position:
    """Where the schedule is, for the operator's progress bar."""

    index: int  # 0-based step number within the phase's gated steps
    count: int  # gated steps of the phase
    label: str  # "25 %" or "100 % (latency records)"


def _window_plan(t: Target, routing: Routing) -> WindowPlan:
    return window_plan(t, {**pools(t), _geography(t): routing})


def bake_and_gate(ctx: StepContext, label: str, position: _Position, revert: Callable[[], str]) -> GateResult:
    """Bake the routing now in Route 53 and gate it (migrate/phasekit/bake.py): the first record TTL is the
    settling window; a failure puts routing back to the last passed step at once; returns the pass."""
    t = ctx.target
    dns, metrics = _dns(t), _metrics(t)

    def where() -> str:
        routing = dns.routing()
        return f"{_geography(t)} pool: " + (_weights_text(routing.weights) if routing.mode != "latency"
                                             else "latency records " + ", ".join(routing.latency))

    return bake_and_gate_loop(ctx, Bake(
        label=label, index=position.index, count=position.count,
        bake_seconds=float(t.env.timings.bake_seconds), settle_seconds=float(dns.record_ttl()),
        poll_seconds=float(t.env.timings.poll_interval_seconds), thresholds=thresholds_for(t),
        open_window=lambda: metrics.open_window(_window_plan(t, dns.routing())), revert=revert,
        rollback_command=f"migrate phase rollback shift-traffic --region {t.region}", describe=where,
        journal_extra=lambda: {"routing": dns.routing().to_json()}))


# --- steps --------------------------------------------------------------------------------------
def _gate_text(t: Target) -> str:
    g, held = t.spec.gates, thresholds_for(t)
    ceilings = ", ".join(f"{geo} {held.ceiling(geo):g} ms" for geo in g.p95_ms_max) + (
        f" (baseline + {g.baseline_slack_ms:g} ms where lower)" if held.baseline_p95_ms else "")
    return (f"gate: 5xx ≤ {g.error_rate_max:.2%} per serving region, p95 ≤ {ceilings}, {t.region} replication "
            f"lag ≤ {g.replication_lag_seconds_max:g} s, ≥ {g.min_samples} requests per geography, serving "
            f"regions reachable; fail → back to the last passed step at once; inconclusive → pause")


@dataclass(frozen=True)
class ShiftWeights:
    id: str = "shift-weights"
    title: str = "Step the weighted records along the schedule, bake and gate after each"

    def describe(self, target: Target) -> list[str]:
        t, source = target, target.spec.source_region
        lines = []
        geo = _geography(t)
        for p in _weighted_schedule(t):
            w, s = split(p)
            lines.append(f"{p:g} %: route53:ChangeResourceRecordSets UPSERT (one batch) in {geo}.api.game.example "
                         f"{t.region}-{geo}-weighted weight {w}, {source}-{geo}-weighted weight {s}; wait INSYNC; "
                         f"bake {t.env.timings.bake_seconds:g} s (the first TTL settles, the rest is measured)")
        lines.append(_gate_text(t))
        lines.append(f"only {geo} players move (their own pool); every geography is gated")
        return lines

    def describe_undo(self, target: Target) -> list[str]:
        geo = _geography(target)
        return [(f"UPSERT {target.region}-{geo}-weighted weight 0 and {target.spec.source_region}-{geo}-weighted "
                f"weight {SCALE} in one batch (players follow within the TTL)")]

    def apply(self, ctx: StepContext) -> dict:
        t = ctx.target
        dns, region, source = _dns(t), t.region, _source(t)
        routing = dns.routing()
        schedule = _weighted_schedule(t)
        if routing.mode == "latency" and region not in routing.latency:
            ctx.checkpoint()
            return {"skipped": f"latency routing already in place ({', '.join(routing.latency)}): weighted "
                               f"steps would reach no player; the shift is the gated latency step",
                    "weights": dict(routing.weights), "last_passed": 0, "schedule": schedule}
        last = float(ctx.saved.get("last_passed", 0))
        todo = [p for p in schedule if p > last]
        for index, p in enumerate(schedule):
            if p <= last:
                continue
            w, s = split(p)
            dns.set_weights({region: w, source: s})
            ctx.save(current_percent=p, weights={region: w, source: s})
            ctx.checkpoint()  # weights changed, not journaled as passed: a real crash point
            lw, ls = split(last)

            def revert(lw=lw, ls=ls, last=last) -> str:
                dns.set_weights({region: lw, source: ls})
                ctx.save(current_percent=last, weights={region: lw, source: ls})
                return f"weights back to {last:g} % ({region} {lw}, {source} {ls})"

            bake_and_gate(ctx, f"{p:g} %", _Position(index, len(schedule) + 1, f"{p:g} %"), revert)
            ctx.save(last_passed=p)
            last = p
        weights = dns.routing().weights
        return {"weights": dict(weights), "last_passed": last, "schedule": schedule,
                "stepped": [f"{p:g} %" for p in todo]}

    def verify(self, ctx: StepContext) -> None:
        t = ctx.target
        outputs = t.state.step(self.id).outputs
        if outputs.get("skipped"):
            return
        w, s = split(float(outputs.get("last_passed", 0)))
        weights = _dns(t).routing().weights
        want = {t.region: w, _source(t): s}
        if {r: weights.get(r) for r in want} != want:
            raise VerifyFailed(f"weights are {_weights_text(weights)}, expected {_weights_text(want)}")

    def undo(self, ctx: StepContext) -> None:
        t = ctx.target
        dns, region, source = _dns(t), t.region, _source(t)
        routing = dns.routing()
        if routing.mode == "latency":
            # Another shift's latency records route players; only make sure this region carries no weight.
            if routing.weights.get(region):
                dns.set_weights({region: 0})
            ctx.checkpoint()
            return
        weights = {**routing.weights, region: 0, source: SCALE}
        if region not in routing.weights:
            weights.pop(region)  # never had a record (stand-up rolled back): nothing to zero
        missing = [r for r in weights if r not in routing.weights]
        dns.use_weighted_routing(weights, api_endpoints(t, missing))
        ctx.checkpoint()  # traffic is back on the source, not journaled yet: a real crash point


@dataclass(frozen=True)
class LatencyRecords:
    id: str = "latency-records"
    title: str = "Swap to latency records with health checks for every active region (the 100 % step)"

    def describe(self, target: Target) -> list[str]:
        t = target
        geo = _geography(t)
        record = _per_env(t, "CNAME <region>.lb.game.example, TTL 5 s", "A ALIAS to the region's ALB")
        return [(f"route53:ChangeResourceRecordSets (one batch): DELETE every weighted record of {geo}.api.game.example, "
                f"UPSERT <region>-{geo}-latency ({record}, Region = the region, its health check) for "
                f"{t.spec.source_region}, every region already shifted and {t.region}; wait INSYNC"),
                f"{geo} players then go to their nearest healthy active region ({t.region}); other geographies "
                f"keep their own pools",
                f"bake {t.env.timings.bake_seconds:g} s; " + _gate_text(t)]

    def describe_undo(self, target: Target) -> list[str]:
        geo = _geography(target)
        return [(f"one batch: DELETE {geo}.api.game.example's latency records, UPSERT its weighted records as they "
                 f"were before the swap; DELETE {target.region}'s latency record from any other geography's pool")]

    def apply(self, ctx: StepContext) -> dict:
        t = ctx.target
        dns, region, source = _dns(t), t.region, _source(t)
        if "weights_before" not in ctx.saved:
            routing = dns.routing()
            # The endpoints too: putting the weighted records back must not need a region's API to be alive
            # (a dead region is exactly when they go back).
            runtime = t.providers.runtime
            known = {r: runtime.api_endpoint(r) for r in set(routing.weights) | {source, region}}
            ctx.save(weights_before=dict(routing.weights),
                     latency_before=[r for r in routing.latency if r != region],
                     shifted_before=sorted(_shifted_regions(t)),
                     endpoints_before={r: [e.host, e.port, e.url] for r, e in known.items() if e is not None})
        saved = ctx.saved
        active = sorted(set(saved.get("latency_before") or ()) | set(saved.get("shifted_before") or ())
                        | {source, region})
        dns.use_latency_routing(api_endpoints(t, active))
        ctx.checkpoint()  # latency records in, not journaled: a real crash point

        def revert() -> str:
            return self._restore(ctx)

        steps = len(_weighted_schedule(t)) + 1
        bake_and_gate(ctx, "100 % (latency records)", _Position(steps - 1, steps, "100 %"), revert)
        routing = dns.routing()
        return {"latency": list(routing.latency), "routing": routing.to_json(),
                "health_checks": dict(routing.health_checks)}

    def _restore(self, ctx: StepContext) -> str:
        """Routing as it was before the swap: this region's latency record out of every other geography's
        pool; in its own pool the weighted records back (or, when another region serving this geography
        still needs latency routing, only this region's latency record out). Idempotent."""
        t = ctx.target
        dns, region, source = _dns(t), t.region, _source(t)
        elsewhere = []
        for geo in t.spec.traffic_mix:
            if geo == _geography(t):
                continue
            pool = t.providers.dns.pool(geo)
            if region in pool.routing().latency:
                pool.remove_latency(region)
                elsewhere.append(geo)
        note = f"; {region} out of the {', '.join(elsewhere)} pool(s)" if elsewhere else ""
        return self._restore_own_pool(ctx) + note

    def _restore_own_pool(self, ctx: StepContext) -> str:
        t = ctx.target
        dns, region, source = _dns(t), t.region, _source(t)
        routing = dns.routing()
        if routing.mode != "latency":
            return f"weighted routing already in place ({_weights_text(routing.weights)})"
        others = set(routing.latency) - {region, source}
        if others:
            dns.remove_latency(region)
            return f"{region}'s latency record removed (latency routing stays for {', '.join(sorted(others | {source}))})"
        before = {r: int(w) for r, w in (ctx.saved.get("weights_before") or {}).items()}
        if source not in before or region not in before:
            before = {**before, source: SCALE, region: 0}  # nothing journaled: the safe split
        endpoints = {}
        runtime = t.providers.runtime
        journaled = ctx.saved.get("endpoints_before") or {}
        for r in list(before):
            endpoint = runtime.api_endpoint(r)
            if endpoint is None and r in journaled:
                host, port, url = journaled[r]
                endpoint = ApiEndpoint(r, host, int(port), url)
            if endpoint is None and r not in (source, region):
                before.pop(r)  # that region's API is gone and was never journaled: no record to bring back
            elif endpoint is not None:
                endpoints[r] = endpoint
        dns.use_weighted_routing(before, endpoints)
        return f"weighted records back ({_weights_text(before)}), latency records removed"

    def verify(self, ctx: StepContext) -> None:
        t = ctx.target
        routing = _dns(t).routing()
        missing = {_source(t), t.region} - set(routing.latency)
        if missing:
            raise VerifyFailed(f"no latency record for {', '.join(sorted(missing))}")
        unchecked = [r for r in routing.latency if not routing.health_checks.get(r)]
        if unchecked:
            raise VerifyFailed(f"latency records without a health check: {', '.join(unchecked)}")

    def undo(self, ctx: StepContext) -> None:
        self._restore(ctx)
        ctx.checkpoint()  # routing restored, not journaled yet: a real crash point


# --- checks -------------------------------------------------------------------------------------
def _bake_exceeds_ttl(t: Target) -> CheckResult:
    ttl, bake = _dns(t).record_ttl(), float(t.env.timings.bake_seconds)
    return CheckResult("bake-exceeds-ttl", bake > ttl,
                       f"bake {bake:g} s vs record TTL {ttl} s: players follow a change only after the TTL, so "
                       f"each gate measures the {max(0.0, bake - ttl):g} s after it",
                       f"raise bake_seconds of environment '{t.env.name}' above {ttl} s in migration.toml")


def _stood_up(t: Target) -> CheckResult:
    endpoint = t.providers.runtime.api_endpoint(t.region)
    routing = _dns(t).routing()
    has_record = t.region in routing.weights or t.region in routing.latency
    check = _dns(t).health_check_id(t.region)
    ok = endpoint is not None and has_record and check is not None
    return CheckResult("target-stood-up", ok,
                       f"{t.region}: API {'deployed' if endpoint else 'absent'}, "
                       f"{'record present' if has_record else 'no record'}, "
                       f"health check {check or 'absent'}",
                       f"run `migrate phase run stand-up-region --region {t.region}` first")


def _streaming(t: Target) -> CheckResult:
    lag = t.providers.global_database.replication_lag(t.region)
    return CheckResult("secondary-streaming", lag_within_budget(t, lag),
                       f"{t.region} secondary {lag.state}, lag {lag.lag_seconds} s",
                       f"run `migrate phase run attach-secondary --region {t.region}` first, or wait for it to catch up")


def _healthy_through_geography(t: Target) -> CheckResult:
    geo = _geography(t)
    h = t.providers.runtime.api_health(t.region, through_geography=geo)
    return CheckResult("api-healthy-through-geography", h.ok, f"{t.region} /health from {geo} players: {h.detail}",
                       "see the region's app log")


def _shadow_passed(t: Target) -> CheckResult:
    journal = getattr(t, "journal", None)  # the whole journal's fold, when the engine hands it to targets
    if journal is None:
        return CheckResult("shadow-traffic-passed", None,
                           "cannot read shadow-traffic's state: this target carries no journal",
                           "the engine must pass the journal state to targets (Target.journal)")
    status = journal.phase("shadow-traffic", t.region).status
    return CheckResult("shadow-traffic-passed", status == "succeeded", f"shadow-traffic {t.region}: {status}",
                       f"run `migrate phase run shadow-traffic --region {t.region}` until its gate passes")


def _error_budget(t: Target) -> CheckResult:
    source, limit = _source(t), t.spec.gates.error_rate_max
    recent = _metrics(t).recent_errors(source)
    if recent.requests is None:
        return CheckResult("error-budget", None, f"{source}'s request and error counts cannot be read",
                           "check the source region's metrics")
    if recent.requests == 0:
        return CheckResult("error-budget", True, f"{source}: no requests yet, nothing spent")
    rate = recent.errors / recent.requests
    return CheckResult("error-budget", rate <= limit,
                       f"{source}: {recent.errors} of {recent.requests} recent requests failed ({rate:.2%}, "
                       f"limit {limit:.2%})",
                       "the game is already failing: fix the source region before moving players")


def _routing_mode(t: Target) -> CheckResult:
    routing = _dns(t).routing()
    source = _source(t)
    if routing.mode == "latency":
        ours = t.state.step("latency-records").touched
        return CheckResult("routing", source in routing.latency or ours,
                           "latency routing in place (" + ", ".join(routing.latency) + ")"
                           + ("" if ours else ": the weighted steps are skipped, the shift is the gated latency step"),
                           "the source region has no latency record: restore its record first")
    return CheckResult("routing", source in routing.weights,
                       f"weighted routing: {_weights_text(routing.weights)}",
                       f"the source region {source} has no weighted record: `migrate lab up` (lab) or restore it")


def _latency_end_state(t: Target) -> CheckResult:
    routing = _dns(t).routing()
    want = {_source(t), t.region}
    ok = want <= set(routing.latency) and all(routing.health_checks.get(r) for r in routing.latency)
    return CheckResult("latency-routing", ok,
                       "latency records: " + (", ".join(f"{r} (health check {routing.health_checks.get(r) or 'none'})"
                                                        for r in routing.latency) or "none")
                       + (f"; weighted records left: {_weights_text(routing.weights)}" if routing.weights else ""),
                       "re-run the phase")


def _still_healthy(t: Target) -> CheckResult:
    check = _healthy_through_geography(t)
    return CheckResult("target-serving", check.ok, check.detail, check.remediation)


class ShiftTraffic:
    """shift-traffic: the geography's players move to the region in gated steps; latency routing at the end."""

    name = "shift-traffic"
    summary = "Step weighted Route 53 records along the schedule with bake and gate; end on latency records"
    built = True
    regional = True
    point_of_no_return = None
    runbook = "runbooks/shift-traffic.md"

    def preflight(self, target: Target) -> list[Check]:
        return [
            Check("bake-exceeds-ttl", "each bake outlasts the record TTL", "raise bake_seconds", _bake_exceeds_ttl),
            Check("geography-routing", "the API name routes the region's geography to its own pool",
                  "scope routing by geography", geography_routing),
            Check("target-stood-up", "the region's API, record and health check exist", "stand it up", _stood_up),
            Check("secondary-streaming", "the region's secondary streams within the lag budget", "attach it",
                  _streaming),
            Check("api-healthy-through-geography", "the API answers through the geography's players' link",
                  "see the app log", _healthy_through_geography),
            Check("shadow-traffic-passed", "the region's shadow-traffic phase succeeded (when built)",
                  "run shadow-traffic", _shadow_passed),
            Check("error-budget", "the source region is within its error budget now", "fix the source first",
                  _error_budget),
            Check("routing", "the source region holds a record the shift can move players from", "restore it",
                  _routing_mode),
        ]

    def steps(self, target: Target):
        return [ShiftWeights(), LatencyRecords()]

    def verify(self, target: Target) -> list[Check]:
        return [
            Check("latency-routing", "latency records with health checks for the source and the region",
                  "re-run", _latency_end_state),
            Check("target-serving", "the region answers its geography's players", "see the app log",
                  _still_healthy),
        ]

    def rollback_summary(self, target: Target) -> list[str]:
        return ["latency records out, the weighted records back as before the swap",
                f"weights back to the source region ({target.spec.source_region} {SCALE}, {target.region} 0)"]


PHASE: Phase = ShiftTraffic()
