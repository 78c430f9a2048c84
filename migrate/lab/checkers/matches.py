"""No ticket in two matches, and every cross-region match formed by the rules: checked over a history.

The history is what every region's Redis recorded in its `mm:history` stream (app/match_claims.py,
app/matchmaking.py), read back with `read_history`, plus what the players saw (`Seen`: a ticket
polled as matched to a match id). The checker proves:

1. **one match per ticket**: no ticket is in two formed matches (a local match, or a cross-region
   claim whose coordinator decided `committed`), and no player saw a ticket in a match other than
   the one formed for it;
2. **all-or-none claims**: a committed claim's every ticket was claimed under that claim at its owner
   before the decision; an owner applied `committed` only for a committed claim and released only an
   aborted one;
3. **minimax host**: every match whose players all measured every region is hosted where the worst
   player's round trip is smallest (app/match_policy.minimax_host);
4. **widening**: in a cross-region match every player was within their own limit at the host, for
   the time they had waited when the group was chosen.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from app.match_policy import minimax_host, rtt_limit

HISTORY_KEY = "mm:history"


@dataclass(frozen=True)
class Recorded:
    """One entry of a region's mm:history stream: `event` is matched | claimed | decided | committed |
    released; `fields` its other fields as recorded."""

    region: str
    entry_id: str
    event: str
    fields: dict[str, str]


@dataclass(frozen=True)
class Seen:
    """A player's poll found `ticket_id` matched into `match_id`."""

    ticket_id: str
    match_id: str


def read_history(redis_client: Any, prefix: str, region: str) -> list[Recorded]:
    """Every entry of `region`'s stream (a synchronous redis client), oldest first."""
    entries = []
    for entry_id, raw in redis_client.xrange(f"{prefix}{HISTORY_KEY}"):
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        entries.append(Recorded(region, entry_id.decode(), fields.pop("event"), fields))
    return entries


def formed_matches(history: list[Recorded]) -> list[dict[str, Any]]:
    """Every match formed: local matches and committed cross-region decisions, as recorded."""
    matches = []
    for r in history:
        if r.event == "matched":
            matches.append(json.loads(r.fields["match"]))
        elif r.event == "decided" and r.fields.get("outcome") == "committed":
            matches.append({**json.loads(r.fields["match"]), "claim_id": r.fields["claim_id"]})
    return matches


def check_matches(history: list[Recorded], seen: list[Seen] = (), regions: tuple[str, ...] = ()) -> list[str]:
    """Violations in `history` (all regions' streams) and the players' observations; [] when none.
    `regions`: where matches may be hosted (default: every region a match names)."""
    violations: list[str] = []
    matches = formed_matches(history)
    match_of: dict[str, str] = {}
    for match in matches:
        for t in match["tickets"]:
            earlier = match_of.setdefault(t["ticket_id"], match["match_id"])
            if earlier != match["match_id"]:
                violations.append(f"ticket {t['ticket_id']} is in two matches: {earlier} and {match['match_id']}")
    for s in seen:
        formed = match_of.get(s.ticket_id)
        if formed != s.match_id:
            violations.append(f"a player saw ticket {s.ticket_id} in match {s.match_id}, but "
                              + (f"it was formed in {formed}" if formed else "no such match was formed"))
    violations += _claims_all_or_none(history)
    hosts = regions or tuple(sorted({r for m in matches for t in m["tickets"] for r in (t.get("rtt_ms") or {})}))
    for match in matches:
        violations += _host_and_widening(match, hosts)
    return violations


def _claims_all_or_none(history: list[Recorded]) -> list[str]:
    violations = []
    claimed: dict[str, set[str]] = defaultdict(set)  # claim → tickets claimed so far (in stream order per owner)
    decided: dict[str, str] = {}
    for r in history:
        if r.event == "decided":
            decided[r.fields["claim_id"]] = r.fields["outcome"]
    for r in history:
        cid = r.fields.get("claim_id", "")
        if r.event == "claimed":
            claimed[cid].update(json.loads(r.fields["tickets"]))
        elif r.event == "committed" and decided.get(cid) != "committed":
            violations.append(f"{r.region} matched tickets {json.loads(r.fields['tickets'])} under claim {cid}, "
                              f"which was {decided.get(cid, 'never decided')}")
        elif r.event == "released" and decided.get(cid) == "committed":
            violations.append(f"{r.region} released tickets {json.loads(r.fields['tickets'])} of committed claim {cid}")
    for r in history:
        if r.event == "decided" and r.fields["outcome"] == "committed":
            match = json.loads(r.fields["match"])
            missing = {t["ticket_id"] for t in match["tickets"]} - claimed[r.fields["claim_id"]]
            if missing:
                violations.append(f"claim {r.fields['claim_id']} was committed without claiming {sorted(missing)}")
    return violations


def _host_and_widening(match: dict[str, Any], regions: tuple[str, ...]) -> list[str]:
    tickets = match["tickets"]
    rtts = [t.get("rtt_ms") for t in tickets]
    if not all(rtts) or not all(all(region in r for region in regions) for r in rtts):
        return []  # a player who measured no round trips: hosted in its home region, nothing to prove
    best = minimax_host(rtts, regions)
    violations = []
    if best is None or match["host"] != best[0]:
        violations.append(f"match {match['match_id']} is hosted in {match['host']}, but the minimax host is "
                          f"{best[0] if best else None} (worst round trip {best[1] if best else None} ms)")
    if match.get("kind") == "cross":
        widening = [tuple(step) for step in match["widening"]]
        for t in tickets:
            limit = rtt_limit(match["chosen_at"] - float(t["created_at"]), widening)
            if limit is None or t["rtt_ms"][match["host"]] > limit:
                violations.append(f"match {match['match_id']} took ticket {t['ticket_id']} to {match['host']} "
                                  f"({t['rtt_ms'][match['host']]} ms) beyond its limit ({limit} ms after "
                                  f"{match['chosen_at'] - float(t['created_at']):.1f} s)")
    return violations
