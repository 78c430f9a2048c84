"""Player ids per writer (DESIGN §2): each home region allocates from a block of ids no other writer
uses, through a sequence of its own (expand revision e003). Ids given out before the migration are
below 2**40 and stay where they are.

The region numbers are part of the schema: append new regions, never reorder or reuse a number."""

from __future__ import annotations

BLOCK_BITS = 40
HOME_REGIONS: dict[str, int] = {"us-east-1": 1, "ap-northeast-1": 2, "eu-central-1": 3}


def block_of(region: str) -> tuple[int, int]:
    """(first, last) id the region's writer may allocate; KeyError for a region that homes no one."""
    number = HOME_REGIONS[region]
    return number << BLOCK_BITS, ((number + 1) << BLOCK_BITS) - 1


def sequence_name(region: str) -> str:
    """The SQL name of the region's id sequence (player_ids_us_east_1)."""
    if region not in HOME_REGIONS:
        raise KeyError(region)
    return "player_ids_" + region.replace("-", "_")


def allocator_region(player_id: int) -> str | None:
    """The region whose block holds `player_id`; None for the ids given out before the migration."""
    number = player_id >> BLOCK_BITS
    return next((region for region, n in HOME_REGIONS.items() if n == number), None)
