"""A home's state in a region's cache (its leaderboard entries and matchmaking tickets, keys under
`game:<region>:`, app/config.py) moved to another region's cache: cutover's re-home step, the same in
the lab and on AWS (ElastiCache speaks the Redis protocol). The adapters give the clients and the way to
tell which players a home homes (the origin holds every player's row).

Moving a home's cache state (cutover's re-home step) runs after the routing flip, so the source's apps
already send those players away (409 wrong_region) and only in-flight requests still land there; every
pass therefore repeats until the source holds nothing of the home. Nothing is lost at any crash point:
- leaderboard: the entry is copied first (ZADD LT at the target: a best only improves, so copying twice
  or onto a newer best keeps the better one), then removed at the source only if unchanged since it was
  read (compare-and-delete in one script); a score that landed meanwhile is moved by the next pass.
- tickets: a waiting ticket is first taken out of the source's queue in one script (status `moving`:
  the source's matcher skips anything not `waiting`, so it can never be matched there again), then
  written at the target with its id, mode and times, then deleted at the source. A run that died
  between finds it `moving` and finishes it. Matched tickets are copied (a poll after the flip asks the
  target) and left to expire at the source. A ticket claimed by a cross-region match in the making
  (app/match_claims.py) is left where it is until its claim settles (one lease at most): its owner's
  claim index is what settles it, so it is moved once it is waiting again, or copied once matched."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from migrate.errors import ProviderError

SCAN_COUNT = 500
MAX_PASSES = 50  # each pass moves what in-flight requests left; a home that keeps refilling is a bug
CLAIM_WAIT_S = 0.25  # between passes while a claimed ticket waits for its claim to settle (50 × 0.25 s > a lease)

# ARGV: member, score, … → how many were removed (only those still at the score read before the copy).
_REMOVE_IF_UNCHANGED = """
local removed = 0
for i = 1, #ARGV, 2 do
  local now = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if now and tonumber(now) == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"""

# KEYS: ticket hash; ARGV: prefix, ticket id → the hash (flat) after taking a waiting ticket out of the
# queue (status moving); the hash as it is for any other status; {} when gone.
_TAKE_TICKET = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {} end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'waiting' then
  redis.call('HSET', KEYS[1], 'status', 'moving')
  redis.call('LREM', ARGV[1] .. 'mm:queue:' .. redis.call('HGET', KEYS[1], 'mode'), 0, ARGV[2])
  fields = redis.call('HGETALL', KEYS[1])
end
local ttl = redis.call('PTTL', KEYS[1])
table.insert(fields, '__pttl')
table.insert(fields, tostring(ttl))
return fields
"""

# KEYS: ticket hash at the target; ARGV: prefix, ticket id, pttl, field, value, … → 1 when written.
_PUT_TICKET = """
local prefix, tid, pttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local existing = redis.call('HGET', KEYS[1], 'status')
if existing and existing ~= 'waiting' then return 0 end
local status, mode, pid
for i = 4, #ARGV, 2 do
  local value = ARGV[i + 1]
  if ARGV[i] == 'status' and value == 'moving' then value = 'waiting' end
  if ARGV[i] == 'status' then status = value end
  if ARGV[i] == 'mode' then mode = value end
  if ARGV[i] == 'player_id' then pid = value end
  redis.call('HSET', KEYS[1], ARGV[i], value)
end
if pttl and pttl > 0 then redis.call('PEXPIRE', KEYS[1], pttl) end
if status == 'waiting' and not existing then
  redis.call('RPUSH', prefix .. 'mm:queue:' .. mode, tid)
  redis.call('SET', prefix .. 'mm:player:' .. pid, tid)
  if pttl and pttl > 0 then redis.call('PEXPIRE', prefix .. 'mm:player:' .. pid, pttl) end
end
return 1
"""

