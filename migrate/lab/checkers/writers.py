"""Exactly one database accepts writes for a player at any moment (DESIGN §2): checked over a history.

The history is what the databases and the cutover did, on one clock (the lab's machine):

- `Became(database, role, at)`: a database became a writer ("primary": it started as one or was
  promoted) or stopped being one ("gone": stopped, demoted, destroyed);
- `Fence(database, home, on, at)`: the database's write fence for a home was set (on) or released;
- `Accepted(database, player, home, at)`: the database committed a write to a player of that home.

A database is *writable* for a home while it is a writer and its fence for that home is off. The
checker proves, for every home:

1. no two databases were ever writable for it at the same time (a handover fences the old writer
   before the new one may take writes: fence first, promote or unfence after);
2. every accepted write was committed by a database writable for its home at that moment (a write
   that slipped past a fence, or reached a database that was not a writer, is a violation even if
   no other database took a write then).

Events at the same instant are applied in the order given (fence before promote, as the cutover does
them); a database's writability begins after its last event at that instant."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal, Union


@dataclass(frozen=True)
class Became:
    database: str
    role: Literal["primary", "gone"]
    at: float


@dataclass(frozen=True)
class Fence:
    database: str
    home: str
    on: bool
    at: float


@dataclass(frozen=True)
class Accepted:
    database: str
    player: int
    home: str
    at: float


Event = Union[Became, Fence, Accepted]


def check_one_writer(history: list[Event], homes: tuple[str, ...]) -> list[str]:
    """Violations of "one writer per player at any moment" in `history`; [] when none. `homes`: every
    home region (a database that is a writer with no fence event is writable for all of them)."""
    violations: list[str] = []
    primary: set[str] = set()
    fenced: dict[str, set[str]] = defaultdict(set)  # database → homes fenced there
    writable_since: dict[tuple[str, str], float] = {}  # (home, database) → when it became writable

    def writable(database: str, home: str) -> bool:
        return database in primary and home not in fenced[database]

    def refresh(at: float) -> None:
        for home in homes:
            now = {db for db in primary if writable(db, home)}
            for db in now:
                writable_since.setdefault((home, db), at)
            for (h, db) in [k for k in writable_since if k[0] == home and k[1] not in now]:
                del writable_since[(h, db)]
            if len(now) > 1:
                since = max(writable_since[(home, db)] for db in now)
                violations.append(f"home {home}: {len(now)} databases writable at once from t={since:.3f} "
                                  f"({', '.join(sorted(now))})")

    for event in sorted(enumerate(history), key=lambda pair: (pair[1].at, pair[0])):
        event = event[1]
        if isinstance(event, Became):
            (primary.add if event.role == "primary" else primary.discard)(event.database)
            refresh(event.at)
        elif isinstance(event, Fence):
            (fenced[event.database].add if event.on else fenced[event.database].discard)(event.home)
            refresh(event.at)
        elif isinstance(event, Accepted):
            if event.home not in homes:
                violations.append(f"player {event.player}: a write for unknown home {event.home!r}")
            elif not writable(event.database, event.home):
                why = "not a writer" if event.database not in primary else f"fenced for {event.home}"
                violations.append(f"player {event.player} (home {event.home}): a write accepted by "
                                  f"{event.database} at t={event.at:.3f} while it was {why}")
    return _unique(violations)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in items if not (i in seen or seen.add(i))]
