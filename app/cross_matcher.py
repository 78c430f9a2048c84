"""Each region's cross-region matchmaker: a background task of the app.

Every CROSS_MATCH_INTERVAL_SECONDS (jittered) it
1. settles this region's claims whose lease ran out (asks their coordinator, applies the answer), then
2. for each queue, takes its own oldest ticket that may widen (app/match_policy.py), lists the
   other regions' widening tickets over the peer links, picks the best group, and forms it:
   claim at every owner at once (app/match_claims.py), decide, apply everywhere.

Three regions run this at once on overlapping tickets; claims keep them from sharing a ticket, and a
region only anchors matches on its own tickets, so two matchmakers rarely want the same group. A peer
that does not answer is left out of this round: its players wait for the next."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import defaultdict

from app.match_claims import committed
from app.match_peers import PeerMatchmakers, claim_book, waiting_candidates
from app.match_policy import Candidate, Choice, first_choice
from app.matchmaking import known_regions
from app.runtime import Runtime

log = logging.getLogger("app")


class CrossMatcher:
    """One app instance's matchmaker loop."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.peers = PeerMatchmakers(rt)
        self.book = claim_book(rt)
        self.widening = [tuple(step) for step in rt.settings.cross_match_widening]
        self._task: asyncio.Task | None = None
        self._peer_errors: dict[str, str] = {}  # peer → why it last failed to list (logged on change only)

    def start(self) -> None:
        """Run the loop on the current event loop (no-op without peers or widening)."""
        if self.rt.settings.peer_regions and self.widening and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        interval = self.rt.settings.cross_match_interval_seconds
        failing: str | None = None  # logged when it starts, changes and ends: not four times a second
        while True:
            try:
                await self.tick()
                if failing is not None:
                    log.warning("cross-region matchmaker: working again")
                    failing = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a Redis blip or a bug must not stop matchmaking for good
                reason = f"{type(exc).__name__}: {exc}"
                if reason != failing:
                    log.warning("cross-region matchmaker: %s (retrying every %.2f s)", reason, interval)
                    failing = reason
            await asyncio.sleep(interval * random.uniform(0.75, 1.25))

    async def tick(self) -> int:
        """One round: settle expired claims, then form what can be formed; the matches formed."""
        await self.settle()
        formed = 0
        for raw in sorted(await self.rt.redis.smembers(f"{self.rt.settings.key_prefix}mm:modes")):
            choice = await self.propose(raw.decode())
            if choice is not None and await self.form(choice):
                formed += 1
        return formed

    async def settle(self) -> None:
        """Apply the coordinator's decision to every claim of ours whose lease has run out."""
        now = self.rt.clock()
        for (claim_id, coordinator), tickets in (await self.book.expired_claims(now)).items():
            try:
                if coordinator == self.rt.settings.region:
                    decision = await self.book.decide(claim_id, "aborted")
                else:
                    decision = await self.peers.settle(coordinator, claim_id)
            except Exception as exc:  # unreachable coordinator: the tickets stay claimed until it answers
                log.info("claim %s: coordinator %s did not settle it: %r", claim_id, coordinator, exc)
                continue
            await self.book.apply(claim_id, decision, self.rt.clock(), tickets)

    async def propose(self, mode: str) -> Choice | None:
        """The best match for this region's oldest widening ticket of `mode` that has one, or None."""
        first_wait = self.widening[0][0]
        own = await waiting_candidates(self.rt, mode, first_wait)
        if not own:
            return None
        peers = sorted(self.rt.settings.peer_regions)
        listed = await asyncio.gather(*(self.peers.waiting(p, mode, first_wait) for p in peers),
                                      return_exceptions=True)
        others: list[Candidate] = list(own)
        for region, result in zip(peers, listed):
            if isinstance(result, BaseException):
                reason = repr(result)
                if self._peer_errors.get(region) != reason:
                    log.warning("cross-region matchmaker: %s does not list its tickets (%s): its players are left "
                                "out until it does", region, reason)
                    self._peer_errors[region] = reason
                continue
            if self._peer_errors.pop(region, None) is not None:
                log.warning("cross-region matchmaker: %s lists its tickets again", region)
            others.extend(c for c in result if c.owner == region)
        return first_choice(own, others, self.rt.settings.match_size, self.rt.clock(), known_regions(self.rt),
                            self.widening)

    async def form(self, choice: Choice) -> bool:
        """Claim the group at every owner, decide, apply; True when the match was committed."""
        me = self.rt.settings.region
        claim_id = f"c-{me}-{uuid.uuid4().hex[:12]}"
        chosen_at = self.rt.clock()
        by_owner: dict[str, list[str]] = defaultdict(list)
        for c in choice.tickets:
            by_owner[c.owner].append(c.ticket_id)
        lease = self.rt.settings.cross_match_lease_seconds
        claims = await asyncio.gather(*(self._claim(owner, claim_id, lease, tids) for owner, tids in by_owner.items()),
                                      return_exceptions=True)
        if all(result is True for result in claims):
            match = {"match_id": f"x-{claim_id[2:]}", "kind": "cross", "coordinator": me, "host": choice.host,
                     "worst_rtt_ms": choice.worst_rtt_ms, "chosen_at": chosen_at, "widening": self.widening,
                     "tickets": [{"ticket_id": c.ticket_id, "owner": c.owner, "player_id": str(c.player_id),
                                  "created_at": c.created_at, "rtt_ms": dict(c.rtt_ms)} for c in choice.tickets]}
            wanted = committed(match)
        else:
            wanted = "aborted"
        decision = await self.book.decide(claim_id, wanted)
        # best effort: an owner that misses this settles the claim itself when its lease runs out
        await asyncio.gather(*(self._apply(owner, claim_id, decision, tids) for owner, tids in by_owner.items()),
                             return_exceptions=True)
        return decision.startswith("committed:")

    async def _claim(self, owner: str, claim_id: str, lease: float, tickets: list[str]) -> bool:
        if owner == self.rt.settings.region:
            now = self.rt.clock()
            return await self.book.claim(claim_id, owner, now + lease, now, tickets) is None
        return await self.peers.claim(owner, claim_id, lease, tickets)

    async def _apply(self, owner: str, claim_id: str, decision: str, tickets: list[str]) -> None:
        if owner == self.rt.settings.region:
            await self.book.apply(claim_id, decision, self.rt.clock(), tickets)
        else:
            await self.peers.apply(owner, claim_id, decision, tickets)
