"""App generations and the schema each works with (expand/contract, DESIGN §5).

v1 is the game as it runs today; v2 is the app for home-region writers (sign-up through the handle
authority, per-writer ids). Each declares the oldest schema revision it needs and the first contract
revision it cannot survive, so `/health` can say whether it fits the database and contract-schema can
refuse while any region still runs an app that its revisions would break."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    number: int  # 1 or 2
    requires: str  # the oldest schema revision it works with
    breaks_at: str | None  # the first contract revision it cannot run against (None: none known)

    def to_json(self) -> dict[str, object]:
        return {"generation": self.number, "requires": self.requires, "breaks_at": self.breaks_at}


GENERATIONS = {
    # v1 renames players with a plain UPDATE: it needs the claims sync trigger that contract drops.
    1: Generation(1, "0001_baseline", "c001_drop_handle_claims_sync"),
    # v2 allocates ids from its home's block and signs up through handle_claims.
    2: Generation(2, "e007_handle_claims_sync", None),
}
