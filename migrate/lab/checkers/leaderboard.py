"""The leaderboards' guarantees (DESIGN §2), checked over a history of what players were told and what
readers read, against a brute-force oracle. Times are the clients' own (one clock: the lab machine).

- `Ack`: a score submission answered 200: the player's best sort key after it (app/ranking.py: a larger
  key is a better entry), the region that took it, when it was sent and when the answer came back.
- `Read`: a top-100 read (`regional` of one region, or `global` through one region) with its entries
  (player, sort key), when it was sent and answered, and whether a global read said it was complete.

Checks:
1. **strict regional**: a regional read sent after an acknowledged score's answer reflects it: the
   player is there with that key or better, unless 100 entries all better than it fill the read;
2. **no phantom**: every entry read is some submission's key that had been sent before the read answered;
3. **global = oracle when quiet**: a complete global read sent at least `bound_s` after the last
   acknowledged score equals the oracle: the best 100 of every player's best acknowledged key;
4. **one entry per player** across the regions' boards (`check_one_entry`, e.g. after a re-home).
`convergence` measures, under load, how long each acknowledged top-100 score took to show in each
region's global reads."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

TOP = 100


@dataclass(frozen=True)
class Ack:
    player: int
    region: str
    key: int  # the player's best sort key after this write (what the board must hold)
    sent_at: float
    acked_at: float


@dataclass(frozen=True)
class Sent:
    """A submission sent (answered or not): the key it would store; entries may come only from these."""

    player: int
    key: int
    sent_at: float


@dataclass(frozen=True)
class Read:
    kind: Literal["regional", "global"]
    region: str  # the region read from
    sent_at: float
    answered_at: float
    entries: tuple[tuple[int, int], ...]  # (player, sort key), best first
    complete: bool = True


def oracle(acks: list[Ack], at: float | None = None, limit: int = TOP) -> list[tuple[int, int]]:
    """The best `limit` of every player's best key acknowledged by `at` (default: all), best first."""
    best: dict[int, int] = {}
    for a in acks:
        if at is None or a.acked_at <= at:
            best[a.player] = max(best.get(a.player, -1), a.key)
    return sorted(best.items(), key=lambda pk: (-pk[1], pk[0]))[:limit]


def check_strict(acks: list[Ack], reads: list[Read]) -> list[str]:
    """Regional reads that missed an acknowledged score (check 1)."""
    violations = []
    by_region: dict[str, list[Ack]] = defaultdict(list)
    for a in acks:
        by_region[a.region].append(a)
    for r in reads:
        if r.kind != "regional":
            continue
        held = dict(r.entries)
        # the 100th entry in the board's total order (key descending, then player id ascending)
        floor = (r.entries[-1][1], -r.entries[-1][0]) if len(r.entries) >= TOP else (-1, 0)
        for a in by_region[r.region]:
            if a.acked_at > r.sent_at:
                continue
            if held.get(a.player, -1) >= a.key:
                continue
            if a.player not in held and floor > (a.key, -a.player):
                continue  # 100 better entries fill the board (equal keys: lower ids first): not top-100
            violations.append(f"regional read of {r.region} sent at {r.sent_at:.3f} shows player {a.player} "
                              f"{'at ' + str(held[a.player]) if a.player in held else 'absent'}, but key {a.key} "
                              f"was acknowledged at {a.acked_at:.3f}")
    return violations


def check_no_phantom(sent: list[Sent], reads: list[Read], initial: dict[int, int] | None = None) -> list[str]:
    """Entries that no submission (or the initial board) could have produced (check 2)."""
    keys: dict[tuple[int, int], float] = {(p, k): float("-inf") for p, k in (initial or {}).items()}
    for s in sent:
        keys[(s.player, s.key)] = min(keys.get((s.player, s.key), float("inf")), s.sent_at)
    return [f"{r.kind} read of {r.region} at {r.sent_at:.3f} shows player {p} with key {k}, never submitted"
            for r in reads for p, k in r.entries if keys.get((p, k), float("inf")) > r.answered_at]


def check_global_quiet(acks: list[Ack], reads: list[Read], bound_s: float) -> list[str]:
    """Complete global reads sent `bound_s` after the last acknowledgement that differ from the oracle (check 3)."""
    if not acks:
        return []
    quiet_from = max(a.acked_at for a in acks) + bound_s
    expected = oracle(acks)
    violations = []
    for r in reads:
        if r.kind == "global" and r.complete and r.sent_at >= quiet_from and list(r.entries) != expected:
            wrong = next((i for i, (x, y) in enumerate(zip(r.entries, expected)) if x != y),
                         min(len(r.entries), len(expected)))
            violations.append(f"global read through {r.region} at {r.sent_at:.3f} ({r.sent_at - quiet_from + bound_s:.1f} s "
                              f"after the last score) differs from the oracle at rank {wrong + 1}")
    return violations


def convergence(acks: list[Ack], reads: list[Read]) -> list[float]:
    """For each acknowledged score in the oracle's top-100 when acknowledged, and each region read
    through: seconds from its answer to the first complete global read sent after it that shows it.
    A score pushed out of the oracle's top-100 (by later scores) before any read showed it is not
    counted for that region: there was nothing left to converge to."""
    ordered = sorted(acks, key=lambda a: a.acked_at)
    times = [a.acked_at for a in ordered]
    snapshots, best = [], {}
    for a in ordered:  # the oracle's top-100 after each acknowledgement
        best[a.player] = max(best.get(a.player, -1), a.key)
        snapshots.append(dict(sorted(best.items(), key=lambda pk: (-pk[1], pk[0]))[:TOP]))

    def expected_at(t: float) -> dict[int, int]:
        i = bisect_right(times, t)
        return snapshots[i - 1] if i else {}

    by_region: dict[str, list[Read]] = defaultdict(list)
    for r in sorted(reads, key=lambda r: r.sent_at):
        if r.kind == "global" and r.complete:
            by_region[r.region].append(r)
    delays = []
    for i, a in enumerate(ordered):
        if snapshots[i].get(a.player) != a.key:
            continue  # not top-100 (or not the player's best) when acknowledged: nothing to converge to
        for region_reads in by_region.values():
            for r in region_reads[bisect_left([x.sent_at for x in region_reads], a.acked_at):]:
                if dict(r.entries).get(a.player, -1) >= a.key:
                    delays.append(r.sent_at - a.acked_at)
                    break
                if expected_at(r.sent_at).get(a.player, -1) < a.key:
                    break  # displaced before this region showed it
    return delays


def check_one_entry(boards: dict[str, list[int]]) -> list[str]:
    """Players on more than one region's board (region → the players its board holds) (check 4)."""
    where: dict[int, list[str]] = defaultdict(list)
    for region, players in boards.items():
        for p in players:
            where[p].append(region)
    return [f"player {p} has entries in {sorted(regions)}" for p, regions in sorted(where.items()) if len(regions) > 1]
