"""The shadow diff of a ranked list whose entries lag within a bound (e.g. the global leaderboard).

The global top-100 is a merge of regional top-100s, each region's own fresh and its peers' cached
for up to their documented bound (`staleness_seconds`). Two regions answering the same request may
hold different cache ages, and a score landing between the samples shifts every position below it.
Compared position by position, such answers differ in every field below the change although both
are correct for the bound; compared by key, they differ in exactly the players that changed.

So a keyed list is compared per key (a player), not per index. Each entry carries a version: when
its value was set (a best score's `achieved_at`; a best only improves, so a newer version is newer
data). A difference is *explained by the bound* when the side that differs holds the older value and
the newer value is younger than the bound, i.e. the lagging side may not have seen it yet:

- an entry on both sides with different values: explained when the newer side's version is within
  the bound; otherwise a real mismatch (a wrong score, region or sort key at an old version);
- an entry on one side only: explained when that entry's version is within the bound (it arrived
  recently), or when it ranks below the other side's last entry, the other side is full (it holds
  the request's limit) and holds an entry within the bound that can have pushed it out; otherwise a
  real mismatch (a player missing from a list that had room for them);
- a key twice in one answer, or ranks that are not 1..n in the answer's own order: a real mismatch.

The candidate is compared with both primary samples (they bracket it in time): an entry equal to
what either primary held needs no explanation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class KeyedList:
    """How one list field of an answer is compared (migration.toml `keyed_lists`)."""

    key: str  # the entry field that names an entry (e.g. "player_id")
    version: str  # the entry field saying when its value was set: ISO 8601 time or Unix seconds
    order: str = ""  # the field the list is ranked by, "-" first for descending (e.g. "-sort_key")
    rank: str = "rank"  # the positional field (1..n), checked within each answer, never across
    limit_param: str = "limit"  # the query parameter capping the list's length
    default_limit: int = 100  # the cap when the request names none

    @classmethod
    def parse(cls, raw: Any) -> KeyedList:
        """From the switch document; ValueError naming the first bad key."""
        if not isinstance(raw, dict):
            raise ValueError("a keyed list must be an object with 'key' and 'version'")
        for name in ("key", "version"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise ValueError(f"a keyed list needs '{name}' (an entry field name)")
        limit = raw.get("default_limit", 100)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError("'default_limit' must be a whole number >= 1")
        return cls(key=raw["key"], version=raw["version"], order=str(raw.get("order", "")),
                   rank=str(raw.get("rank", "rank")), limit_param=str(raw.get("limit_param", "limit")),
                   default_limit=limit)

    def public(self) -> dict[str, Any]:
        return {"key": self.key, "version": self.version, "order": self.order, "rank": self.rank,
                "limit_param": self.limit_param, "default_limit": self.default_limit}

    def limit(self, target: str) -> int:
        """The list's cap for a request to `target` (path and query)."""
        values = parse_qs(urlsplit(target).query).get(self.limit_param)
        try:
            return int(values[0]) if values else self.default_limit
        except ValueError:
            return self.default_limit


@dataclass(frozen=True)
class KeyedOutcome:
    """One keyed list compared."""

    mismatched: tuple[FieldPath, ...]  # (list, "<key>", field) or (list, "$shape"): real differences
    explained: int  # differences explained by the bound (the lagging side had not seen a newer value)


def _version(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _entries(answer: Any, name: str) -> list[dict] | None:
    items = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        return None
    return items


def _shape_problems(items: list[dict], spec: KeyedList) -> list[str]:
    """What is wrong with one answer's list on its own: duplicate keys, ranks not 1..n, out of order."""
    problems = []
    keys = [e.get(spec.key) for e in items]
    if len(set(map(repr, keys))) != len(keys):
        problems.append("duplicate")
    if spec.rank and any(e.get(spec.rank) != i + 1 for i, e in enumerate(items)):
        problems.append(spec.rank)
    if spec.order:
        field, descending = spec.order.lstrip("-"), spec.order.startswith("-")
        values = [e.get(field) for e in items]
        try:
            ordered = all((a >= b) if descending else (a <= b) for a, b in zip(values, values[1:]))
        except TypeError:
            ordered = False
        if not ordered:
            problems.append("order")
    return problems


def _ranks_below(entry: dict, last: dict, spec: KeyedList) -> bool:
    """True when `entry` ranks after `last` (the other list's last entry) by the list's order."""
    if not spec.order:
        return False
    field, descending = spec.order.lstrip("-"), spec.order.startswith("-")
    a, b = entry.get(field), last.get(field)
    try:
        return (a < b) if descending else (a > b)
    except TypeError:
        return False


def _same(a: dict, b: dict, spec: KeyedList) -> bool:
    """Equal apart from the positional rank (a shift above moves it; it is checked per answer)."""
    return {k: v for k, v in a.items() if k != spec.rank} == {k: v for k, v in b.items() if k != spec.rank}


def compare_keyed(name: str, primary: Any, second: Any, candidate: Any, spec: KeyedList, *,
                  now: float, bound_seconds: float, limit: int) -> KeyedOutcome:
    """Compare the list `name` of three parsed answers (primary, primary again, candidate) by key.
    now: Unix seconds of the comparison; bound_seconds: how far the candidate may lag (see module doc)."""
    lists = [_entries(answer, name) for answer in (primary, second, candidate)]
    if any(items is None for items in lists):
        kinds = {type(items).__name__ for items in lists}
        return KeyedOutcome(((name, "$shape"),) if len(kinds) > 1 else (), 0)
    p1, p2, cand = lists
    mismatched: list[FieldPath] = [(name, "$" + p) for p in _shape_problems(cand, spec)]
    recent_after = now - bound_seconds - 1  # versions are whole seconds in the answers

    def recent(entry: dict) -> bool:
        version = _version(entry.get(spec.version))
        return version is not None and version >= recent_after

    primary_by_key = {repr(e.get(spec.key)): e for e in p1}
    primary_by_key.update({repr(e.get(spec.key)): e for e in p2})  # the later sample wins
    candidate_by_key = {repr(e.get(spec.key)): e for e in cand}
    either = {repr(e.get(spec.key)): [e] for e in p1}
    for e in p2:
        either.setdefault(repr(e.get(spec.key)), []).append(e)
    explained = 0

    def pushed_out(entry: dict, other: list[dict]) -> bool:
        return (len(other) >= limit and bool(other) and _ranks_below(entry, other[-1], spec)
                and any(recent(e) for e in other))

    for key, c in candidate_by_key.items():
        seen = either.get(key)
        if seen is None:  # the candidate has an entry neither primary sample had
            if recent(c) or pushed_out(c, p2):
                explained += 1
            else:
                mismatched.append((name, key))
            continue
        if any(_same(c, p, spec) for p in seen):
            continue
        p = primary_by_key[key]
        cv, pv = _version(c.get(spec.version)), _version(p.get(spec.version))
        newer = p if (pv or 0) >= (cv or 0) else c
        if cv is not None and pv is not None and cv != pv and recent(newer):
            explained += 1
        else:
            mismatched.extend((name, key, field) for field in sorted(set(c) | set(p))
                              if field != spec.rank and c.get(field) != p.get(field))
    for key, p in primary_by_key.items():
        if key in candidate_by_key:
            continue
        if recent(p) or pushed_out(p, cand):  # arrived after the candidate's view, or fell off it
            explained += 1
        else:
            mismatched.append((name, key))
    return KeyedOutcome(tuple(mismatched), explained)
