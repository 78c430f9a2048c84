"""Player profile endpoints: read (region's reader, read-your-writes via X-Min-LSN), update (global
writer, returns the commit's LSN in the body and in X-LSN) and, from app generation 2, sign-up
(`signup_router`: a new player homed where the request landed, its handle claimed at the authority)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.errors import AppError
from app.ids import HOME_REGIONS
from app.player_store import LSN_PATTERN, HandleTaken, create_player, read_player, update_player
from app.runtime import Runtime, runtime
from app.sessions import MAX_PLAYER_ID, SERVING_HEADER, Player, Writer

MAX_BIGINT = 2**63 - 1
MAX_INT = 2**31 - 1
PROFILE_MAX_BYTES = 16 * 1024
PROFILE_MAX_DEPTH = 8

PlayerId = Annotated[int, Path(ge=1, le=MAX_PLAYER_ID, description="player id")]


def _check_json(value: Any, depth: int = 0) -> None:
    """Raise ValueError for what PostgreSQL jsonb refuses (NUL, unpaired surrogates, NaN) or what
    is unreasonably deep."""
    if depth > PROFILE_MAX_DEPTH:
        raise ValueError(f"nested deeper than {PROFILE_MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("strings may not contain NUL (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("strings must be valid Unicode (no unpaired surrogates)") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


class Profile(BaseModel):
    """A player row."""

    id: int
    handle: str
    home_region: str
    level: int | None
    xp: int | None
    coins: int | None
    created_at: datetime
    updated_at: datetime
    profile: dict[str, Any]


class ProfileUpdated(Profile):
    lsn: str = Field(description="WAL position after the commit; send as X-Min-LSN to read it back")


def _valid_profile(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A profile object PostgreSQL's jsonb takes and that stays small; ValueError saying why not."""
    if value is None:
        return value
    _check_json(value)
    if len(json.dumps(value, ensure_ascii=False).encode()) > PROFILE_MAX_BYTES:
        raise ValueError(f"larger than {PROFILE_MAX_BYTES} bytes")
    return value


HANDLE_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"
# Names a player could use to pass as the game's staff; compared case-insensitively.
RESERVED_HANDLES = frozenset({"admin", "administrator", "root", "system", "support", "moderator", "mod",
                              "staff", "official", "game", "gm", "null", "undefined"})


class SignUp(BaseModel):
    """A new player: a handle (3-32 of A-Z a-z 0-9 _ . -, not reserved) and optional starting profile."""

    model_config = ConfigDict(extra="forbid")
    handle: str = Field(pattern=HANDLE_PATTERN)
    profile: dict[str, Any] | None = None

    @field_validator("handle")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in RESERVED_HANDLES:
            raise ValueError("this handle is reserved")
        return value

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _valid_profile(value)


class ProfilePatch(BaseModel):
    """Fields to change; at least one. `profile` keys are merged into the stored object."""

    model_config = ConfigDict(extra="forbid")
    handle: str | None = Field(default=None, pattern=HANDLE_PATTERN)
    level: int | None = Field(default=None, ge=0, le=MAX_INT)
    xp: int | None = Field(default=None, ge=0, le=MAX_BIGINT)
    coins: int | None = Field(default=None, ge=0, le=MAX_BIGINT)
    profile: dict[str, Any] | None = None

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _valid_profile(value)

    @model_validator(mode="after")
    def _not_empty(self) -> ProfilePatch:
        if not self.changes():
            raise ValueError("give at least one of handle, level, xp, coins, profile")
        return self

    def changes(self) -> dict[str, Any]:
        """column → new value, for the fields the client set (null means unchanged)."""
        return {name: getattr(self, name) for name in self.model_fields_set
                if getattr(self, name) is not None}


router = APIRouter(tags=["players"])


@router.get("/v1/players/{player_id}", response_model=Profile,
            responses={404: {"description": "no such player"}, 503: {"description": "database down"}})
async def get_player(
    player_id: PlayerId, response: Response, rt: Annotated[Runtime, Depends(runtime)],
    min_lsn: Annotated[str | None, Header(alias="X-Min-LSN", pattern=LSN_PATTERN,
                                          description="LSN from a write: read at least that")] = None,
) -> Profile:
    """A player's profile from this region's reader (X-Read-From says which pool served it; X-Serving-Region
    which region takes the player's scores and tickets now, so a client learns a re-home before its next
    score needs a 409 to find out)."""
    row, served_by = await read_player(rt, player_id, min_lsn)
    response.headers["X-Read-From"] = served_by
    if row is None:
        raise AppError(404, "player_not_found", f"no player {player_id}", player_id=player_id)
    response.headers[SERVING_HEADER] = rt.serving_region(row["home_region"])
    return Profile(**row)


@router.patch("/v1/players/{player_id}", response_model=ProfileUpdated,
              responses={401: {"description": "no/invalid token"}, 403: {"description": "not yours"},
                         404: {"description": "no such player"}, 409: {"description": "handle taken"}})
async def patch_player(player_id: PlayerId, body: ProfilePatch, player: Writer, response: Response,
                       rt: Annotated[Runtime, Depends(runtime)]) -> ProfileUpdated:
    """Update your own profile on the writer."""
    if player.player_id != player_id:
        raise AppError(403, "forbidden", "you may only update your own profile",
                       player_id=player_id, token_player_id=player.player_id)
    try:
        row, lsn = await update_player(rt, player_id, body.changes(), home=player.home_region)
    except HandleTaken:
        raise AppError(409, "handle_taken", f"handle {body.handle!r} is taken", field="handle") from None
    if row is None:
        raise AppError(404, "player_not_found", f"no player {player_id}", player_id=player_id)
    response.headers["X-LSN"] = lsn
    return ProfileUpdated(**row, lsn=lsn)


signup_router = APIRouter(tags=["players"])


@signup_router.post("/v1/players", response_model=ProfileUpdated, status_code=201,
                    responses={409: {"description": "handle taken"}, 422: {"description": "bad or reserved handle"},
                               503: {"description": "database down, or the schema is not expanded yet"}})
async def sign_up(body: SignUp, response: Response, rt: Annotated[Runtime, Depends(runtime)]) -> ProfileUpdated:
    """Create a player homed in this region (the one the player's request reached), with an id from
    this home's block; its handle is globally unique (handle_claims, app/handles.md)."""
    home = rt.settings.region
    if home not in HOME_REGIONS:
        raise AppError(503, "not_a_home_region", f"{home} homes no players", region=home)
    fields = {"level": 1, "xp": 0, "coins": 0, **({"profile": body.profile} if body.profile else {})}
    try:
        row, lsn = await create_player(rt, body.handle, home, fields)
    except HandleTaken:
        raise AppError(409, "handle_taken", f"handle {body.handle!r} is taken", field="handle") from None
    response.headers["X-LSN"] = lsn
    response.headers["Location"] = f"/v1/players/{row['id']}"
    return ProfileUpdated(**row, lsn=lsn)
