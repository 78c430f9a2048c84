"""Phase cutover (per target region): the region becomes the writer of the players it homes (DESIGN §5, §9).

Steps, each journaled and resumable:
1. stage-writer: the region's future writer, a standby of the origin streamed through the region's link,
   logical decoding on (it will publish the reverse stream) and fenced for every home but its own.
2. fence-origin: the origin refuses writes to the home's rows (the expand schema's trigger, SQLSTATE
   25006: every region's app holds those writes instead of failing them), then the barrier waits out
   every transaction that wrote before the fence. Other homes write on.
3. catch-up: the marker LSN, read on the origin after the barrier (reading it before lost writes in
   Vitess #16563), and the staged writer replays up to it: it now holds every write of the home.
4. promote: the staged writer leaves recovery (confirmed, not assumed) fenced for every home (its own by
   the origin's fence sequence, replayed; the others by the setting it was staged with); it is then
   handed its home: the others' sequences set, its own cleared. The origin's slot for it goes.
5. reverse-slot: on the new writer, the publication of the home's rows (a row filter on home_region)
   and a logical slot: from here on every change the new writer takes is kept for the origin — the
   way back — before routing flips. Local, so it costs the players' stall almost nothing.
6. route-writes: every region's apps send the home's writes to the new writer; the writes they held
   land there on their next retry.
7. reverse-stream: the origin subscribes, reading from the slot (no initial copy): it keeps a current
   copy of the home. After routing on purpose: creating it crosses the WAN (≈ 1 s in the lab), which
   players held by the fence would otherwise wait for.
8. rehome: the region serves its home's players (score submits, tickets: HOME_ROUTING), and their
   leaderboard entries and tickets move from us-east-1's Redis to the region's, none lost or doubled.
9. shard-secondaries: a secondary of the new shard in every other region (its copies elsewhere), and
   their apps read a token of its writer there once replayed; on AWS also the region's new secondary
   of the origin's shard (its own left the origin's global cluster when it was detached).
10. watch-players: bake, then gate every geography against the recorded baseline (`migrate baseline`):
   no geography worse than before, judged by the gate (phasekit/players_gate.py).

Exactly one database accepts a home's writes at any moment: the origin until its fence (step 2), the
new writer only after promotion and never for another home (it is fenced for them before it starts).

Rollback, last step first: route-writes is undone by fencing the new writer, draining the reverse
stream (subscribing first if a run died before step 7; the slot kept everything), routing back and
unfencing the origin (held writes land there); then the stream is dropped, the promoted copy removed (a promoted copy
forks from the origin for good: going back is the reverse stream, never physical), the origin's fence
lifted. `migrate abort` before routing flips (steps 1-5) rolls back the same way: nothing was routed yet.

Not in this phase (a deliberate departure, runbooks/cutover.md): bumping the players' home epoch (a
planned cutover keeps their home region, and the fence already stops the origin; the epoch matters
when a lost home is taken over, issue 12)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from migrate.errors import ProviderError, VerifyFailed
from migrate.names import REGIONS, SOURCE_REGION
from migrate.phasekit.checks import lag_within_budget
from migrate.phasekit.model import Check, CheckResult, Phase, StepContext, Target
from migrate.phasekit.players_gate import SETTLE_SHARE, WatchPlayers
from migrate.phasekit.schema_steps import reached, schema_of
from migrate.providers.protocols import HomeServing, HomeWriters

ORIGIN = "origin"
FENCE_REVISION = "e008_fence_sequences"  # the fence trigger and its per-home sequences
IDENTITY_REVISION = "e005_players_home_index"  # players' replica identity covers home_region


def _hs(target: Target) -> HomeServing:
    hs = target.providers.home_serving
    if hs is None:
        raise ProviderError(f"the {target.env.kind} environment has no home-serving adapter yet",
                            hint="the lab and AWS have one")
    return hs


def _hw(target: Target) -> HomeWriters:
    hw = target.providers.home_writers
    if hw is None:
        raise ProviderError(f"the {target.env.kind} environment has no home-writer adapter yet",
                            hint="the lab and AWS have one")
    return hw


# --- steps --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageWriter:
    id: str = "stage-writer"
    title: str = "Stage the region's future writer: a caught-up standby of the origin, logical decoding on"

    def describe(self, target: Target) -> list[str]:
        others = ", ".join(r for r in REGIONS if r != target.region)
        forward = f"forward_{target.region.replace('-', '_')}"
        if target.env.kind == "aws":
            return [f"check game-{target.region} (a serving member of game-global) and the origin: "
                    f"rds.logical_replication = 1 in force on both",
                    f"on the origin: CREATE PUBLICATION {forward} FOR TABLE players, handle_claims and its logical "
                    f"slot; the catch-up marker, awaited on game-{target.region}'s reader",
                    f"remove_from_global_cluster (minutes, before the fence: off the players' path); on the detached "
                    f"writer: every home fenced, the inherited subscriptions dropped, the replay trigger, CREATE "
                    f"SUBSCRIPTION {forward} from the origin's slot (no copy); create_global_cluster "
                    f"game-home-{target.region}",
                    "every region's apps connect to it ahead of routing (home writers map warm:<region>)"]
        return [f"pg_basebackup of the origin through {target.region}'s link into its home writer, a physical "
                f"standby on slot home_{target.region.replace('-', '_')}; wal_level = logical; fenced for {others}",
                "every region's apps connect to it ahead of routing (WRITERS_FILE warm:<region>)"]

    def describe_undo(self, target: Target) -> list[str]:
        if target.env.kind == "aws":
            return [f"drop the origin's forward publication and slot; once detached: {target.region} reads from the "
                    f"origin's writer, the detached cluster and game-home-{target.region} are deleted, a new "
                    f"secondary of game-global is attached (a full copy: hours) and read from again"]
        return ["stop and remove the staged writer; drop the origin's slot for it"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        hw = _hw(ctx.target)
        out = hw.stage(ctx.target.region, ctx.progress, ctx.checkpoint)
        ctx.checkpoint()  # staged, not journaled: a real crash point
        hw.warm_writes(ctx.target.region, True)  # the apps connect now, not while players are held
        return out

    def verify(self, ctx: StepContext) -> None:
        hw = _hw(ctx.target)
        if not hw.staged(ctx.target.region):
            raise VerifyFailed(f"{ctx.target.region}'s staged writer is missing")

    def undo(self, ctx: StepContext) -> None:
        _hw(ctx.target).warm_writes(ctx.target.region, False)
        _hw(ctx.target).discard(ctx.target.region)
        ctx.checkpoint()


@dataclass(frozen=True)
class FenceOrigin:
    id: str = "fence-origin"
    title: str = "Fence the home's writes at the origin, then the barrier"

    def describe(self, target: Target) -> list[str]:
        return [f"setval('game_fence_{target.region.replace('-', '_')}', 1) on the origin (the next row any transaction "
                f"writes sees it); the apps hold that home's writes",
                "barrier: LOCK TABLE players IN SHARE MODE (lock_timeout 2 s) twice, ending transactions "
                "older than the fence that still block it"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"setval('game_fence_{target.region.replace('-', '_')}', 0) on the origin (held writes land there)"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        hw, region = _hw(ctx.target), ctx.target.region
        started = time.monotonic()
        hw.set_fence(ORIGIN, region, True)
        ctx.checkpoint()  # fenced, no barrier yet: a real crash point
        barrier = hw.barrier(ORIGIN, region)
        return {"fenced": region, **barrier, "seconds": round(time.monotonic() - started, 3)}

    def verify(self, ctx: StepContext) -> None:
        if ctx.target.region not in _hw(ctx.target).fenced(ORIGIN):
            raise VerifyFailed(f"the origin is not fenced for {ctx.target.region}")

    def undo(self, ctx: StepContext) -> None:
        ctx.save(origin_writable_from=time.time())
        _hw(ctx.target).set_fence(ORIGIN, ctx.target.region, False)
        ctx.checkpoint()


@dataclass(frozen=True)
class CatchUp:
    id: str = "catch-up"
    title: str = "Read the marker LSN after the barrier; wait until the staged writer has replayed it"

    def describe(self, target: Target) -> list[str]:
        waited = ("the forward stream's subscriber confirms it (the slot's confirmed_flush_lsn)"
                  if target.env.kind == "aws" else "the staged writer's replay LSN reaches it")
        return ["SELECT pg_current_wal_lsn() on the origin (after the barrier: every write of the home is below it)",
                f"wait (up to {target.env.timings.catch_up_timeout_seconds:g} s) until {waited}"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        hw, region = _hw(ctx.target), ctx.target.region
        started = time.monotonic()
        marker = hw.marker_lsn()
        read = time.monotonic()
        ctx.save(marker_lsn=marker)
        ctx.checkpoint()  # the marker is journaled, the replay not awaited yet: a real crash point
        waited = time.monotonic()
        hw.wait_replayed(region, marker, ctx.target.env.timings.catch_up_timeout_seconds, ctx.checkpoint)
        done = time.monotonic()
        return {"marker_lsn": marker, "seconds": round(done - started, 3), "marker_s": round(read - started, 3),
                "journal_s": round(waited - read, 3), "replay_wait_s": round(done - waited, 3)}

    def verify(self, ctx: StepContext) -> None:
        pass  # apply returns only once the marker is replayed

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()


@dataclass(frozen=True)
class Promote:
    id: str = "promote"
    title: str = "Promote the staged writer (confirmed out of recovery)"

    def describe(self, target: Target) -> list[str]:
        if target.env.kind == "aws":
            return [f"on the origin: the forward publication leaves the home out (WHERE home_region <> "
                    f"'{target.region}'); the id sequences carried to the detached writer, which then unfences "
                    f"{target.region} (the other homes stay fenced)"]
        return ["pg_promote(wait => true); check pg_is_in_recovery() is false; drop the origin's slot for it"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["remove the promoted copy (it forked from the origin for good; a new run stages a fresh one)"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        out = _hw(ctx.target).promote(ctx.target.region)
        ctx.checkpoint()  # promoted, not journaled: a real crash point
        return out

    def verify(self, ctx: StepContext) -> None:
        if not _hw(ctx.target).is_writer(ctx.target.region):
            raise VerifyFailed(f"{ctx.target.region}'s home writer is not out of recovery")

    def undo(self, ctx: StepContext) -> None:
        _hw(ctx.target).discard(ctx.target.region)
        ctx.checkpoint()


@dataclass(frozen=True)
class ReverseSlot:
    id: str = "reverse-slot"
    title: str = "Keep every change of the home for the origin: publication and logical slot on the new writer"

    def describe(self, target: Target) -> list[str]:
        name = f"home_{target.region.replace('-', '_')}"
        return [f"on the new writer: CREATE PUBLICATION {name} FOR TABLE players WHERE (home_region = "
                f"'{target.region}'); pg_create_logical_replication_slot('{name}', 'pgoutput') — before routing "
                f"flips, so no write the new writer takes can miss the way back"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["DROP SUBSCRIPTION on the origin; DROP PUBLICATION and the slot on the new writer"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        out = _hw(ctx.target).prepare_reverse_stream(ctx.target.region)
        ctx.checkpoint()
        return out

    def verify(self, ctx: StepContext) -> None:
        pass  # prepare_reverse_stream returns only with both in place

    def undo(self, ctx: StepContext) -> None:
        _hw(ctx.target).stop_reverse_stream(ctx.target.region)
        ctx.checkpoint()


@dataclass(frozen=True)
class ReverseStream:
    id: str = "reverse-stream"
    title: str = "Subscribe the origin to the home's changes (after routing: off the players' stall)"

    def describe(self, target: Target) -> list[str]:
        name = f"home_{target.region.replace('-', '_')}"
        return [f"on the origin: CREATE SUBSCRIPTION {name} … WITH (copy_data = false, create_slot = false, "
                f"slot_name = '{name}'): it reads from the slot, so nothing written since routing flipped is missed"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["nothing yet: route-writes' undo drains it first; reverse-slot's undo removes it"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        out = _hw(ctx.target).start_reverse_stream(ctx.target.region)
        ctx.checkpoint()
        return out

    def verify(self, ctx: StepContext) -> None:
        state = _hw(ctx.target).reverse_stream(ctx.target.region)
        if not state or not state["enabled"]:
            raise VerifyFailed(f"{ctx.target.region}'s reverse stream is {'missing' if not state else 'disabled'}")

    def undo(self, ctx: StepContext) -> None:
        ctx.checkpoint()


@dataclass(frozen=True)
class RouteWrites:
    id: str = "route-writes"
    title: str = "Route the home's writes to the new writer in every region (held writes land there)"

    def describe(self, target: Target) -> list[str]:
        return [f"every region's WRITERS_FILE: {target.region} → its home writer (direct in {target.region}, "
                f"through the WAN link elsewhere)"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"fence {target.region} on the new writer and wait out its earlier writers (the barrier); drain "
                f"the reverse stream (the origin confirms every write); route back to the origin; unfence it there "
                f"(held writes land on the origin)"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        hw, region = _hw(ctx.target), ctx.target.region
        hw.route_writes(region, True)
        ctx.checkpoint()  # routed, not journaled: a real crash point
        return {"routed": hw.writes_routed(region)}

    def verify(self, ctx: StepContext) -> None:
        routed = _hw(ctx.target).writes_routed(ctx.target.region)
        if not all(routed.values()):
            raise VerifyFailed("not routed to the new writer in " + ", ".join(r for r, ok in routed.items() if not ok))

    def undo(self, ctx: StepContext) -> None:
        hw, region, timings = _hw(ctx.target), ctx.target.region, ctx.target.env.timings
        if hw.is_writer(region):
            hw.set_fence(region, region, True)  # one writer at a time: the new one stops first
            ctx.checkpoint()
            barrier = hw.barrier(region, region)  # and every write it took is committed before the drain
            ctx.save(new_writer_writable_until=barrier["writable_until"])
            hw.start_reverse_stream(region)  # a run that died before subscribing: the slot kept everything
            drained = hw.drain_reverse_stream(region, timings.catch_up_timeout_seconds, ctx.checkpoint)
            ctx.save(drained_to=drained)
        hw.route_writes(region, False)
        ctx.checkpoint()  # routed back, origin still fenced: a real crash point
        ctx.save(origin_writable_from=time.time())
        hw.set_fence(ORIGIN, region, False)
        ctx.checkpoint()


@dataclass(frozen=True)
class Rehome:
    id: str = "rehome"
    title: str = "Re-home the players: the region serves their scores and tickets; their cache state moves there"

    def describe(self, target: Target) -> list[str]:
        return [f"HOME_ROUTING {target.region} → {target.region} in every region's apps (their score submits and "
                f"tickets go there; {SOURCE_REGION} answers 409 wrong_region, which the client follows)",
                f"move the home's leaderboard entries (copy with ZADD LT, then compare-and-delete) and tickets "
                f"(waiting ones keep id and mode) from {SOURCE_REGION}'s Redis to {target.region}'s, repeated "
                f"until {SOURCE_REGION} holds none"]

    def describe_undo(self, target: Target) -> list[str]:
        return [f"HOME_ROUTING {target.region} → {SOURCE_REGION}; move the entries and tickets back"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        hs, region = _hs(ctx.target), ctx.target.region
        hs.serve(region, region)
        ctx.checkpoint()  # served by the region, its state not moved yet: a real crash point
        return {"moved": hs.move_state(region, SOURCE_REGION, region)}

    def verify(self, ctx: StepContext) -> None:
        hs, region = _hs(ctx.target), ctx.target.region
        if hs.serving(region) != region:
            raise VerifyFailed(f"{region}'s players are served by {hs.serving(region)}")
        left = hs.state_counts(region, SOURCE_REGION)
        if any(left.values()):
            raise VerifyFailed(f"{SOURCE_REGION}'s cache still holds {region}'s {left}")

    def undo(self, ctx: StepContext) -> None:
        hs, region = _hs(ctx.target), ctx.target.region
        hs.serve(region, SOURCE_REGION)
        ctx.checkpoint()
        hs.move_state(region, region, SOURCE_REGION)
        ctx.checkpoint()


@dataclass(frozen=True)
class ShardSecondaries:
    id: str = "shard-secondaries"
    title: str = "Secondaries of the new shard in the other regions (its copies elsewhere, and reads there)"

    def describe(self, target: Target) -> list[str]:
        others = ", ".join(r for r in REGIONS if r != target.region)
        return [f"a physical secondary of {target.region}'s shard in {others} (lab: pg_basebackup of the home "
                f"writer through each region's link, slot shard_<region>; AWS: a secondary cluster of the shard's "
                f"global cluster in each, and in {target.region} a new secondary of the origin's)",
                f"every other region's apps read a token of {target.region}'s writer from their local secondary "
                f"once it has replayed it (WRITERS map reader:{target.region})"]

    def describe_undo(self, target: Target) -> list[str]:
        return ["the apps told first, then the secondaries removed"]

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        out = _hw(ctx.target).add_shard_secondaries(ctx.target.region, ctx.progress, ctx.checkpoint)
        ctx.checkpoint()
        return out

    def verify(self, ctx: StepContext) -> None:
        pass  # add_shard_secondaries returns only once every one serves

    def undo(self, ctx: StepContext) -> None:
        _hw(ctx.target).remove_shard_secondaries(ctx.target.region)
        ctx.checkpoint()


# --- checks -------------------------------------------------------------------------------------
def _expand_done(t: Target) -> CheckResult:
    journal = getattr(t, "journal", None)
    status = journal.phase("expand-schema", None).status if journal is not None else "unknown"
    holds = reached(schema_of(t))
    missing = [r for r in (IDENTITY_REVISION, FENCE_REVISION) if r not in holds]
    ok = status == "succeeded" and not missing
    return CheckResult("schema-expanded", ok,
                       f"expand-schema {status}" + (f"; the writer lacks {', '.join(missing)}" if missing else
                                                    "; the fence trigger and players' replica identity are in place"),
                       "run `migrate phase run expand-schema` first")


def _no_schema_change(t: Target) -> CheckResult:
    journal = getattr(t, "journal", None)
    busy = [p for p in ("expand-schema", "contract-schema")
            if journal is not None and journal.phase(p, None).status in ("running", "rolling-back")]
    return CheckResult("no-schema-change-in-flight", not busy,
                       "no schema phase in flight" if not busy else f"{', '.join(busy)} in flight",
                       "let it finish (or roll it back) first")


def _region_serves(t: Target) -> CheckResult:
    runtime = t.providers.runtime
    ready = runtime is not None and runtime.cache_ready(t.region)
    return CheckResult("region-cache-ready", ready,
                       f"{t.region}'s cache answers" if ready else f"{t.region} has no cache that answers",
                       f"run `migrate phase run stand-up-region --region {t.region}` first: the home's "
                       "leaderboard entries and tickets move there")


def _secondary_within_budget(t: Target) -> CheckResult:
    """On AWS the region's secondary becomes its writer, so its lag is what staging waits out; in the lab
    staging copies the origin itself (through the region's link) and catches that copy up."""
    if t.env.kind != "aws":
        return CheckResult("secondary-within-budget", True, "the lab stages a fresh copy of the origin and catches it up",
                           "")
    if _hw(t).staged(t.region):
        return CheckResult("secondary-within-budget", True,
                           f"{t.region}'s copy is detached already: the forward stream carries it", "")
    lag = t.providers.global_database.replication_lag(t.region)
    return CheckResult("secondary-within-budget", lag_within_budget(t, lag),
                       f"{t.region} secondary {lag.state}, lag {lag.lag_seconds} s "
                       f"(budget {t.env.timings.lag_budget_seconds:g} s)",
                       f"wait for it to catch up, or run `migrate phase run attach-secondary --region {t.region}`")


def _logical_decoding(t: Target) -> CheckResult:
    ok, why = _hw(t).logical_decoding_ready(t.region)
    return CheckResult("logical-decoding", ok, why,
                       "set rds.logical_replication = 1 ahead (pending-reboot) and reboot in a quiet window")


def _origin_reachable(t: Target) -> CheckResult:
    facts = t.providers.global_database.primary_facts()
    return CheckResult("origin-reachable", facts.reachable, facts.detail, "bring the origin back first")


class Cutover:
    """cutover: the region becomes the writer of the players it homes."""

    name = "cutover"
    summary = "The region becomes the writer of the players it homes: stage, fence, catch up, promote, reverse stream, route"
    built = True
    regional = True
    point_of_no_return = None
    runbook = "runbooks/cutover.md"

    def preflight(self, target: Target) -> list[Check]:
        return [
            Check("schema-expanded", "expand-schema succeeded: the fence trigger and the replica identity exist",
                  "run expand-schema", _expand_done),
            Check("no-schema-change-in-flight", "no schema phase is running", "wait", _no_schema_change),
            Check("origin-reachable", "the origin (today's writer) answers", "bring it back", _origin_reachable),
            Check("secondary-within-budget", "on AWS, the region's secondary (its future writer) lags within budget",
                  "wait for it", _secondary_within_budget),
            Check("logical-decoding", "logical decoding is on (or staging turns it on) wherever the cutover decodes",
                  "turn it on ahead: a restart-only setting", _logical_decoding),
            Check("region-cache-ready", "the region's cache answers (re-home moves the home's state there)",
                  "stand the region up", _region_serves),
        ]

    def steps(self, target: Target) -> list:
        return [StageWriter(), FenceOrigin(), CatchUp(), Promote(), ReverseSlot(), RouteWrites(), ReverseStream(),
                Rehome(), ShardSecondaries(), WatchPlayers(settle_share=SETTLE_SHARE)]

    def verify(self, target: Target) -> list[Check]:
        def one_writer(t: Target) -> CheckResult:
            hw, region = _hw(t), t.region
            others = set(REGIONS) - {region}
            problems = []
            if not hw.is_writer(region):
                problems.append(f"{region}'s home writer is not a writer")
            if region not in hw.fenced(ORIGIN):
                problems.append(f"the origin still takes {region}'s writes")
            if not others <= hw.fenced(region):
                problems.append(f"the new writer takes writes for {', '.join(sorted(others - hw.fenced(region)))}")
            return CheckResult("one-writer-per-home", not problems,
                               "; ".join(problems) or f"{region}: only its own writer takes its writes",
                               "roll back and investigate")

        def stream(t: Target) -> CheckResult:
            state = _hw(t).reverse_stream(t.region)
            ok = bool(state and state["enabled"])
            return CheckResult("reverse-stream", ok, f"reverse stream: {state}", "see runbooks/cutover.md")

        def routed(t: Target) -> CheckResult:
            routes = _hw(t).writes_routed(t.region)
            return CheckResult("writes-routed", all(routes.values()), f"routed in: {routes}", "resume")

        return [Check("one-writer-per-home", "exactly one database takes the home's writes", "roll back", one_writer),
                Check("reverse-stream", "the origin keeps a current copy of the home", "see runbook", stream),
                Check("writes-routed", "every region sends the home's writes to its writer", "resume", routed)]

    def rollback_summary(self, target: Target) -> list[str]:
        return ["fence the new writer, drain the reverse stream, route back and unfence the origin; drop the "
                "stream; remove the promoted copy; lift the origin's fence"]


PHASE: Phase = Cutover()
