"""Claims on waiting tickets for cross-region matches: all-or-none at each owner, one decision at the
coordinator, and how a claim whose lease ran out is settled.

A cross-region match is proposed by one region's matchmaker (the coordinator) and takes tickets owned
by several regions. The protocol keeps one rule: **a claimed ticket leaves its claim only by the
coordinator's decision**, and the coordinator decides once (SET NX), so no ticket is ever in two
matches whatever is lost, late or repeated on the links.

1. claim — at each owner, one script: every named ticket still `waiting` → `claimed` (out of the
   queue, the local matcher never sees it) with the claim id, the coordinator and a lease; else none
   changes. Repeating a claim that holds is a no-op success.
2. decide — at the coordinator, `mm:decision:<claim>` SET NX: `committed:<match JSON>` once every
   owner said yes, else `aborted`. Whoever writes first wins; the other writer reads the winner.
3. apply — each owner applies the decision: committed → `matched` (host, expected round trip);
   aborted → `waiting` again at the head of its queue.
4. settle — an owner whose claim outlived its lease (the coordinator died or a link was cut) asks the
   coordinator to settle it: SET NX `aborted` there, and the answer is whatever was decided. Until the
   coordinator answers, the ticket stays claimed; the ticket's own TTL bounds that.

Every step appends to the owner's or coordinator's `mm:history` stream, the record the checker reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

# KEYS: none. ARGV: prefix, claim id, coordinator, lease until, now, ticket ids… → {1} | {0, tid, status}
CLAIM = """
local prefix, cid, coordinator, lease_until, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV do
  local tkey = prefix .. 'mm:ticket:' .. ARGV[i]
  local status = redis.call('HGET', tkey, 'status')
  if not (status == 'waiting' or (status == 'claimed' and redis.call('HGET', tkey, 'claim_id') == cid)) then
    return {0, ARGV[i], status or 'missing'}
  end
end
local tickets = {}
for i = 6, #ARGV do
  local tid = ARGV[i]
  local tkey = prefix .. 'mm:ticket:' .. tid
  if redis.call('HGET', tkey, 'status') == 'waiting' then
    redis.call('HSET', tkey, 'status', 'claimed', 'claim_id', cid, 'coordinator', coordinator,
               'lease_until', lease_until, 'updated_at', now)
    redis.call('LREM', prefix .. 'mm:queue:' .. redis.call('HGET', tkey, 'mode'), 0, tid)
    redis.call('SADD', prefix .. 'mm:claimed', tid)
  end
  table.insert(tickets, tid)
end
redis.call('XADD', prefix .. 'mm:history', 'MAXLEN', '~', 200000, '*', 'event', 'claimed',
           'claim_id', cid, 'coordinator', coordinator, 'tickets', cjson.encode(tickets))
return {1}
"""

# ARGV: prefix, claim id, decision ('committed:<match JSON>' | 'aborted'), now, ttl, ticket ids…
#   → number of tickets changed. Only tickets still claimed by this claim change.
APPLY = """
local prefix, cid, decision, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local match = nil
if string.sub(decision, 1, 10) == 'committed:' then match = cjson.decode(string.sub(decision, 11)) end
local changed = {}
for i = 6, #ARGV do
  local tid = ARGV[i]
  local tkey = prefix .. 'mm:ticket:' .. tid
  if redis.call('HGET', tkey, 'status') == 'claimed' and redis.call('HGET', tkey, 'claim_id') == cid then
    local pid = redis.call('HGET', tkey, 'player_id')
    if match then
      local players = {}
      for j, t in ipairs(match.tickets) do players[j] = t.player_id end
      redis.call('HSET', tkey, 'status', 'matched', 'match_id', match.match_id, 'players', cjson.encode(players),
                 'host_region', match.host, 'expected_rtt_ms', tostring(match.worst_rtt_ms), 'updated_at', now)
      redis.call('EXPIRE', tkey, ttl)
      local pkey = prefix .. 'mm:player:' .. pid
      if redis.call('GET', pkey) == tid then redis.call('DEL', pkey) end
    else
      redis.call('HSET', tkey, 'status', 'waiting', 'updated_at', now)
      redis.call('HDEL', tkey, 'claim_id', 'coordinator', 'lease_until')
      redis.call('LPUSH', prefix .. 'mm:queue:' .. redis.call('HGET', tkey, 'mode'), tid)
    end
    redis.call('SREM', prefix .. 'mm:claimed', tid)
    table.insert(changed, tid)
  end
