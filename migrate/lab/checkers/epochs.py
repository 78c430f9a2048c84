"""No write is accepted with a stale home epoch (DESIGN §2 session row, §6b): checked over a history.

- `Bump(home, epoch, effective_at)`: the home was re-homed and its epoch became `epoch`; from
  `effective_at` on every region reads the new routing (the lab: the routing file written; AWS: the
  parameter every task polls, plus one poll).
- `WriteTry(player, home, token_epoch, region, sent_at, accepted)`: a write a client sent under a token
  of `token_epoch`, and whether it was accepted (2xx).

A write sent at or after a bump's `effective_at` that carries an older epoch than the bump's and was
accepted is a violation, whichever region took it (the lost home, back, included)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bump:
    home: str
    epoch: int
    effective_at: float


@dataclass(frozen=True)
class WriteTry:
    player: int
    home: str
    token_epoch: int
    region: str
    sent_at: float
    accepted: bool


def check_stale_epochs(bumps: list[Bump], writes: list[WriteTry]) -> list[str]:
    """Accepted writes that carried an epoch older than one already in force for their home; [] when none."""
    violations = []
    for w in writes:
        if not w.accepted:
            continue
        in_force = max((b.epoch for b in bumps if b.home == w.home and b.effective_at <= w.sent_at), default=1)
        if w.token_epoch < in_force:
            violations.append(f"{w.region} accepted a write for player {w.player} of home {w.home} with epoch "
                              f"{w.token_epoch} at {w.sent_at:.3f}, when epoch {in_force} was in force")
    return violations
