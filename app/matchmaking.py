"""Matchmaking: tickets in the player's home region's Redis, matched there first-in first-out in groups
of MATCH_SIZE; a ticket left waiting may later join a cross-region match (app/cross_matcher.py).

Creating, matching and cancelling each run as one Lua script, and Redis runs scripts one at a time,
so a ticket changes state exactly once (waiting → matched | cancelled) and is never in two matches,
however many API processes share the Redis. A player has at most one waiting ticket; asking again
returns it. Tickets expire TICKET_TTL_SECONDS after their last change.

Keys (prefix P = REDIS_PREFIX): P mm:ticket:<id> hash; P mm:queue:<mode> list of ticket ids (FIFO);
P mm:player:<player id> → the player's waiting ticket; P mm:match:<match id> JSON; P mm:seq counter;
P mm:modes set of queues; P mm:history stream of what happened to tickets here (checked by
migrate/lab/checkers/matches.py). A ticket may carry its player's measured round trip to each region
(`rtt_ms`): every match, local or not, is hosted where the worst player's round trip is smallest
(app/match_policy.py; the Lua below computes the same)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from app.errors import AppError
from app.ranking import utc
from app.runtime import Runtime, runtime
from app.sessions import Player, Writer

# Shared by both scripts: match waiting tickets at the head of the queue, size at a time. Tickets
# that are no longer waiting (cancelled, expired, claimed by a cross-region match) are dropped from the
# queue as they are met. minimax = app/match_policy.minimax_host (regions arrive sorted by name).
_MATCH = """
local function minimax(rtts, regions, fallback)
  local best, bworst, bsum = nil, nil, nil
  for _, region in ipairs(regions) do
    local worst, sum, ok = 0, 0, true
    for _, r in ipairs(rtts) do
      local v = r and r[region]
      if type(v) ~= 'number' then ok = false break end
      if v > worst then worst = v end
      sum = sum + v
    end
    if ok and (best == nil or worst < bworst or (worst == bworst and sum < bsum)) then
      best, bworst, bsum = region, worst, sum
    end
  end
  if best == nil then return fallback, nil end
  return best, bworst
end

local function match_queue(prefix, region, qkey, size, ttl, now, regions)
  while true do
    local picked = {}
    while #picked < size do
      local cand = redis.call('LPOP', qkey)
      if not cand then break end
      if redis.call('HGET', prefix .. 'mm:ticket:' .. cand, 'status') == 'waiting' then
        table.insert(picked, cand)
      end
    end
    if #picked < size then
      for i = #picked, 1, -1 do redis.call('LPUSH', qkey, picked[i]) end
      return
    end
    local mid = 'm-' .. region .. '-' .. redis.call('INCR', prefix .. 'mm:seq')
    local players, rtts, created = {}, {}, {}
    for i, tid in ipairs(picked) do
      local tkey = prefix .. 'mm:ticket:' .. tid
      -- ids stay strings: a Lua number (double) would round ids above 2^53
      players[i] = redis.call('HGET', tkey, 'player_id')
      local rtt = redis.call('HGET', tkey, 'rtt')
      rtts[i] = (rtt and rtt ~= '') and cjson.decode(rtt) or false
      created[i] = redis.call('HGET', tkey, 'created_at')
    end
    local host, worst = minimax(rtts, regions, region)
    local worst_text = worst and tostring(worst) or ''
    local pjson = cjson.encode(players)
    for i, tid in ipairs(picked) do
      local tkey = prefix .. 'mm:ticket:' .. tid
      redis.call('HSET', tkey, 'status', 'matched', 'match_id', mid, 'players', pjson,
                 'host_region', host, 'expected_rtt_ms', worst_text, 'updated_at', now)
      redis.call('EXPIRE', tkey, ttl)
      local pkey = prefix .. 'mm:player:' .. players[i]
      if redis.call('GET', pkey) == tid then redis.call('DEL', pkey) end
    end
    local tickets = {}
    for i, tid in ipairs(picked) do
      tickets[i] = {ticket_id = tid, owner = region, player_id = players[i], created_at = created[i],
                    rtt_ms = rtts[i]}
    end
    local match = cjson.encode({match_id = mid, kind = 'local', tickets = tickets, host = host,
                                worst_rtt_ms = worst, decided_at = now})
    redis.call('SET', prefix .. 'mm:match:' .. mid, match, 'EX', ttl)
    redis.call('XADD', prefix .. 'mm:history', 'MAXLEN', '~', 200000, '*', 'event', 'matched',
               'match', match)
  end
