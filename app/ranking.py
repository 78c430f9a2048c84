"""The leaderboard's exact total order and its packing (pure: no I/O).

Order: higher score first, then the earlier time that score was reached, then the lower player id.
(score, time) is packed into one sorted-set score that a double holds exactly (< 2**53):

    packed = score << 30 | (2**30 - 1 - seconds since 2024-01-01T00:00:00Z)

23 bits of score (0 .. 8,388,607) above 30 bits of inverted time (whole seconds, good until
2058-01-09), so a larger packed value is a better entry. Redis orders equal sorted-set scores by
member bytes ascending, so the set stores -packed, is read in ascending order, and its members are
player ids zero-padded to 20 digits: (score, time) ties come out by id ascending."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

SCORE_BITS = 23
TIME_BITS = 30
MAX_SCORE = (1 << SCORE_BITS) - 1
MAX_TIME_OFFSET = (1 << TIME_BITS) - 1
TIME_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
MAX_PACKED = (1 << (SCORE_BITS + TIME_BITS)) - 1  # == 2**53 - 1
TOP = 100
MEMBER_DIGITS = 20


def pack(score: int, at: float) -> int:
    """The sort key of `score` reached at Unix time `at` (whole seconds); ValueError out of range."""
    if not 0 <= score <= MAX_SCORE:
        raise ValueError(f"score {score} outside 0..{MAX_SCORE}")
    offset = int(at) - TIME_EPOCH
    if not 0 <= offset <= MAX_TIME_OFFSET:
        raise ValueError(f"time {at} outside the packable range")
    return (score << TIME_BITS) | (MAX_TIME_OFFSET - offset)


def unpack(packed: int) -> tuple[int, int]:
    """(score, Unix seconds) of a sort key."""
    return packed >> TIME_BITS, TIME_EPOCH + MAX_TIME_OFFSET - (packed & MAX_TIME_OFFSET)


def member(player_id: int) -> str:
    """Sorted-set member of a player: fixed width, so byte order is numeric order."""
    return f"{player_id:0{MEMBER_DIGITS}d}"


class Entry(BaseModel):
    rank: int = Field(ge=1)
    player_id: int
    score: int
    achieved_at: datetime
    sort_key: int = Field(ge=0, le=MAX_PACKED, description="packed (score, inverted time)")
    region: str


class RegionalBoard(BaseModel):
    region: str
    generated_at: datetime
    entries: list[Entry]


def utc(seconds: int | float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def entry(rank: int, player_id: int, packed: int, region: str) -> Entry:
    score, at = unpack(packed)
    return Entry(rank=rank, player_id=player_id, score=score, achieved_at=utc(at), sort_key=packed,
                 region=region)


def merge(boards: list[list[Entry]], limit: int) -> list[Entry]:
    """One ranking of several regions' entries (a player seen twice keeps the better entry)."""
    best: dict[int, Entry] = {}
    for board in boards:
        for e in board:
            seen = best.get(e.player_id)
            if seen is None or e.sort_key > seen.sort_key:
                best[e.player_id] = e
    ordered = sorted(best.values(), key=lambda e: (-e.sort_key, e.player_id))[:limit]
    return [e.model_copy(update={"rank": i + 1}) for i, e in enumerate(ordered)]
