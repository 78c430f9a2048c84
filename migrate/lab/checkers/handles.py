"""Handles are globally unique (DESIGN §2): checked over a history of sign-up attempts.

Each attempt is recorded by the client that made it: which region it went to, the handle, when it
started and ended (one monotonic clock: the recorder's), and the outcome (201 with the new player's
id, 409 taken, or anything else). With the final state of the authority (handle → player id) and of
the players (id → handle), the checker proves:

- at most one attempt per handle won (201), and the winner holds the name in the final state;
- every refusal (409) names a handle somebody holds: a winner of the history or an owner from before;
- no refusal came before its winner could have committed: a 409 that ended before the winner's
  attempt started means the name was refused while free (real-time order, as in a linearizable
  register);
- every attempt got a definite answer (201 or 409): anything else is a failed request."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class SignUpAttempt:
    region: str  # the region whose API took the request
    handle: str  # the name asked for
    started: float  # recorder's monotonic clock, before sending
    ended: float  # recorder's monotonic clock, after the answer (or the failure)
    status: int | None  # HTTP status; None when no answer came (timeout, connection lost)
    player_id: int | None = None  # the new player's id when status is 201


def check_handles(history: list[SignUpAttempt], claims: dict[str, int], players: dict[int, str],
                  owned_before: frozenset[str] = frozenset()) -> list[str]:
    """Violations of handle uniqueness in `history` given the final `claims` and `players`; [] when none.
    `owned_before`: handles held before the history began (a 409 on them needs no winner)."""
    violations: list[str] = []
    by_handle: dict[str, list[SignUpAttempt]] = defaultdict(list)
    for attempt in history:
        by_handle[attempt.handle].append(attempt)
        if attempt.status not in (201, 409):
            violations.append(f"{attempt.handle!r} via {attempt.region}: no definite answer "
                              f"(status {attempt.status}): a sign-up must win or be refused")
    for handle, attempts in sorted(by_handle.items()):
        winners = [a for a in attempts if a.status == 201]
        refusals = [a for a in attempts if a.status == 409]
        if len(winners) > 1:
            violations.append(f"{handle!r} won {len(winners)} times: " + ", ".join(
                f"player {a.player_id} via {a.region}" for a in winners))
        for winner in winners:
            if claims.get(handle) != winner.player_id:
                violations.append(f"{handle!r}: the authority names player {claims.get(handle)}, not the "
                                  f"winner {winner.player_id} ({winner.region})")
            if players.get(winner.player_id) != handle:
                violations.append(f"{handle!r}: winner {winner.player_id} ({winner.region}) is called "
                                  f"{players.get(winner.player_id)!r} in the players table")
        if refusals and not winners and handle not in owned_before:
            violations.append(f"{handle!r} was refused {len(refusals)} times but nobody holds it")
        for refusal in refusals:
            if winners and refusal.ended < min(w.started for w in winners) and handle not in owned_before:
                violations.append(f"{handle!r} refused via {refusal.region} before its winner's sign-up "
                                  f"had started: it was refused while free")
    return violations