end
if #changed > 0 then
  redis.call('XADD', prefix .. 'mm:history', 'MAXLEN', '~', 200000, '*', 'event',
             match and 'committed' or 'released', 'claim_id', cid, 'tickets', cjson.encode(changed),
             'match_id', match and match.match_id or '')
end
return #changed
"""

# ARGV: prefix, claim id, wanted ('committed:<JSON>' | 'aborted'), ttl → the decision that stands
DECIDE = """
local prefix, cid, wanted, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = prefix .. 'mm:decision:' .. cid
if redis.call('SET', key, wanted, 'NX', 'EX', ttl) then
  local outcome = string.sub(wanted, 1, 10) == 'committed:' and 'committed' or 'aborted'
  redis.call('XADD', prefix .. 'mm:history', 'MAXLEN', '~', 200000, '*', 'event', 'decided',
             'claim_id', cid, 'outcome', outcome, 'match', outcome == 'committed' and string.sub(wanted, 11) or '')
  return wanted
end
return redis.call('GET', key)
"""


@dataclass(frozen=True)
class ClaimRefused:
    """A claim that changed nothing: `ticket_id` was `status` (matched, cancelled, claimed, missing)."""

    ticket_id: str
    status: str


class ClaimBook:
    """The claim scripts on one region's Redis (its tickets and, as coordinator, its decisions)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int) -> None:
        self.redis, self.prefix, self.ttl_s = redis, prefix, ttl_s
        self._claim = redis.register_script(CLAIM)
        self._apply = redis.register_script(APPLY)
        self._decide = redis.register_script(DECIDE)

    async def claim(self, claim_id: str, coordinator: str, lease_until: float, now: float,
                    tickets: list[str]) -> ClaimRefused | None:
        """Claim every ticket or none; None when all are claimed by `claim_id` now."""
        answer = await self._claim(args=[self.prefix, claim_id, coordinator, f"{lease_until:.3f}", f"{now:.3f}",
                                         *tickets])
        if int(answer[0]) == 1:
            return None
        return ClaimRefused(answer[1].decode(), answer[2].decode())

    async def apply(self, claim_id: str, decision: str, now: float, tickets: list[str]) -> int:
        """Apply the coordinator's decision to this owner's tickets still under `claim_id`; how many changed."""
        return int(await self._apply(args=[self.prefix, claim_id, decision, f"{now:.3f}", self.ttl_s, *tickets]))

    async def decide(self, claim_id: str, wanted: str) -> str:
        """As coordinator: record `wanted` unless a decision stands; the decision that stands."""
        # The decision must outlive every ticket it names (TICKET_TTL_SECONDS from the ticket's creation;
        # a claim does not extend it): an owner asking later than that has no ticket left to settle, while
        # one asking after the decision expired would abort a committed match. Twice the TTL.
        return (await self._decide(args=[self.prefix, claim_id, wanted, max(self.ttl_s * 2, 60)])).decode()

    async def expired_claims(self, now: float) -> dict[tuple[str, str], list[str]]:
        """(claim id, coordinator) → this owner's tickets whose lease under that claim has run out."""
        found: dict[tuple[str, str], list[str]] = {}
        for raw in await self.redis.smembers(f"{self.prefix}mm:claimed"):
            tid = raw.decode()
            fields = await self.redis.hmget(f"{self.prefix}mm:ticket:{tid}", "status", "claim_id", "coordinator",
                                            "lease_until")
            status, cid, coordinator, lease = (f.decode() if f is not None else None for f in fields)
            if status != "claimed":
                await self.redis.srem(f"{self.prefix}mm:claimed", tid)  # expired or settled: not ours to watch
                continue
            if lease is not None and float(lease) <= now and cid and coordinator:
                found.setdefault((cid, coordinator), []).append(tid)
        return found


def committed(match: dict[str, Any]) -> str:
    """The decision text of a committed match."""
    return "committed:" + json.dumps(match, separators=(",", ":"), sort_keys=True)


def decision_match(decision: str) -> dict[str, Any] | None:
    """The match of a committed decision; None when it is `aborted`."""
    return json.loads(decision[len("committed:"):]) if decision.startswith("committed:") else None
