"""The ledger of writes the game acknowledged, and the end-of-run check that each one is still there.

Profile writes: every PATCH writes a value unique to the run into the player's profile under a key
unique to the run (`load_<run id>`), so the check is exact and two runs at once never confuse each
other. Per player only the last acknowledged value can be checked (earlier ones were overwritten
by the player's own later writes). Against the WRITER:
- the stored value is the last acknowledged one → found;
- it is a value whose write got no answer (timeout, reset, 5xx, still in flight at the end): that
  write may have committed after the acknowledged one → unknown (never lost);
- anything else (an older value, no value, no row) → lost.
A 4xx answer is a refusal (nothing written) and is not an unknown.

Scores: the board keeps each player's best (ZADD LT), so the check is "the stored best ≥ the best
acknowledged score". A write without an answer can only raise the stored best, so it never excuses a
lower one: lower or missing → lost; a region's Redis unreachable → unknown."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_EXAMPLES = 10
MAX_LISTED = 10000  # every lost write is listed (kind, player, region, when acknowledged) up to this many

# (player ids, profile key) → player id → stored value (None: key absent). Missing ids: no row.
ProfileSource = Callable[[list[int], str], dict[int, Any]]
# player id → region that acknowledged → player id → (best stored score or None, every Redis answered)
ScoreSource = Callable[[dict[int, str]], dict[int, tuple[int | None, bool]]]


@dataclass
class _ProfileState:
    last_ack: tuple[int, str, str | None, str | None, float] | None = None  # (order, value, lsn, region, at)
    acked: int = 0
    unanswered: set[str] = field(default_factory=set)  # values whose write got no answer
    in_flight: set[str] = field(default_factory=set)


@dataclass
class _ScoreState:
    best: int | None = None
    region: str | None = None  # the region that acknowledged the best
    at: float = 0.0
    acked: int = 0
    unanswered: int = 0
    in_flight: int = 0


class Ledger:
    """Acknowledged, refused and unanswered writes, per player. Not thread-safe: one event loop."""

    def __init__(self, run_id: str, clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self.profile_key = f"load_{run_id}"
        self.clock = clock
        self._order = itertools.count(1)
        self._values = itertools.count(1)
        self.profiles: dict[int, _ProfileState] = {}
        self.scores: dict[int, _ScoreState] = {}
        self.refused = 0

    # -- profile writes -------------------------------------------------------------------------

    def next_profile_value(self, player_id: int) -> str:
        """A value no other write of this run uses."""
        return f"{self.run_id}:{player_id}:{next(self._values)}"

    def profile_sent(self, player_id: int, value: str) -> None:
        self.profiles.setdefault(player_id, _ProfileState()).in_flight.add(value)

    def profile_acked(self, player_id: int, value: str, lsn: str | None, region: str | None) -> None:
        state = self.profiles.setdefault(player_id, _ProfileState())
        state.in_flight.discard(value)
        state.acked += 1
        state.last_ack = (next(self._order), value, lsn, region, self.clock())

    def profile_refused(self, player_id: int, value: str) -> None:
        """A 4xx: the server refused it, nothing was written."""
        self.profiles.setdefault(player_id, _ProfileState()).in_flight.discard(value)
        self.refused += 1

    def profile_unanswered(self, player_id: int, value: str) -> None:
        """No answer (timeout, reset, 5xx): it may or may not have been applied."""
        state = self.profiles.setdefault(player_id, _ProfileState())
        state.in_flight.discard(value)
        state.unanswered.add(value)

    def may_have_changed(self, player_id: int) -> bool:
        """True when some write of this player got no answer (so a read-back cannot be judged)."""
        state = self.profiles.get(player_id)
        return bool(state and (state.unanswered or state.in_flight))

    def last_profile_value(self, player_id: int) -> str | None:
        state = self.profiles.get(player_id)
        return state.last_ack[1] if state and state.last_ack else None

    # -- scores ---------------------------------------------------------------------------------

    def score_sent(self, player_id: int) -> None:
        self.scores.setdefault(player_id, _ScoreState()).in_flight += 1

    def score_acked(self, player_id: int, score: int, region: str) -> None:
        state = self.scores.setdefault(player_id, _ScoreState())
        state.in_flight -= 1
        state.acked += 1
        if state.best is None or score > state.best:
            state.best, state.region, state.at = score, region, self.clock()

    def score_refused(self, player_id: int) -> None:
        self.scores.setdefault(player_id, _ScoreState()).in_flight -= 1
        self.refused += 1

    def score_unanswered(self, player_id: int) -> None:
        state = self.scores.setdefault(player_id, _ScoreState())
        state.in_flight -= 1
        state.unanswered += 1

    # -- totals ---------------------------------------------------------------------------------

    @property
    def acknowledged(self) -> int:
        return sum(s.acked for s in self.profiles.values()) + sum(s.acked for s in self.scores.values())

    @property
    def unanswered(self) -> int:
        """Writes that never got an answer, including those still in flight."""
        return (sum(len(s.unanswered) + len(s.in_flight) for s in self.profiles.values())
                + sum(s.unanswered + s.in_flight for s in self.scores.values()))

    # -- the check ------------------------------------------------------------------------------

    def check(self, profiles: ProfileSource | None, scores: ScoreSource | None) -> dict[str, Any]:
        """Check every acknowledged write against the sources; the `ledger` section of the report.

        A source that is None or raises makes its writes unknown (the reason is kept)."""
        out = {"acknowledged": self.acknowledged, "checked": 0, "found": 0, "lost": 0, "unknown": 0,
               "unacknowledged": self.unanswered, "refused": self.refused, "profile_key": self.profile_key,
               "by_kind": {}, "unknown_reasons": {}, "examples": [], "lost_writes": []}
        self._check_profiles(profiles, out)
        self._check_scores(scores, out)
        return out

    def _tally(self, out: dict[str, Any], kind: str, verdict: str, reason: str | None = None,
               example: dict[str, Any] | None = None) -> None:
        out["checked"] += 1
        out[verdict] += 1
        per = out["by_kind"].setdefault(kind, {"acknowledged": 0, "checked": 0, "found": 0, "lost": 0,
                                               "unknown": 0})
        per["checked"] += 1
        per[verdict] += 1
        if reason:
            out["unknown_reasons"][reason] = out["unknown_reasons"].get(reason, 0) + 1
        if example is not None and len(out["examples"]) < MAX_EXAMPLES:
            out["examples"].append(example)
        if verdict == "lost" and example is not None and len(out.setdefault("lost_writes", [])) < MAX_LISTED:
            out["lost_writes"].append({k: example[k] for k in ("kind", "player_id", "region", "acked_at")})

    def _check_profiles(self, source: ProfileSource | None, out: dict[str, Any]) -> None:
        entries = {pid: s for pid, s in self.profiles.items() if s.last_ack is not None}
        out["by_kind"]["profile"] = {"acknowledged": sum(s.acked for s in self.profiles.values()),
                                     "checked": 0, "found": 0, "lost": 0, "unknown": 0}
        if not entries:
            return
        stored: dict[int, Any] | None = None
        reason = "no writer to check against"
        if source is not None:
            try:
                stored = source(sorted(entries), self.profile_key)
            except Exception as exc:  # noqa: BLE001 — the writer unreachable: unknown, not lost
                reason = f"writer unreachable: {type(exc).__name__}"
        for pid, state in sorted(entries.items()):
            _, value, lsn, region, at = state.last_ack
            if stored is None:
                self._tally(out, "profile", "unknown", reason)
                continue
            got = stored.get(pid, _NO_ROW)
            if got == value:
                self._tally(out, "profile", "found")
            elif got in state.unanswered or got in state.in_flight:
                self._tally(out, "profile", "unknown", "overwritten by a write that got no answer")
            else:
                self._tally(out, "profile", "lost", example={
                    "kind": "profile", "player_id": pid, "key": self.profile_key, "expected": value,
                    "stored": None if got is _NO_ROW else got, "row_missing": got is _NO_ROW,
                    "lsn": lsn, "region": region, "acked_at": _iso(at)})

    def _check_scores(self, source: ScoreSource | None, out: dict[str, Any]) -> None:
        entries = {pid: s for pid, s in self.scores.items() if s.best is not None}
        out["by_kind"]["score"] = {"acknowledged": sum(s.acked for s in self.scores.values()),
                                   "checked": 0, "found": 0, "lost": 0, "unknown": 0}
        if not entries:
            return
        stored: dict[int, tuple[int | None, bool]] | None = None
        reason = "no Redis to check against"
        if source is not None:
            try:
                stored = source({pid: s.region for pid, s in entries.items()})
            except Exception as exc:  # noqa: BLE001
                reason = f"redis unreachable: {type(exc).__name__}"
        for pid, state in sorted(entries.items()):
            if stored is None:
                self._tally(out, "score", "unknown", reason)
                continue
            best, complete = stored.get(pid, (None, False))
            if best is not None and best >= state.best:
                self._tally(out, "score", "found")
            elif not complete:
                self._tally(out, "score", "unknown", "a region's Redis did not answer")
            else:
                self._tally(out, "score", "lost", example={
                    "kind": "score", "player_id": pid, "expected_best_at_least": state.best,
                    "stored_best": best, "region": state.region, "acked_at": _iso(state.at)})


class _NoRow:
    def __repr__(self) -> str:
        return "<no row>"


_NO_ROW = _NoRow()


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


# -- the real sources -------------------------------------------------------------------------------


def writer_profiles(dsn: str, *, chunk: int = 5000, home_writers: dict[str, str] | None = None) -> ProfileSource:
    """Profiles read from the writer (the source of truth): the origin's, and for a home that cutover
    gave its own writer (`home_writers`: home → DSN), that writer's (the origin's copy of those rows
    trails it by the reverse stream)."""

    def read(ids: list[int], key: str) -> dict[int, Any]:
        import psycopg

        out: dict[int, Any] = {}
        homes: dict[str, list[int]] = {}
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            for i in range(0, len(ids), chunk):
                rows = conn.execute("SELECT id, profile ->> %s, home_region FROM players WHERE id = ANY(%s)",
                                    (key, ids[i:i + chunk])).fetchall()
                for pid, value, home in rows:
                    out[pid] = value
                    homes.setdefault(home, []).append(pid)
        for home, home_dsn in (home_writers or {}).items():
            moved = homes.get(home, [])
            with psycopg.connect(home_dsn, autocommit=True, connect_timeout=5) as conn:
                for i in range(0, len(moved), chunk):
                    rows = conn.execute("SELECT id, profile ->> %s FROM players WHERE id = ANY(%s)",
                                        (key, moved[i:i + chunk])).fetchall()
                    out.update({row[0]: row[1] for row in rows})
        return out

    return read


def board_member(player_id: int) -> str:
    """The leaderboard's sorted-set member of a player (the app's own encoding)."""
    from app.ranking import member

    return member(player_id)


def board_score(zscore: float) -> int:
    """The game score held by a leaderboard entry (sets store the negated packed key)."""
    from app.ranking import unpack

    return unpack(int(-zscore))[0]


def redis_scores(urls: dict[str, str], prefix: Callable[[str], str] = lambda r: f"game:{r}:") -> ScoreSource:
    """Best stored scores from every region's Redis (entries move between regions when players are
    re-homed, so every reachable board is looked at; `complete` is false when one did not answer)."""

    def read(players: dict[int, str]) -> dict[int, tuple[int | None, bool]]:
        import redis

        ids = sorted(players)
        best: dict[int, int | None] = {pid: None for pid in ids}
        complete = True
        for region, url in urls.items():
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
            try:
                pipe = client.pipeline(transaction=False)
                for pid in ids:
                    pipe.zscore(f"{prefix(region)}leaderboard", board_member(pid))
                values = pipe.execute()
            except redis.RedisError:
                complete = False
                continue
            finally:
                client.close()
            for pid, value in zip(ids, values):
                if value is not None:
                    score = board_score(value)
                    if best[pid] is None or score > best[pid]:
                        best[pid] = score
        return {pid: (best[pid], complete) for pid in ids}

    return read