# KEYS: ticket hash, player key; ARGV: ticket id → deletes a moved ticket at the source.
_DROP_MOVED = """
if redis.call('HGET', KEYS[1], 'status') ~= 'moving' then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""


def prefix(region: str) -> str:
    return f"game:{region}:"


class HomeCache:
    """Moves and counts a home's cache state between regions' caches.

    `client(region)` opens a Redis client to the region's cache (closed after each use); `homed(home,
    ids)` answers which of `ids` the home homes (raising the project's errors); `where`, `routing_hint`
    (what the apps read the routing from) and `cache_hint` (how to check a cache) go into the errors."""

    def __init__(self, client: Callable[[str], redis.Redis], homed: Callable[[str, list[int]], set[int]], *,
                 where: str, routing_hint: str, cache_hint: str) -> None:
        self._client, self._homed = client, homed
        self.where, self.routing_hint, self.cache_hint = where, routing_hint, cache_hint

    def _board_pass(self, home: str, source: redis.Redis, target: redis.Redis, src: str, dst: str) -> int:
        remove = source.register_script(_REMOVE_IF_UNCHANGED)
        moved, cursor = 0, 0
        while True:
            cursor, chunk = source.zscan(src + "leaderboard", cursor, count=SCAN_COUNT)
            mine = self._homed(home, [int(m) for m, _ in chunk])
            entries = {m: s for m, s in chunk if int(m) in mine}
            if entries:
                target.zadd(dst + "leaderboard", entries, lt=True)  # copy first: a crash here loses nothing
                flat = [x for m, s in entries.items() for x in (m, repr(s))]
                moved += int(remove(keys=[src + "leaderboard"], args=flat))
            if cursor == 0:
                return moved

    def _ticket_pass(self, home: str, source: redis.Redis, target: redis.Redis, src: str,
                     dst: str) -> tuple[int, int]:
        """(tickets moved, tickets left for a later pass: claimed by a cross-region match in the making)."""
        take, put, drop = (source.register_script(_TAKE_TICKET), target.register_script(_PUT_TICKET),
                           source.register_script(_DROP_MOVED))
        owners = {}
        for key in source.scan_iter(match=src + "mm:ticket:*", count=SCAN_COUNT):
            pid = source.hget(key, "player_id")
            if pid is not None:
                owners[key.decode()] = int(pid)
        mine = self._homed(home, sorted(set(owners.values())))
        moved = pending = 0
        for key, pid in owners.items():
            if pid not in mine:
                continue
            tid = key.rsplit(":", 1)[1]
            flat = take(keys=[key], args=[src, tid])
            if not flat:
                continue
            fields = dict(zip([f.decode() for f in flat[::2]], [v.decode() for v in flat[1::2]]))
            if fields.get("status") == "claimed":
                pending += 1  # another pass moves it once its claim settled
                continue
            pttl = fields.pop("__pttl")
            args = [dst, tid, pttl] + [x for kv in fields.items() for x in kv]
            put(keys=[dst + "mm:ticket:" + tid], args=args)
            if fields.get("status") == "moving":
                moved += int(drop(keys=[key, f"{src}mm:player:{pid}"], args=[tid]))
        return moved, pending

    def move_state(self, home: str, source: str, target: str) -> dict[str, Any]:
        """HomeServing.move_state: passes until `source` holds none of the home's state; counts."""
        if source == target:
            return {"entries": 0, "tickets": 0, "passes": 0}
        src, dst = self._client(source), self._client(target)
        entries = tickets = 0
        try:
            for passes in range(1, MAX_PASSES + 1):
                board = self._board_pass(home, src, dst, prefix(source), prefix(target))
                waiting, pending = self._ticket_pass(home, src, dst, prefix(source), prefix(target))
                entries, tickets = entries + board, tickets + waiting
                if board == 0 and waiting == 0 and pending == 0:
                    return {"entries": entries, "tickets": tickets, "passes": passes}
                if pending:
                    time.sleep(CLAIM_WAIT_S)
        except redis.RedisError as exc:
            raise ProviderError(f"{home}: move {source} → {target}: Redis: {exc}", where=self.where,
                                hint=self.cache_hint) from None
        finally:
            src.close()
            dst.close()
        raise ProviderError(f"{home}: move {source} → {target}: the source still takes {home}'s "
                            f"state after {MAX_PASSES} passes", where=self.where,
                            hint=f"check that every app reads {self.routing_hint} ({home} → {target})")

    def state_counts(self, home: str, region: str) -> dict[str, int]:
        """HomeServing.state_counts."""
        client, p = self._client(region), prefix(region)
        try:
            members = [int(m) for m in client.zrange(p + "leaderboard", 0, -1)]
            owners = [int(pid) for key in client.scan_iter(match=p + "mm:ticket:*", count=SCAN_COUNT)
                      if client.hget(key, "status") in (b"waiting", b"moving")
                      and (pid := client.hget(key, "player_id")) is not None]
        except redis.RedisError as exc:
            raise ProviderError(f"{home}: count in {region}: Redis: {exc}", where=self.where) from None
        finally:
            client.close()
        homed = self._homed(home, sorted(set(members) | set(owners)))
        return {"entries": sum(m in homed for m in members), "waiting_tickets": sum(o in homed for o in owners)}
