"""Phase evacuate-region (an incident phase, DESIGN §6b; `migrate region evacuate REGION`): a lost
region's players are served elsewhere and, when its home writer is gone, its home is taken over.

Steps, each journaled and resumable:
1. route-away: every geography's pool that sends players to the region sends them to the nearest
   healthy region instead (names.FALLBACK_REGIONS): its latency record out (the others stay), or its
   weight moved. Route 53's health checks may have done this already for the players; this makes it
   the operator's decision, so the region does not get players back when it flaps.
2. take-home: only when the region writes its home (a cutover) and its writer does not answer where
   the other regions reach it. The origin keeps the home's rows through the reverse stream; its side
   of the stream is dropped (a writer that comes back must never replay what it took after the loss
   over what the origin takes now), recording how far it had come; the writes the origin holds of the
   last seconds are noted (the way back compares the lost writer's with them); the home's epoch goes
   up by one and the fallback serves it (sessions carry on after a refresh; a write under the old epoch
   is refused in every region, the lost one included when it comes back); every region sends the
   home's writes to the origin; the origin's fence comes off. Writes the lost writer acknowledged after
   the recorded point are not on the origin: the way back lists them, row by row.
3. players-served: each moved geography's destination answers /health through that geography's link,
   and a record TTL has passed (players' resolvers have the new answer).

The way back (`migrate region return REGION`, which is this phase's rollback then, if the home was
taken, the region's cutover rolled back and run again): the returned writer is fenced for its own home
first (it can never take a write again), its writes the origin lacks are listed, then it is removed;
the routing comes back only when the region answers its health check through each geography's link.

Losing the origin's region (us-east-1: every home's rows, NA's writer): on AWS, take-home makes the
origin's secondary in the nearest region that has one the writer (Aurora failover_global_cluster,
AllowDataLoss; the apps follow the global writer endpoint), and the way back is a switchover (no data
loss) once the region is back. The lab does not emulate that (it says so and skips)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from migrate.errors import ProviderError, VerifyFailed
from migrate.names import FALLBACK_REGIONS, SOURCE_REGION
from migrate.phasekit.checks import api_endpoints
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.providers.protocols import HomeServing, HomeWriters, OriginFailover
from migrate.providers.traffic import TrafficDns

ORIGIN = "origin"
# The origin's copy of a home is checked against the returned writer from this long before the point the
# reverse stream had confirmed: a transaction stamps updated_at when it starts, and commits later.
OVERLAP_S = 10.0
RETURN_PATIENCE_POLLS = 120  # lab: 60 s at 0.5 s; AWS: 30 min at 15 s
MAX_LISTED = 1000  # unreplicated rows journaled by id (the count is always exact)


def _dns(t: Target, geography: str) -> TrafficDns:
    if t.providers.dns is None:
        raise ProviderError(f"the {t.env.kind} environment has no DNS adapter")
    return t.providers.dns.pool(geography)


def _hw(t: Target) -> HomeWriters | None:
    return t.providers.home_writers


def _hs(t: Target) -> HomeServing | None:
    return t.providers.home_serving


def _sends_players(routing_json: dict[str, Any], region: str) -> bool:
    return region in routing_json["latency"] or routing_json["weights"].get(region, 0) > 0


def _healthy(t: Target, region: str, geography: str) -> tuple[bool, str]:
    runtime = t.providers.runtime
    if runtime is None or runtime.api_endpoint(region) is None:
        return False, f"{region} has no API"
    health = runtime.api_health(region, through_geography=geography)
    return health.ok, health.detail


def _wait_healthy(ctx: StepContext, region: str, geography: str) -> None:
    """Return once `region` answers /health through `geography`'s link; a region just reconnected gets a
    few of the environment's polls to find its connections again, then the way back stops, explained."""
    t = ctx.target
    deadline = time.monotonic() + RETURN_PATIENCE_POLLS * float(t.env.timings.poll_interval_seconds)
    while True:
        ok, detail = _healthy(t, region, geography)
        if ok:
            return
        if time.monotonic() > deadline:
            raise ProviderError(f"{region} does not answer {geography}'s players ({detail}): routing stays away",
                                hint=f"bring {region} back (its app, cache and links), then run the return again")
        ctx.progress(0, None, f"waiting for {region} to answer {geography}'s players: {detail}")
        ctx.checkpoint()
        time.sleep(float(t.env.timings.poll_interval_seconds))


