"""Phase shadow-traffic: before a single player is moved to the new region, let it answer real
player reads in the dark and check that it answers what the source answers.

A sampled share of the region's geography's reads (keyed on player id, reads only) is mirrored by
the source region's app to the candidate region after each live answer has been sent, so players
never wait for the mirror. Each mirrored answer is compared three ways — the live answer, a second
answer from the source, the candidate's — so that what the source itself answers differently twice
(timestamps, orders, moving values) is cancelled; differences the data types allow (replica lag, the
peer leaderboard cache) are settled by staleness bounds and a recheck; the ignore rules of
migration.toml [shadow] cover differences by design. Where the mirror lives and why: app/shadow.py.

Steps: start-mirror (switch the source app's mirror on: the lab's watched file, or on AWS the SSM
parameter every source task polls, confirmed by the tasks' heartbeat in CloudWatch), observe (wait
until enough answers are compared, gate them: mismatch rate and candidate error rate under the
thresholds; no data is Inconclusive and pauses for a human; Fail stops with the report), report
(journal the per-endpoint report; on AWS the fleet's figures from CloudWatch). The mirror keeps
running after the phase, so shift-traffic starts from a region that is still being compared.
Rollback: stop mirroring.

The phase sees only its own journal state, so "the region was stood up and attached" is checked on
the world: the region's API answers through its players' link, its secondary streams within the lag
budget, and the source app can mirror."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.errors import ProviderError, VerifyFailed
from migrate.providers.shadow import (
    EndpointRule,
    IgnoreRules,
    MirrorReport,
    ShadowMirror,
)
from migrate.phasekit.checks import lag_within_budget
from migrate.phasekit.players_gate import WatchPlayers

GATE = "shadow-diff"


def _mirror(target: Target) -> ShadowMirror:
    mirror = target.providers.shadow
    if mirror is None:  # only providers built by hand (tests) lack one: both environments have an adapter
        raise ProviderError(f"the {target.env.kind} environment's providers have no shadow mirror",
                            hint="build them with migrate.providers.factory.build_providers")
    return mirror


def _geography(target: Target) -> str:
    return target.spec.regions[target.region].geography


def _per_env(target: Target, lab: str, aws: str) -> str:
    return aws if target.env.kind == "aws" else lab


def ignore_rules(target: Target) -> IgnoreRules:
    """migration.toml [shadow] ignore_fields and endpoints, as the provider takes them."""
    s = target.spec.shadow_in(target.env)
    return IgnoreRules(tuple(s.ignore_fields), tuple(
        EndpointRule(route, e.diff, tuple(e.ignore_fields), e.staleness_seconds,
                     tuple((name, rule.model_dump()) for name, rule in e.keyed_lists.items()))
        for route, e in s.endpoints.items()))


def _start(target: Target, mirror_id: str) -> dict:
    s = target.spec.shadow_in(target.env)
    return _mirror(target).start_mirror(target.spec.source_region, target.region, _geography(target),
                                        s.sample_rate, s.reads_only, ignore_rules(target),
                                        mirror_id=mirror_id, recheck_seconds=s.recheck_seconds)


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


# --- the gate -----------------------------------------------------------------------------------
def evaluate(target: Target, report: MirrorReport, window_done: bool = True) -> dict[str, Any]:
    """The shadow gate over a report: verdict pass / fail / inconclusive (or "pending" while the
    observation window is still open and nothing has failed), with the values and the reason.

    Fail as soon as the mismatches (or candidate errors) exceed what the threshold allows even at
    min_samples: more data cannot bring the rate back under it. Pass needs min_samples compared
    answers. Too few is inconclusive, never a pass."""
    s = target.spec.shadow_in(target.env)
    values = report.totals()
    thresholds = {"max_diff_rate": s.max_diff_rate, "error_rate_max": s.error_rate_max,
                  "min_samples": s.min_samples}
    gate = {"gate": GATE, "values": values, "thresholds": thresholds, "mirror_id": report.mirror_id}
    if report.mismatched > s.max_diff_rate * max(report.compared, s.min_samples):
        worst = max(report.endpoints, key=lambda e: e.mismatched)
        fields = ", ".join(list(worst.mismatched_fields)[:4])
        return {**gate, "verdict": "fail", "sample_diffs": list(worst.sample_diffs[:2]),
                "reason": f"{report.mismatched} of {report.compared} compared answers differ "
                          f"({_pct(report.mismatch_rate)} > {_pct(s.max_diff_rate)}); most on {worst.route}"
                          + (f" (fields {fields})" if fields else "")}
    if report.candidate_errors > s.error_rate_max * max(report.mirrored, s.min_samples):
        kinds: dict[str, int] = {}
        for e in report.endpoints:
            for kind, n in e.candidate_errors_by_kind.items():
                kinds[kind] = kinds.get(kind, 0) + n
        return {**gate, "verdict": "fail",
                "reason": f"the candidate failed {report.candidate_errors} of {report.mirrored} mirrored "
                          f"requests ({_pct(report.candidate_error_rate)} > {_pct(s.error_rate_max)}"
                          # AWS has no kinds (not a CloudWatch metric): no empty list then
                          + "".join(f", {k} {n}" for k, n in sorted(kinds.items())) + ")"}
    if report.compared >= s.min_samples:
        if not window_done:
            return {**gate, "verdict": "pending", "reason": "enough answers; the observation window is still open"}
        return {**gate, "verdict": "pass",
                "reason": f"{report.compared} answers compared: {report.mismatched} differ "
                          f"({_pct(report.mismatch_rate)} ≤ {_pct(s.max_diff_rate)}), candidate errors "
                          f"{_pct(report.candidate_error_rate)} ≤ {_pct(s.error_rate_max)}"}
    if not window_done:
        return {**gate, "verdict": "pending", "reason": f"{report.compared} of {s.min_samples} answers compared"}
    if report.compared == 0:
        why = ("nothing was mirrored: no sampled read of this geography reached the source"
               if report.sampled == 0 else
               f"{report.sampled} reads sampled but none compared ({report.lost} lost, "
               f"{report.candidate_errors} candidate errors)")
        return {**gate, "verdict": "inconclusive", "reason": f"no data: {why}"}
    return {**gate, "verdict": "inconclusive",
            "reason": f"only {report.compared} of the {s.min_samples} answers needed were compared"}


def _note(report: MirrorReport) -> str:
    return (f"{report.compared} compared, {report.mismatched} differ, {report.candidate_errors} candidate "
            f"errors, {report.lost} lost, {report.sampled} sampled of {report.eligible} reads")


def endpoint_lines(report: MirrorReport) -> list[str]:
    """One line per route template, for operators."""
    def lat(e, side: str) -> str:
        v = e.latency.get(side) or {}
        return f"{v.get('p50_ms')}/{v.get('p95_ms')}" if v.get("count") else "-"

    return [f"{e.route}: {e.compared} compared, {e.mismatched} differ ({_pct(e.mismatch_rate)}), "
            f"{e.converged} converged on recheck, {e.within_staleness} within staleness, "
            f"{e.candidate_errors} candidate errors, {e.lost} lost; p50/p95 ms primary {lat(e, 'primary')}, "
            f"candidate {lat(e, 'candidate')}, candidate round trip {lat(e, 'candidate_round_trip')}"
            for e in report.endpoints]


# --- steps --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartMirror:
    id: str = "start-mirror"
    title: str = "Mirror a sample of the geography's reads to the region"

    def describe(self, target: Target) -> list[str]:
        s, src = target.spec.shadow_in(target.env), target.spec.source_region
        return [_per_env(target, f"write the lab's shadow.json: {src}'s app mirrors",
                         f"ssm:PutParameter {src}'s shadow switch (the SSM parameter its ECS tasks poll, "
                         "SHADOW_PARAMETER): its tasks mirror")
                + f" {s.sample_rate:.0%} of {_geography(target)} players (by player id), "
                f"{'reads only (GET/HEAD)' if s.reads_only else 'every method'}, to {target.region} "
                + _per_env(target, f"through the {src}→{target.region} link", f"through {target.region}'s ALB")
                + ", after each live answer is sent",
                f"three-way diff (live answer, second {src} answer, {target.region}); ignored fields "
                f"{', '.join(s.ignore_fields) or 'none'}; {len(s.endpoints)} per-endpoint rule(s)",
                _per_env(target, f"wait until {src}'s app reports the mirror on",
                         f"wait for the tasks' Game/Shadow Heartbeat in CloudWatch ({src}) for this mirror")]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"switch {target.spec.source_region}'s mirror off (its last report stays readable)"]

    def apply(self, ctx: StepContext) -> dict:
        mirror_id = ctx.saved.get("mirror_id")
        if mirror_id is None:  # chosen once: a repeat after a crash keeps the mirror and its report
            mirror_id = f"{ctx.target.region}-{uuid.uuid4().hex[:8]}"
            ctx.save(mirror_id=mirror_id)
        out = _start(ctx.target, mirror_id)
        ctx.checkpoint()  # mirroring, not journaled yet
        return out

    def verify(self, ctx: StepContext) -> None:
        report = _mirror(ctx.target).mirror_report(ctx.target.spec.source_region)
        want = ctx.target.state.step(self.id).outputs.get("mirror_id")
        if not report.enabled or report.mirror_id != want:
            raise VerifyFailed(f"{ctx.target.spec.source_region} is not mirroring (mirror {report.mirror_id}, "
                               f"enabled {report.enabled}; expected {want})")

    def undo(self, ctx: StepContext) -> None:
        _mirror(ctx.target).stop_mirror(ctx.target.spec.source_region)


@dataclass(frozen=True)
class Observe:
    id: str = "observe"
    title: str = "Compare mirrored answers until the shadow gate decides"

    def describe(self, target: Target) -> list[str]:
        s, bake = target.spec.shadow_in(target.env), target.env.timings.bake_seconds
        return [f"watch the mirror's report for at least {bake:g}s and until {s.min_samples} answers are "
                f"compared (give up after {bake * s.max_observe_bakes:g}s: Inconclusive, pause for a human)",
                f"gate: real mismatches ≤ {_pct(s.max_diff_rate)} of compared answers and candidate "
                f"errors ≤ {_pct(s.error_rate_max)} of mirrored requests; Fail stops the phase with the report"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing (read-only)"]

    def apply(self, ctx: StepContext) -> dict:
        t = ctx.target
        s, timings, source = t.spec.shadow_in(t.env), t.env.timings, t.spec.source_region
        saved = ctx.saved
        mirror_id = saved.get("mirror_id") or ctx.outputs_of("start-mirror").get("mirror_id")
        if saved.get("failed") or mirror_id is None:
            # A re-run after a failed gate judges fresh answers: a new mirror id resets the report.
            mirror_id = f"{t.region}-{uuid.uuid4().hex[:8]}"
            ctx.save(mirror_id=mirror_id, failed=False, window_started=None)
        _start(t, mirror_id)  # idempotent: re-asserts the switch, keeps the report of this mirror id
        started = ctx.saved.get("window_started")
        if started is None:
            started = time.time()
            ctx.save(window_started=started)
        while True:
            min_until = started + timings.bake_seconds
            give_up = started + timings.bake_seconds * s.max_observe_bakes
            ctx.checkpoint()
            report = _mirror(t).mirror_report(source)
            if not report.enabled or report.mirror_id != mirror_id:
                raise ProviderError(f"{source} stopped mirroring while observing (mirror {report.mirror_id}, "
                                    f"enabled {report.enabled})", hint="re-run to switch it on again and resume")
            now = time.time()
            gate = evaluate(t, report, window_done=now >= min_until)
            ctx.progress(report.compared, s.min_samples, _note(report))
            if gate["verdict"] == "fail":
                ctx.record_gate(gate)
                ctx.save(failed=True)
                raise VerifyFailed(f"shadow gate failed: {gate['reason']}",
                                   hint="read the sample diffs ("
                                        + _per_env(t, "the gate event in `migrate --output json history`, or "
                                                      "the source app's /internal/shadow/report",
                                                   "the source tasks' shadow_sample_diff log lines: see the "
                                                   "report's note")
                                        + "), fix the region or add an ignore rule for a difference by design, "
                                        f"then re-run (fresh answers are judged) or roll back shadow-traffic for "
                                        f"{t.region}",
                                   details={"gate": gate, "report": report.summary()})
            if gate["verdict"] == "pass":
                ctx.record_gate(gate)
                return {"verdict": "pass", "mirror_id": mirror_id, "reason": gate["reason"], **report.totals()}
            if gate["verdict"] == "inconclusive" and now >= give_up:
                ctx.record_gate(gate)
                ctx.hold_for_human(f"shadow gate inconclusive: {gate['reason']}")
                started = time.time()  # resumed: observe a fresh window
                ctx.save(window_started=started)
                continue
            time.sleep(min(timings.poll_interval_seconds, 1.0))

    def verify(self, ctx: StepContext) -> None:
        pass  # apply returns only on a passed gate

    def undo(self, ctx: StepContext) -> None:
        pass


@dataclass(frozen=True)
class Report:
    id: str = "report"
    title: str = "Journal the per-endpoint shadow report"

    def describe(self, target: Target) -> list[str]:
        return ["journal per endpoint: answers compared, mismatch rate, p50/p95 of the live and the candidate "
                "answers, candidate errors, the mirror's own loss"
                + _per_env(target, ", sample diffs",
                           " (the fleet's, from CloudWatch Game/Shadow; sample diffs stay in the tasks' logs)")]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing (read-only)"]

    def apply(self, ctx: StepContext) -> dict:
        t = ctx.target
        report = _mirror(t).mirror_report(t.spec.source_region)
        gate = evaluate(t, report)
        ctx.checkpoint()
        return {"verdict": gate["verdict"], "reason": gate["reason"], "endpoints": endpoint_lines(report),
                "report": report.summary()}

    def verify(self, ctx: StepContext) -> None:
        pass

    def undo(self, ctx: StepContext) -> None:
        pass


# --- checks -------------------------------------------------------------------------------------
def _adapter(t: Target) -> CheckResult:
    ok = t.providers.shadow is not None
    return CheckResult("shadow-adapter", ok, f"{t.env.kind}: " + ("mirror adapter present" if ok else "no adapter"),
                       "build the providers with migrate.providers.factory.build_providers")


def _source_healthy(t: Target) -> CheckResult:
    h = t.providers.runtime.api_health(t.spec.source_region)
    return CheckResult("source-healthy", h.ok, f"{t.spec.source_region} API: {h.detail}",
                       "fix the source region first: never mirror from an unhealthy game")


def _target_healthy(t: Target) -> CheckResult:
    geo = _geography(t)
    h = t.providers.runtime.api_health(t.region, through_geography=geo)
    return CheckResult("region-api-healthy", h.ok, f"{t.region} /health from {geo} players: {h.detail}",
                       f"run stand-up-region for {t.region} (or see its app log)")


def _secondary_streaming(t: Target) -> CheckResult:
    lag = t.providers.global_database.replication_lag(t.region)
    return CheckResult("region-secondary-streaming", lag_within_budget(t, lag),
                       f"{t.region} secondary {lag.state}, lag {lag.lag_seconds}s",
                       f"run attach-secondary for {t.region}: a region reading through the WAN from the "
                       "writer would match trivially")


def _can_mirror(t: Target) -> CheckResult:
    report = _mirror(t).mirror_report(t.spec.source_region)
    if not report.available:
        return CheckResult("source-can-mirror", False, f"{t.spec.source_region}'s app watches no shadow switch",
                           _per_env(t, "restart the source app with SHADOW_FILE (or READERS_FILE) set",
                                    "deploy the source's tasks with SHADOW_PARAMETER and SHADOW_METRICS=emf"))
    busy = report.enabled and report.target not in (None, t.region)
    detail = (f"{t.spec.source_region} mirrors to {report.target} (mirror {report.mirror_id})" if busy else
              f"{t.spec.source_region} mirrors to {t.region} already (this phase)" if report.enabled else
              f"{t.spec.source_region}'s mirror is free")
    return CheckResult("source-can-mirror", not busy, detail,
                       f"roll back shadow-traffic for {report.target} first: one mirror per source at a time")


def _mirror_running(t: Target) -> CheckResult:
    report = _mirror(t).mirror_report(t.spec.source_region)
    ok = report.enabled and report.target == t.region
    return CheckResult("mirror-running", ok,
                       f"{t.spec.source_region} mirrors {report.geography} reads to {report.target} "
                       f"(mirror {report.mirror_id})" if report.enabled else "not mirroring",
                       "re-run the phase")


def _within_thresholds(t: Target) -> CheckResult:
    report = _mirror(t).mirror_report(t.spec.source_region)
    gate = evaluate(t, report)
    ok = {"pass": True, "fail": False}.get(gate["verdict"])
    return CheckResult("shadow-within-thresholds", ok, f"{gate['verdict']}: {gate['reason']}",
                       "read the report (`migrate history`), fix or roll back")


class ShadowTraffic:
    """shadow-traffic: the region answers mirrored real reads in the dark, diffed against the source."""

    name = "shadow-traffic"
    summary = "Mirror a sample of the geography's reads to the region; three-way diff; gate on mismatches and errors"
    built = True
    regional = True
    point_of_no_return = None
    runbook = "runbooks/shadow-traffic.md"

    def preflight(self, target: Target) -> list[Check]:
        return [
            Check("shadow-adapter", "a mirror adapter exists for this environment", "build the providers", _adapter),
            Check("source-healthy", "the source region's API is healthy", "fix the source first", _source_healthy),
            Check("region-api-healthy", "the region's API answers through its players' link",
                  "run stand-up-region", _target_healthy),
            Check("region-secondary-streaming", "the region's secondary streams within the lag budget",
                  "run attach-secondary", _secondary_streaming),
            Check("source-can-mirror", "the source app can mirror and no other region is being mirrored",
                  "roll back the other shadow", _can_mirror),
        ]

    def steps(self, target: Target):
        return [StartMirror(), Observe(), Report(), WatchPlayers()]

    def verify(self, target: Target) -> list[Check]:
        return [
            Check("mirror-running", "the source mirrors the geography's reads to the region", "re-run",
                  _mirror_running),
            Check("shadow-within-thresholds", "the report is within max_diff_rate and error_rate_max",
                  "fix or roll back", _within_thresholds),
        ]

    def rollback_summary(self, target: Target) -> list[str]:
        return [f"switch {target.spec.source_region}'s mirror off"]


PHASE: Phase = ShadowTraffic()