end
"""

# ARGV: prefix, region, ticket id, player id, mode, now, match size, ttl, rtt JSON ('' unknown),
# regions JSON (sorted) → {created (0|1), ticket id}
CREATE = _MATCH + """
local prefix, region, tid, pid, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, size, ttl, rtt, regions = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], cjson.decode(ARGV[10])
local pkey = prefix .. 'mm:player:' .. pid
local existing = redis.call('GET', pkey)
if existing and redis.call('HGET', prefix .. 'mm:ticket:' .. existing, 'status') == 'waiting' then
  return {0, existing}
end
local tkey = prefix .. 'mm:ticket:' .. tid
redis.call('HSET', tkey, 'player_id', pid, 'mode', mode, 'status', 'waiting', 'created_at', now,
           'updated_at', now, 'rtt', rtt)
redis.call('EXPIRE', tkey, ttl)
redis.call('SET', pkey, tid, 'EX', ttl)
local qkey = prefix .. 'mm:queue:' .. mode
redis.call('RPUSH', qkey, tid)
redis.call('EXPIRE', qkey, ttl)
redis.call('SADD', prefix .. 'mm:modes', mode)
match_queue(prefix, region, qkey, size, ttl, now, regions)
return {1, tid}
"""

# ARGV: prefix, ticket id, player id, now → status after the call, or 'missing' / 'forbidden'
CANCEL = """
local prefix, tid, pid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tkey = prefix .. 'mm:ticket:' .. tid
local owner = redis.call('HGET', tkey, 'player_id')
if not owner then return 'missing' end
if owner ~= pid then return 'forbidden' end
local status = redis.call('HGET', tkey, 'status')
if status ~= 'waiting' then return status end
redis.call('HSET', tkey, 'status', 'cancelled', 'updated_at', now)
redis.call('LREM', prefix .. 'mm:queue:' .. redis.call('HGET', tkey, 'mode'), 0, tid)
local pkey = prefix .. 'mm:player:' .. pid
if redis.call('GET', pkey) == tid then redis.call('DEL', pkey) end
return 'cancelled'
"""

TICKET_ID = r"^[0-9a-f]{32}$"
TicketId = Annotated[str, Path(pattern=TICKET_ID, description="ticket id (32 hex digits)")]


REGION_NAME = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: str = Field(default="default", pattern=r"^[a-z0-9-]{1,32}$", description="game mode queue")
    rtt_ms: dict[Annotated[str, Field(pattern=REGION_NAME)], Annotated[float, Field(gt=0, le=10000)]] | None = Field(
        default=None, max_length=16, description="the round trip this client measured to each region's API "
        "(ms); without it the ticket matches only in its home region's queue, hosted there")


class Match(BaseModel):
    match_id: str
    players: list[int]
    host_region: str | None = Field(default=None, description="where the match is hosted: the region "
                                    "minimising the worst player's round trip")
    expected_rtt_ms: float | None = Field(default=None, description="the worst player's round trip to the host")


class Ticket(BaseModel):
    ticket_id: str
    player_id: int
    region: str
    mode: str
    status: Literal["waiting", "matched", "cancelled"]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = Field(default=None, description="when the ticket is forgotten unless it "
                                        "changes first (TICKET_TTL_SECONDS after its last change); a 404 after "
                                        "it is an expiry, so a client knows to queue again")
    match: Match | None = None


def _scripts(rt: Runtime) -> dict:
    scripts = rt.extras.get("mm_scripts")
    if scripts is None:
        scripts = rt.extras["mm_scripts"] = {
            "create": rt.redis.register_script(CREATE), "cancel": rt.redis.register_script(CANCEL)}
    return scripts


async def _load(rt: Runtime, ticket_id: str, player_id: int) -> Ticket:
    key = f"{rt.settings.key_prefix}mm:ticket:{ticket_id}"
    async with rt.redis.pipeline(transaction=False) as pipe:  # one round trip for both
        pipe.hgetall(key)
        pipe.pttl(key)
        raw, left_ms = await pipe.execute()
    if not raw:
        raise AppError(404, "ticket_not_found", f"no ticket {ticket_id} (expired?)", ticket_id=ticket_id)
    data = {k.decode(): v.decode() for k, v in raw.items()}
    if int(data["player_id"]) != player_id:
        raise AppError(403, "forbidden", "not your ticket", ticket_id=ticket_id)
    match = None
    if data.get("match_id"):
        match = Match(match_id=data["match_id"], players=[int(p) for p in json.loads(data["players"])],
                      host_region=data.get("host_region") or None,
                      expected_rtt_ms=float(data["expected_rtt_ms"]) if data.get("expected_rtt_ms") else None)
    # claimed: a cross-region matchmaker holds it while it claims the rest of its group; to the player it waits
    status = "waiting" if data["status"] in ("claimed", "moving") else data["status"]
    return Ticket(ticket_id=ticket_id, player_id=player_id, region=rt.settings.region, mode=data["mode"],
                  status=status, created_at=utc(float(data["created_at"])),
                  updated_at=utc(float(data["updated_at"])),
                  expires_at=utc(rt.clock() + left_ms / 1000) if left_ms and left_ms > 0 else None, match=match)


def known_regions(rt: Runtime) -> list[str]:
    """This region and its peers, sorted: where a match may be hosted."""
    return sorted({rt.settings.region, *rt.settings.peer_regions})


def _require_home(rt: Runtime, player: Player) -> None:
    serving = rt.serving_region(player.home_region)
    if serving != rt.settings.region:
        raise AppError(409, "wrong_region", f"player {player.player_id} is homed in {serving}; "
                       f"queue there", home_region=player.home_region, serving_region=serving,
                       region=rt.settings.region)


router = APIRouter(tags=["matchmaking"])


@router.post("/v1/matchmaking/tickets", response_model=Ticket, status_code=201,
             responses={200: {"model": Ticket, "description": "your existing waiting ticket"},
                        401: {"description": "no/invalid token"},
                        409: {"description": "this region does not home the player"}})
async def create_ticket(body: TicketIn, player: Writer, response: Response,
                        rt: Annotated[Runtime, Depends(runtime)]) -> Ticket:
    """Queue for a match (or get your waiting ticket back); matching happens in the same step."""
    _require_home(rt, player)
    s = rt.settings
    created, ticket_id = await _scripts(rt)["create"](args=[
        s.key_prefix, s.region, uuid.uuid4().hex, player.player_id, body.mode, f"{rt.clock():.3f}",
        s.match_size, s.ticket_ttl_seconds, json.dumps(body.rtt_ms) if body.rtt_ms else "",
        json.dumps(known_regions(rt))])
    if not created:
        response.status_code = 200
    return await _load(rt, ticket_id.decode(), player.player_id)


@router.get("/v1/matchmaking/tickets/{ticket_id}", response_model=Ticket,
            responses={401: {"description": "no/invalid token"}, 403: {"description": "not yours"},
                       404: {"description": "no such ticket"}})
async def get_ticket(ticket_id: TicketId, player: Player, rt: Annotated[Runtime, Depends(runtime)]) -> Ticket:
    """Poll a ticket: waiting, or matched with the match id and its players."""
    # Tickets live in the home region's Redis: another region would answer a false 404 (after a DNS
    # shift moved the player mid-queue); the 409 sends the client to the region that has the ticket.
    _require_home(rt, player)
    return await _load(rt, ticket_id, player.player_id)


@router.delete("/v1/matchmaking/tickets/{ticket_id}", response_model=Ticket,
               responses={401: {"description": "no/invalid token"}, 403: {"description": "not yours"},
                          404: {"description": "no such ticket"},
                          409: {"description": "already matched"}})
async def cancel_ticket(ticket_id: TicketId, player: Writer,
                        rt: Annotated[Runtime, Depends(runtime)]) -> Ticket:
    """Leave the queue; idempotent; refused once the ticket is matched."""
    _require_home(rt, player)
    outcome = (await _scripts(rt)["cancel"](args=[
        rt.settings.key_prefix, ticket_id, player.player_id, f"{rt.clock():.3f}"])).decode()
    if outcome == "missing":
        raise AppError(404, "ticket_not_found", f"no ticket {ticket_id} (expired?)", ticket_id=ticket_id)
    if outcome == "forbidden":
        raise AppError(403, "forbidden", "not your ticket", ticket_id=ticket_id)
    if outcome == "claimed":
        raise AppError(409, "match_pending", "a match is being formed with this ticket; ask again",
                       ticket_id=ticket_id, retry_after_seconds=1)
    ticket = await _load(rt, ticket_id, player.player_id)
    if outcome == "matched":
        raise AppError(409, "already_matched", "the ticket is already in a match",
                       ticket_id=ticket_id, match_id=ticket.match.match_id if ticket.match else None)
    return ticket
