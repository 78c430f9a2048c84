"""The names used everywhere (DESIGN §10): regions, player geographies, the phase catalogue and the
API's DNS name. Defined once here; every other module imports them."""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_REGION = "us-east-1"  # the region the game runs in today: the first writer
REGIONS = ("us-east-1", "ap-northeast-1", "eu-central-1")  # every region of the end state
GEOGRAPHIES = ("apac", "na", "eu")  # player geographies
GEOGRAPHY_MIX = {"apac": 0.60, "na": 0.25, "eu": 0.15}  # share of players per geography

HOSTED_ZONE = "game.example"  # the Route 53 hosted zone (no trailing dot; see fqdn)
API_NAME = "api.game.example"  # the players' API name (no trailing dot; see fqdn)


def fqdn(name: str) -> str:
    """`name` as Route 53 lists it in record sets: lower case, with exactly one trailing dot."""
    return name.rstrip(".").lower() + "."


@dataclass(frozen=True)
class CatalogueEntry:
    """One phase of the programme (DESIGN §5)."""

    name: str  # the phase's name on the command line, in the spec and in the journal
    regional: bool  # True: runs once per target region (--region); False: acts on the one global schema


PHASE_CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("stand-up-region", regional=True),
    CatalogueEntry("attach-secondary", regional=True),
    CatalogueEntry("shadow-traffic", regional=True),
    CatalogueEntry("shift-traffic", regional=True),
    CatalogueEntry("expand-schema", regional=False),
    CatalogueEntry("cutover", regional=True),
    CatalogueEntry("contract-schema", regional=False),
)
"""Every phase, in the order the programme runs them (a region goes through the regional ones in
this order; expand-schema precedes every cutover, contract-schema follows them all)."""

PHASES = tuple(entry.name for entry in PHASE_CATALOGUE)
"""Phase names in catalogue order."""

INCIDENT_CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("evacuate-region", regional=True),
)
"""Phases for incidents after the migration (DESIGN §6b): not part of the programme (no quarter schedules
them), run against any region of the spec when it is lost, through the same engine (plan, preflight,
journal, resume, rollback)."""

INCIDENT_PHASES = tuple(entry.name for entry in INCIDENT_CATALOGUE)

FALLBACK_REGIONS: dict[str, tuple[str, ...]] = {
    "ap-northeast-1": ("us-east-1", "eu-central-1"),
    "eu-central-1": ("us-east-1", "ap-northeast-1"),
    "us-east-1": ("eu-central-1", "ap-northeast-1"),
}
"""Where a lost region's players go, nearest first (the players' round trips: Tokyo → N. Virginia ≈ 170 ms
beats Tokyo → Frankfurt ≈ 250; Frankfurt → N. Virginia ≈ 110 beats → Tokyo ≈ 250; N. Virginia → Frankfurt
≈ 115 beats → Tokyo ≈ 170). Evacuation takes the first healthy one."""
