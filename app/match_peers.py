"""The internal API regions' matchmakers call on each other (app/match_claims.py's protocol), and the
client side of it. Internal paths: they answer only on the internal listener (app/internal.py),
which is what the regions' peer links reach; players never do."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from app.errors import AppError
from app.match_claims import ClaimBook
from app.match_policy import Candidate
from app.matchmaking import TICKET_ID
from app.runtime import Runtime, runtime

CLAIM_ID = r"^c-[a-z0-9-]{1,40}-[0-9a-f]{12}$"
MAX_LISTED = 200  # the oldest waiting tickets a peer lists per mode: enough to form matches, bounded


def claim_book(rt: Runtime) -> ClaimBook:
    """This instance's ClaimBook (created on first use)."""
    book = rt.extras.get("claim_book")
    if book is None:
        book = rt.extras["claim_book"] = ClaimBook(rt.redis, rt.settings.key_prefix, rt.settings.ticket_ttl_seconds)
    return book


async def waiting_candidates(rt: Runtime, mode: str, min_wait_s: float) -> list[Candidate]:
    """This region's waiting tickets of `mode` that waited at least `min_wait_s` and carry round trips, oldest first."""
    prefix, now = rt.settings.key_prefix, rt.clock()
    ids = [raw.decode() for raw in await rt.redis.lrange(f"{prefix}mm:queue:{mode}", 0, MAX_LISTED - 1)]
    found = []
    for tid in ids:
        status, pid, created, rtt = await rt.redis.hmget(f"{prefix}mm:ticket:{tid}", "status", "player_id",
                                                         "created_at", "rtt")
        if status != b"waiting" or not rtt or created is None or now - float(created) < min_wait_s:
            continue
        found.append(Candidate(tid, int(pid), rt.settings.region, float(created), json.loads(rtt)))
    return sorted(found, key=lambda c: (c.created_at, c.ticket_id))


def candidate_json(c: Candidate) -> dict[str, Any]:
    return {"ticket_id": c.ticket_id, "player_id": c.player_id, "owner": c.owner, "created_at": c.created_at,
            "rtt_ms": dict(c.rtt_ms)}


def candidate_from(data: dict[str, Any]) -> Candidate:
    return Candidate(str(data["ticket_id"]), int(data["player_id"]), str(data["owner"]), float(data["created_at"]),
                     {str(k): float(v) for k, v in data["rtt_ms"].items()})


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    coordinator: str = Field(min_length=1, max_length=40)
    lease_seconds: float = Field(gt=0, le=300)
    tickets: list[Annotated[str, Field(pattern=TICKET_ID)]] = Field(min_length=1, max_length=16)


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(min_length=1, max_length=64 * 1024, pattern=r"^(aborted|committed:\{.*\})$")
    tickets: list[Annotated[str, Field(pattern=TICKET_ID)]] = Field(min_length=1, max_length=16)


ClaimId = Annotated[str, Path(pattern=CLAIM_ID, description="c-<coordinator region>-<12 hex digits>")]
router = APIRouter(tags=["internal"])


@router.get("/internal/matchmaking/waiting", include_in_schema=False)
async def list_waiting(rt: Annotated[Runtime, Depends(runtime)],
                       mode: Annotated[str, Query(pattern=r"^[a-z0-9-]{1,32}$")] = "default",
                       min_wait_seconds: Annotated[float, Query(ge=0, le=3600)] = 0.0) -> dict[str, Any]:
    """This region's waiting tickets a cross-region match may take (owner side)."""
    tickets = await waiting_candidates(rt, mode, min_wait_seconds)
    return {"region": rt.settings.region, "tickets": [candidate_json(c) for c in tickets]}


@router.post("/internal/matchmaking/claims/{claim_id}", include_in_schema=False)
async def claim(claim_id: ClaimId, body: ClaimIn,
                rt: Annotated[Runtime, Depends(runtime)]) -> dict[str, Any]:
    """Claim every named ticket or none (owner side); 409 naming the ticket that was not waiting."""
    now = rt.clock()
    refused = await claim_book(rt).claim(claim_id, body.coordinator, now + body.lease_seconds, now, body.tickets)
    if refused is not None:
        raise AppError(409, "not_waiting", f"ticket {refused.ticket_id} is {refused.status}",
                       ticket_id=refused.ticket_id, ticket_status=refused.status)
    return {"claim_id": claim_id, "claimed": body.tickets}


@router.post("/internal/matchmaking/claims/{claim_id}/apply", include_in_schema=False)
async def apply(claim_id: ClaimId, body: ApplyIn,
                rt: Annotated[Runtime, Depends(runtime)]) -> dict[str, Any]:
    """Apply the coordinator's decision to the tickets still under this claim (owner side); idempotent."""
    changed = await claim_book(rt).apply(claim_id, body.decision, rt.clock(), body.tickets)
    return {"claim_id": claim_id, "changed": changed}


@router.post("/internal/matchmaking/decisions/{claim_id}/settle", include_in_schema=False)
async def settle(claim_id: ClaimId,
                 rt: Annotated[Runtime, Depends(runtime)]) -> dict[str, Any]:
    """The decision on a claim, aborting it if none was made yet (coordinator side)."""
    return {"claim_id": claim_id, "decision": await claim_book(rt).decide(claim_id, "aborted")}


class PeerMatchmakers:
    """Calls to the other regions' matchmaking API over the peer links (PEER_REGIONS)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def url(self, region: str) -> str:
        url = self.rt.settings.peer_regions.get(region)
        if url is None:
            raise KeyError(f"no peer URL for {region}")
        return url

    async def waiting(self, region: str, mode: str, min_wait_s: float) -> list[Candidate]:
        response = await self.rt.http.get(f"{self.url(region)}/internal/matchmaking/waiting",
                                          params={"mode": mode, "min_wait_seconds": min_wait_s})
        response.raise_for_status()
        return [candidate_from(item) for item in response.json()["tickets"]]

    async def claim(self, region: str, claim_id: str, lease_s: float, tickets: list[str]) -> bool:
        """True when claimed; False when refused; raises when the answer never came (unknown)."""
        response = await self.rt.http.post(f"{self.url(region)}/internal/matchmaking/claims/{claim_id}",
                                           json={"coordinator": self.rt.settings.region, "lease_seconds": lease_s,
                                                 "tickets": tickets})
        if response.status_code == 409:
            return False
        response.raise_for_status()
        return True

    async def apply(self, region: str, claim_id: str, decision: str, tickets: list[str]) -> None:
        response = await self.rt.http.post(f"{self.url(region)}/internal/matchmaking/claims/{claim_id}/apply",
                                           json={"decision": decision, "tickets": tickets})
        response.raise_for_status()

    async def settle(self, region: str, claim_id: str) -> str:
        response = await self.rt.http.post(f"{self.url(region)}/internal/matchmaking/decisions/{claim_id}/settle")
        response.raise_for_status()
        return str(response.json()["decision"])
