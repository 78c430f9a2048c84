"""Score submission and the regional and global top-100 endpoints (order and packing: app/ranking.py).

Each region's Redis holds one sorted set of the players that region homes, one entry per player: their
best score. A submission is ZADD ... LT on -packed, so only an improvement replaces the stored entry (an
equal score reached later keeps the earlier time); it is acknowledged after Redis applied it, so an
acknowledged score is in the region's top-100 read at once whenever it ranks there.

The global top-100 merges this region's top-100 with each peer's (PEER_REGIONS, app/peers.py); it is
exact while homes are disjoint, because a global top-100 player is in its own region's top-100."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from app.errors import AppError
from app.peers import peer_boards
from app.ranking import MAX_SCORE, TOP, Entry, RegionalBoard, entry, member, merge, pack, unpack, utc
from app.runtime import Runtime, runtime
from app.sessions import Writer


def board_key(rt: Runtime) -> str:
    """The region's leaderboard sorted set."""
    return f"{rt.settings.key_prefix}leaderboard"


class GlobalBoard(BaseModel):
    complete: bool = Field(description="false when some region's top-100 could not be fetched")
    regions: list[str] = Field(description="regions merged into this result")
    missing: list[str] = Field(description="regions left out")
    errors: dict[str, str] = Field(description="region → why it is missing")
    age_seconds: dict[str, float] = Field(description="region → age of its top-100 in this result")
    generated_at: datetime
    entries: list[Entry]


class ScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: int = Field(ge=0, le=MAX_SCORE)


class ScoreOut(BaseModel):
    player_id: int
    region: str
    score: int = Field(description="the score submitted")
    submitted_at: datetime
    best_score: int = Field(description="the player's best (what the board holds)")
    best_achieved_at: datetime
    new_best: bool
    rank: int = Field(description="1-based rank in the regional board right after the write")
    in_top: bool = Field(description="rank <= 100")


async def regional_top(rt: Runtime, limit: int = TOP) -> list[Entry]:
    """This region's best `limit` entries, best first."""
    rows = await rt.redis.zrange(board_key(rt), 0, limit - 1, withscores=True)
    return [entry(i + 1, int(m), int(-s), rt.settings.region) for i, (m, s) in enumerate(rows)]


router = APIRouter(tags=["leaderboard"])


@router.post("/v1/scores", response_model=ScoreOut,
             responses={401: {"description": "no/invalid token"},
                        409: {"description": "this region does not home the player"}})
async def submit_score(body: ScoreIn, player: Writer, rt: Annotated[Runtime, Depends(runtime)]) -> ScoreOut:
    """Record a score for the token's player in this region's board (only its home region)."""
    serving = rt.serving_region(player.home_region)
    if serving != rt.settings.region:
        raise AppError(409, "wrong_region", f"player {player.player_id} is homed in {serving}; "
                       f"submit scores there", home_region=player.home_region, serving_region=serving,
                       region=rt.settings.region)
    now = int(rt.clock())
    try:
        packed = pack(body.score, now)
    except ValueError as exc:  # the clock left the packable range: an operator problem, not the client's
        raise AppError(503, "clock_out_of_range", str(exc)) from None
    key, name = board_key(rt), member(player.player_id)
    async with rt.redis.pipeline(transaction=True) as pipe:
        pipe.zscore(key, name)
        pipe.zadd(key, {name: -packed}, lt=True)
        pipe.zscore(key, name)
        pipe.zrank(key, name)
        before, _, stored, rank = await pipe.execute()
    best = int(-stored)
    best_score, best_at = unpack(best)
    return ScoreOut(player_id=player.player_id, region=rt.settings.region, score=body.score,
                    submitted_at=utc(now), best_score=best_score, best_achieved_at=utc(best_at),
                    new_best=before is None or best != int(-before), rank=rank + 1,
                    in_top=rank < TOP)


Limit = Annotated[int, Query(ge=1, le=TOP, description="how many entries")]


@router.get("/v1/leaderboard/regional", response_model=RegionalBoard)
async def get_regional(rt: Annotated[Runtime, Depends(runtime)], limit: Limit = TOP) -> RegionalBoard:
    """This region's top entries (strict: every acknowledged score is reflected)."""
    return RegionalBoard(region=rt.settings.region, generated_at=utc(rt.clock()),
                         entries=await regional_top(rt, limit))


@router.get("/v1/leaderboard/global", response_model=GlobalBoard)
async def get_global(rt: Annotated[Runtime, Depends(runtime)], limit: Limit = TOP) -> GlobalBoard:
    """Every region's top-100 merged; `complete` is false when a peer could not be reached."""
    peers = {r: url for r, url in rt.settings.peer_regions.items() if r != rt.settings.region}
    local, *fetched = await asyncio.gather(
        regional_top(rt, TOP), *(peer_boards(rt).get(r, url) for r, url in peers.items()))
    boards, regions, errors = [local], [rt.settings.region], {}
    ages = {rt.settings.region: 0.0}
    for result in fetched:
        if result.entries is None:
            errors[result.region] = result.error or "unavailable"
            continue
        boards.append(result.entries)
        regions.append(result.region)
        ages[result.region] = round(result.age(), 3)
    return GlobalBoard(complete=not errors, regions=sorted(regions), missing=sorted(errors),
                       errors=errors, age_seconds=ages, generated_at=utc(rt.clock()),
                       entries=merge(boards, limit))
