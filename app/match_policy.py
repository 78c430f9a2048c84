"""Which waiting tickets make a cross-region match, and where it is hosted. Pure functions: the
matchmaker (app/cross_matcher.py) and the history checker (migrate/lab/checkers/matches.py) read the
same rules.

- **Round trips are the players' own.** A ticket carries the round trip its client measured to each
  region (`rtt_ms`); nothing here averages players or regions.
- **Host = minimax.** A match is hosted where its worst player's round trip is smallest (ties: the
  smaller sum, then the region's name). An average would put a Tokyo and a Frankfurt player on a
  us-east-1 host that is fine on average and bad for one of them; FlexMatch's latency policy does that.
- **Widening.** A ticket first matches only in its own region's queue. After WIDENING's first wait it
  may join a cross-region match whose host it reaches within that step's round trip, and the limit
  widens with its wait (≤ 50 → 100 → 200 ms by default). Each player's own limit counts, not the
  group's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# (seconds waited, largest round trip to the host in ms), ascending; before the first: own region only
WIDENING: tuple[tuple[float, float], ...] = ((1.0, 50.0), (3.0, 100.0), (6.0, 200.0))


@dataclass(frozen=True)
class Candidate:
    """A waiting ticket as a matchmaker sees it: who owns it, since when, its player's round trips."""

    ticket_id: str
    player_id: int
    owner: str  # the region whose Redis holds the ticket (the player's serving home)
    created_at: float  # Unix seconds
    rtt_ms: Mapping[str, float]


@dataclass(frozen=True)
class Choice:
    """A match to claim: its tickets, the host region and the worst player's round trip there."""

    tickets: tuple[Candidate, ...]
    host: str
    worst_rtt_ms: float


def rtt_limit(waited_s: float, widening: Sequence[tuple[float, float]] = WIDENING) -> float | None:
    """The largest round trip to a cross-region host a ticket that waited `waited_s` accepts; None: none yet."""
    limit = None
    for after_s, max_ms in widening:
        if waited_s >= after_s:
            limit = max_ms
    return limit


def minimax_host(rtts: Iterable[Mapping[str, float]], regions: Iterable[str]) -> tuple[str, float] | None:
    """(host, worst round trip there): the region minimising the worst player's round trip, among the
    `regions` every player measured; ties by the smaller sum, then by name. None if no region qualifies."""
    rtts = list(rtts)
    best: tuple[float, float, str] | None = None
    for region in sorted(regions):
        if not rtts or any(region not in r for r in rtts):
            continue
        key = (max(r[region] for r in rtts), sum(r[region] for r in rtts), region)
        if best is None or key < best:
            best = key
    return None if best is None else (best[2], best[0])


def choose(anchor: Candidate, others: Iterable[Candidate], size: int, now: float, regions: Sequence[str],
           widening: Sequence[tuple[float, float]] = WIDENING) -> Choice | None:
    """The best cross-region match for `anchor` (the matchmaker's oldest own ticket): `size` tickets
    from more than one owner, whose minimax host every player reaches within their own widening limit;
    the smallest worst round trip wins, then the longest waits. None when no such group exists yet."""
    limit = {anchor.ticket_id: rtt_limit(now - anchor.created_at, widening)}
    if limit[anchor.ticket_id] is None:
        return None
    pool = [c for c in others if c.ticket_id != anchor.ticket_id]
    for c in pool:
        limit[c.ticket_id] = rtt_limit(now - c.created_at, widening)
    pool = [c for c in pool if limit[c.ticket_id] is not None]
    best: Choice | None = None
    for host in regions:
        if anchor.rtt_ms.get(host, float("inf")) > limit[anchor.ticket_id]:
            continue
        near = sorted((c for c in pool if c.rtt_ms.get(host, float("inf")) <= limit[c.ticket_id]),
                      key=lambda c: (c.rtt_ms[host], c.created_at, c.ticket_id))
        group = (anchor, *near[:size - 1])
        if len(group) < size or len({c.owner for c in group}) < 2:
            continue
        found = minimax_host((c.rtt_ms for c in group), regions)
        if found is None:
            continue
        chosen, worst = found
        # the group is judged where it would really be hosted: every player within their own limit there
        if any(c.rtt_ms[chosen] > limit[c.ticket_id] for c in group):
            continue
        choice = Choice(group, chosen, worst)
        if best is None or (worst, min(c.created_at for c in group)) < (
                best.worst_rtt_ms, min(c.created_at for c in best.tickets)):
            best = choice
    return best


def first_choice(own: Sequence[Candidate], others: Iterable[Candidate], size: int, now: float,
                 regions: Sequence[str], widening: Sequence[tuple[float, float]] = WIDENING,
                 anchors: int = 20) -> Choice | None:
    """The best match for this region's oldest ticket that has one (its first `anchors` tickets, oldest
    first): a ticket nobody can play with yet must not keep the younger ones from matching."""
    pool = list(others)
    for anchor in sorted(own, key=lambda c: (c.created_at, c.ticket_id))[:anchors]:
        found = choose(anchor, pool, size, now, regions, widening)
        if found is not None:
            return found
    return None