def fallback(t: Target, geography: str) -> str:
    """The nearest region to take the lost region's `geography` players that answers through their link."""
    tried = []
    for region in FALLBACK_REGIONS[t.region]:
        if region not in t.spec.regions:
            continue
        ok, detail = _healthy(t, region, geography)
        if ok:
            return region
        tried.append(f"{region}: {detail}")
    raise ProviderError(f"no healthy region can take {t.region}'s {geography} players ({'; '.join(tried)})",
                        hint="bring one of them back first; runbooks/evacuate-region.md")


# --- steps --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteAway:
    id: str = "route-away"
    title: str = "Send the region's players to the nearest healthy region (every geography's pool)"

    def describe(self, target: Target) -> list[str]:
        order = " then ".join(FALLBACK_REGIONS[target.region])
        return [f"every geography's pool that sends players to {target.region}: its latency record out (the others "
                f"stay) or its weight moved to the nearest healthy region ({order}); the pools as they were journaled"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"once {target.region} answers /health through each geography's link: each pool as it was before"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        t, region = ctx.target, ctx.target.region
        if "before" not in ctx.saved:  # the routing before the first attempt: what the way back restores
            ctx.save(before={geo: _dns(t, geo).routing().to_json() for geo in t.spec.traffic_mix})
        before: dict[str, dict[str, Any]] = ctx.saved["before"]
        moved = {}
        for geo, was in before.items():
            if not _sends_players(was, region):
                continue
            pool, dest = _dns(t, geo), fallback(t, geo)
            now = pool.routing()
            if now.mode == "latency":
                # the other latency records stay when one of them answers: players keep their nearest
                staying = [r for r in FALLBACK_REGIONS[region] if r in now.latency and _healthy(t, r, geo)[0]]
                if region in now.latency and staying:
                    pool.remove_latency(region)
                    dest = staying[0]
                elif region in now.latency:
                    pool.use_weighted_routing({dest: 100}, api_endpoints(t, [dest]))
                elif region not in now.latency and now.latency:
                    dest = next((r for r in FALLBACK_REGIONS[region] if r in now.latency), dest)
            elif now.weights.get(region, 0) > 0:
                weights = dict(now.weights)
                weights[dest] = min(255, weights.get(dest, 0) + weights[region])
                weights[region] = 0
                pool.use_weighted_routing(weights, api_endpoints(t, weights))
            moved[geo] = dest
            ctx.checkpoint()
        return {"moved": moved, "before": before}

    def verify(self, ctx: StepContext) -> None:
        t = ctx.target
        still = [geo for geo in t.spec.traffic_mix if _sends_players(_dns(t, geo).routing().to_json(), t.region)]
        if still:
            raise VerifyFailed(f"{', '.join(still)} still sent to {t.region}")

    def undo(self, ctx: StepContext) -> None:
        t, region = ctx.target, ctx.target.region
        before: dict[str, dict[str, Any]] = ctx.saved.get("before") or {}
        for geo, was in before.items():
            if not _sends_players(was, region):
                continue
            _wait_healthy(ctx, region, geo)
            pool = _dns(t, geo)
            if was["mode"] == "latency":
                pool.use_latency_routing(api_endpoints(t, was["latency"]))
            else:
                pool.use_weighted_routing(was["weights"], api_endpoints(t, was["weights"]))
            ctx.checkpoint()


@dataclass(frozen=True)
class TakeHome:
    id: str = "take-home"
    title: str = "If the region's home writer is lost: the origin takes its home (epoch + 1), the stream's end recorded"

    def describe(self, target: Target) -> list[str]:
        r = target.region
        return [f"only if {r} writes its home and its writer does not answer through {SOURCE_REGION}'s link:",
                f"record how far the reverse stream brought {r}'s rows to the origin, then drop the origin's side of it",
                f"note the origin's rows of home {r} written in the last {OVERLAP_S:g} s before that point",
                f"home {r}'s epoch + 1, served by {FALLBACK_REGIONS[r][0]} (older sessions refresh; older-epoch writes "
                f"refused everywhere)",
                f"every region sends home {r}'s writes to the origin; the origin's fence for {r} comes off"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"fence {target.region}'s returned writer for its own home; list its rows the origin lacks "
                f"(journaled); remove it (the region's cutover runs again to give it a fresh one)"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        t, region = ctx.target, ctx.target.region
        hw, hs = _hw(t), _hs(t)
        failover = t.providers.origin_failover
        origin = ctx.saved.get("origin_region") or (failover.origin_region() if failover else SOURCE_REGION)
        if region == origin:
            return _take_origin(ctx, failover)
        if hw is None or hs is None:
            return {"skipped": f"the {t.env.kind} environment has no home-writer or home-serving adapter: "
                               f"nothing of {region}'s home to take"}
        if not ctx.saved.get("taken") and not any(hw.writes_routed(region).values()):
            return {"skipped": f"{region} does not write its home (no cutover): the origin writes it already"}
        if not ctx.saved.get("taken"):
            reachable, why = hw.writer_reachable(region)
            if reachable:
                return {"skipped": f"{why}: its writes keep going to it through the other regions' links"}
            ctx.save(taken=True, lost_because=why, epoch_before=hs.home_epoch(region))
        saved = ctx.saved
        if "stream" not in saved:
            ctx.save(stream=hw.abandon_reverse_stream(region))
            ctx.checkpoint()
        stream = ctx.saved["stream"]
        since = (stream.get("confirmed_at") or time.time()) - OVERLAP_S
        if "origin_rows" not in ctx.saved:
            ctx.save(origin_rows={str(k): v for k, v in hw.recent_writes(ORIGIN, region, since).items()}, since=since)
        serving = FALLBACK_REGIONS[region][0]
        epoch = hs.take_over(region, serving, ctx.saved["epoch_before"])
        ctx.checkpoint()
        hw.route_writes(region, False)
        hw.warm_writes(region, False)
        ctx.checkpoint()
        if "origin_writable_from" not in ctx.saved:  # when the origin took the home back (the writers' history)
            ctx.save(origin_writable_from=time.time())
        hw.set_fence(ORIGIN, region, False)
        return {"taken": True, "lost_because": ctx.saved["lost_because"], "epoch": epoch, "served_by": serving,
                "origin_current_to": {"lsn": stream.get("confirmed_lsn"), "at": stream.get("confirmed_at")},
                "unreplicated": f"listed on the way back (`migrate region return {region}`): the lost writer's rows "
                                f"written after the origin's point"}

    def verify(self, ctx: StepContext) -> None:
        t = ctx.target
        if not ctx.saved.get("taken"):
            return
        if ctx.saved.get("origin_region"):
            now = t.providers.origin_failover.origin_region()
            if now == t.region:
                raise VerifyFailed(f"{t.region} still writes the global database")
            return
        hw = _hw(t)
        if t.region in hw.fenced(ORIGIN):
            raise VerifyFailed(f"the origin is still fenced for {t.region}")
        if any(hw.writes_routed(t.region).values()):
            raise VerifyFailed(f"a region still sends {t.region}'s writes to its lost writer")

    def undo(self, ctx: StepContext) -> None:
        t, region, saved = ctx.target, ctx.target.region, ctx.saved
        if not saved.get("taken"):
            return
        if saved.get("origin_region"):  # the origin was taken: the writer goes back with no data loss
            failover = t.providers.origin_failover
            failover.switch_over_origin(saved["origin_region"], ctx.progress, ctx.checkpoint)
            ctx.checkpoint()
            return
        hw = _hw(t)
        if hw.staged(region):
            if not hw.is_writer(region):
                raise ProviderError(f"{region}'s returned writer does not run: the rows it took that never reached "
                                    f"the origin cannot be listed", hint="start it (lab: its PostgreSQL in the lab "
                                    "folder, home-<region>), then run the return again; runbooks/evacuate-region.md")
            reachable, why = hw.writer_reachable(region)
            if not reachable:
                raise ProviderError(f"{region}'s returned writer: {why}",
                                    hint="restore the region's links, then run the return again")
            hw.set_fence(region, region, True)  # first: it never takes another write
            ctx.checkpoint()
            if "unreplicated" not in saved:
                theirs = hw.recent_writes(region, region, float(saved["since"]))
                ours = {int(k): v for k, v in saved.get("origin_rows", {}).items()}
                lost = sorted(pid for pid, at in theirs.items() if at > ours.get(pid, float("-inf")))
                ctx.save(unreplicated={"count": len(lost), "players": lost[:MAX_LISTED],
                                       "written_at": {str(p): theirs[p] for p in lost[:MAX_LISTED]}})
            hw.discard(region)
        ctx.checkpoint()


def _take_origin(ctx: StepContext, failover: OriginFailover | None) -> dict[str, Any]:
    """The lost region holds the origin (every home's rows, its own home's writer): its secondary in the
    nearest region that has one becomes the writer, losing what the lost writer had not replicated."""
    t, region = ctx.target, ctx.target.region
    if failover is None:
        return {"skipped": f"{region} holds the origin: the {t.env.kind} environment cannot move it (the lab does not "
                           f"emulate Aurora's failover); runbooks/evacuate-region.md, \"Losing us-east-1\""}
    if not ctx.saved.get("taken"):
        facts = t.providers.global_database.primary_facts()
        if facts.reachable:
            return {"skipped": f"the origin answers ({facts.detail}): its writes keep going to it"}
        candidates = [r for r in FALLBACK_REGIONS[region] if r in t.spec.regions
                      and t.providers.global_database.secondary_facts(r).exists]
        if not candidates:
            raise ProviderError(f"the origin in {region} is lost and no other region holds a secondary of it",
                                hint="runbooks/evacuate-region.md: restore from the latest snapshot")
        ctx.save(taken=True, origin_region=region, lost_because=facts.detail, new_origin=candidates[0])
    moved = failover.fail_over_origin(ctx.saved["new_origin"], ctx.progress, ctx.checkpoint)
    return {"taken": True, "origin": moved, "lost_because": ctx.saved["lost_because"],
            "unreplicated": "Aurora does not list what the lost writer had not replicated: the players' ledger does "
                            "(the lab), the support queue does (production)"}


@dataclass(frozen=True)
class PlayersServed:
    id: str = "players-served"
    title: str = "Each moved geography's new region answers through its link; a record TTL passed"

    def describe(self, target: Target) -> list[str]:
        return ["probe /health of each moved geography's new region through that geography's link, until it answers",
                "wait one record TTL from the routing change (resolvers re-read it)"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        t = ctx.target
        moved: dict[str, str] = ctx.outputs_of("route-away").get("moved", {})
        deadline = time.monotonic() + float(t.env.timings.catch_up_timeout_seconds)
        answered = {}
        for geo, dest in moved.items():
            while True:
                ok, detail = _healthy(t, dest, geo)
                if ok:
                    answered[geo] = dest
                    break
                if time.monotonic() > deadline:
                    raise VerifyFailed(f"{dest} does not answer {geo}'s players: {detail}")
                ctx.checkpoint()
                time.sleep(float(t.env.timings.poll_interval_seconds))
        ttl = max((_dns(t, geo).record_ttl() for geo in moved), default=0)
        until = time.monotonic() + ttl
        while time.monotonic() < until:
            ctx.progress(0, None, f"resolvers re-reading the records ({until - time.monotonic():.0f} s)")
            ctx.checkpoint()
            time.sleep(min(0.5, max(0.0, until - time.monotonic())))
        return {"served": answered, "ttl_waited_s": ttl}

    def verify(self, ctx: StepContext) -> None:
        pass  # apply returns only once every moved geography is answered

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()


# --- checks -------------------------------------------------------------------------------------
def _some_fallback(t: Target) -> CheckResult:
    answers = {}
    for geo in t.spec.traffic_mix:
        try:
            answers[geo] = fallback(t, geo)
        except ProviderError as exc:
            return CheckResult("fallback-healthy", False, exc.message, exc.hint or "")
    return CheckResult("fallback-healthy", True, "; ".join(f"{g} → {r}" for g, r in answers.items()),
                       "bring a fallback region back")


class EvacuateRegion:
    """evacuate-region: a lost region's players served elsewhere; its home taken over if its writer is gone."""

    name = "evacuate-region"
    summary = "Incident: serve a lost region's players from the nearest healthy region; take its home if its writer is gone"
    built = True
    regional = True
    point_of_no_return = None
    runbook = "runbooks/evacuate-region.md"

    def preflight(self, target: Target) -> list[Check]:
        return [Check("fallback-healthy", "a region to take each geography's players answers through its link",
                      "bring one back", _some_fallback)]

    def steps(self, target: Target) -> list:
        return [RouteAway(), TakeHome(), PlayersServed()]

    def verify(self, target: Target) -> list[Check]:
        def away(t: Target) -> CheckResult:
            still = [g for g in t.spec.traffic_mix if _sends_players(_dns(t, g).routing().to_json(), t.region)]
            return CheckResult("no-players-sent", not still,
                               f"no pool sends players to {t.region}" if not still else
                               f"{', '.join(still)} still sent to {t.region}", "resume the evacuation")
        return [Check("no-players-sent", "no geography's pool sends players to the region", "resume", away)]

    def rollback_summary(self, target: Target) -> list[str]:
        return [f"the way back (`migrate region return {target.region}`): fence, list and remove a returned lost "
                f"writer; routing back once {target.region} answers; then its cutover rolled back and run again"]


PHASE: Phase = EvacuateRegion()
