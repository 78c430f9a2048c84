"""Sessions: signed tokens valid in every region, and the login endpoint that issues them.

A token is `base64url(payload JSON) "." base64url(HMAC-SHA256(secret[kid], payload part))`, unpadded.
Claims: `sub` player id, `home` the player's home_region, `epoch` (tokens older than SESSION_EPOCH are
refused everywhere: a forced re-login), `hep` the home's epoch when the token was issued (absent: 1),
`kid` signing key id, `iat` / `exp` Unix seconds.

Home epochs (DESIGN §2, session row; §6b): when a region is lost its home is re-homed elsewhere and its
epoch goes up by one (HOME_ROUTING_FILE: {"region": …, "epoch": n}). Any region still accepts the
token for reads, but a write (profile, score, ticket) carrying an older `hep` is refused with 409
`stale_home_epoch`, in every region, including the lost one when it comes back and reads the same
routing; the client trades its token for a current one at POST /v1/sessions/refresh (no new login)
and retries, so the player keeps the session while nothing written under the old home's rules lands.
Every region holds the same SESSION_KEYS, so a token from any region verifies in all of them; during
a key rotation the new key is added everywhere first, then made active, then the old one removed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.errors import AppError
from app.player_store import fetch_home_region
from app.runtime import Runtime, runtime

MAX_PLAYER_ID = 2**63 - 1
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True)
class Claims:
    """A verified token's claims."""

    player_id: int
    home_region: str
    epoch: int
    key_id: str
    issued_at: int
    expires_at: int
    home_epoch: int = 1


class TokenError(Exception):
    """Why a token was refused; `reason` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload_part: str) -> bytes:
    return hmac.new(secret.encode(), payload_part.encode("ascii"), hashlib.sha256).digest()


def sign(settings: Settings, player_id: int, home_region: str, now: float,
         home_epoch: int = 1) -> tuple[str, Claims]:
    """A token for `player_id` signed with the active key, and its claims."""
    kid = settings.signing_key_id
    claims = Claims(player_id=player_id, home_region=home_region, epoch=settings.session_epoch,
                    key_id=kid, issued_at=int(now), expires_at=int(now) + settings.session_ttl_seconds,
                    home_epoch=home_epoch)
    payload = {"sub": claims.player_id, "home": claims.home_region, "epoch": claims.epoch,
               "kid": claims.key_id, "iat": claims.issued_at, "exp": claims.expires_at, "hep": claims.home_epoch}
    part = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    secret = settings.session_keys[kid].get_secret_value()
    return f"{part}.{_b64encode(_mac(secret, part))}", claims


def verify(settings: Settings, token: str, now: float) -> Claims:
    """The claims of a genuine, unexpired, current-epoch token; TokenError naming why otherwise."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError("malformed", "token is not <payload>.<signature>")
    part, signature = token.split(".")
    if not _B64.match(part) or not _B64.match(signature):
        raise TokenError("malformed", "token is not base64url")
    try:
        payload = json.loads(_b64decode(part))
        given = _b64decode(signature)
    except (ValueError, UnicodeDecodeError):
        raise TokenError("malformed", "token payload is not base64url JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("kid"), str):
        raise TokenError("malformed", "token carries no key id")
    key = settings.session_keys.get(payload["kid"])
    if key is None:
        raise TokenError("unknown_key", f"token signed with unknown key id {payload['kid']!r}")
    # Signature before any other claim is trusted.
    if not hmac.compare_digest(given, _mac(key.get_secret_value(), part)):
        raise TokenError("bad_signature", "token signature does not match (tampered?)")
    types = {"sub": int, "home": str, "epoch": int, "iat": int, "exp": int}
    for name, kind in types.items():
        if type(payload.get(name)) is not kind:
            raise TokenError("malformed", f"token claim {name!r} missing or not {kind.__name__}")
    home_epoch = payload.get("hep", 1)
    if type(home_epoch) is not int or home_epoch < 1:
        raise TokenError("malformed", "token claim 'hep' is not a positive int")
    claims = Claims(player_id=payload["sub"], home_region=payload["home"], epoch=payload["epoch"],
                    key_id=payload["kid"], issued_at=payload["iat"], expires_at=payload["exp"],
                    home_epoch=home_epoch)
    if now >= claims.expires_at:
        raise TokenError("expired", "token expired")
    if claims.epoch < settings.session_epoch:
        raise TokenError("stale_epoch", f"token epoch {claims.epoch} is older than "
                                        f"{settings.session_epoch}: log in again")
    return claims


_bearer = HTTPBearer(auto_error=False, description="token from POST /v1/login")


# Which region takes the player's home-bound requests (scores, tickets) now: on every answer that knows
# the player, so a client re-learns it as soon as a cutover re-homes the player.
SERVING_HEADER = "X-Serving-Region"


def current_player(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                   rt: Annotated[Runtime, Depends(runtime)], response: Response) -> Claims:
    """FastAPI dependency: the verified claims of the request's bearer token, else 401; the answer says
    which region serves the player's home now (SERVING_HEADER)."""
    if credentials is None:
        raise AppError(401, "unauthorized", "missing bearer token", reason="missing_token")
    try:
        claims = verify(rt.settings, credentials.credentials, rt.clock())
    except TokenError as exc:
        raise AppError(401, "unauthorized", exc.message, reason=exc.reason) from None
    response.headers[SERVING_HEADER] = rt.serving_region(claims.home_region)
    return claims


Player = Annotated[Claims, Depends(current_player)]


def current_writer(player: Player, rt: Annotated[Runtime, Depends(runtime)]) -> Claims:
    """FastAPI dependency for writes: `current_player`, refused with 409 `stale_home_epoch` when the
    token predates a re-homing of the player's home (the module doc)."""
    current = rt.home_epoch(player.home_region)
    if player.home_epoch < current:
        raise AppError(409, "stale_home_epoch", f"this session predates home {player.home_region}'s move "
                       f"(epoch {player.home_epoch} < {current}): refresh it at POST /v1/sessions/refresh",
                       token_home_epoch=player.home_epoch, home_epoch=current, home_region=player.home_region,
                       serving_region=rt.serving_region(player.home_region))
    return player


Writer = Annotated[Claims, Depends(current_writer)]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    player_id: int = Field(ge=1, le=MAX_PLAYER_ID)


class LoginResponse(BaseModel):
    token: str
    player_id: int
    home_region: str
    serving_region: str = Field(description="region that currently homes this player")
    home_epoch: int = Field(description="the home's epoch this token writes under")
    epoch: int
    key_id: str
    expires_at: int


router = APIRouter(tags=["sessions"])


@router.post("/v1/login", response_model=LoginResponse,
             responses={404: {"description": "no such player"}, 503: {"description": "database down"}})
async def login(body: LoginRequest, rt: Annotated[Runtime, Depends(runtime)]) -> LoginResponse:
    """Issue a session token for an existing player (read from this region's reader)."""
    home = await fetch_home_region(rt, body.player_id)
    if home is None:
        raise AppError(404, "player_not_found", f"no player {body.player_id}", player_id=body.player_id)
    return _issue(rt, body.player_id, home)


def _issue(rt: Runtime, player_id: int, home: str) -> LoginResponse:
    token, claims = sign(rt.settings, player_id, home, rt.clock(), rt.home_epoch(home))
    return LoginResponse(token=token, player_id=claims.player_id, home_region=claims.home_region,
                         serving_region=rt.serving_region(home), home_epoch=claims.home_epoch, epoch=claims.epoch,
                         key_id=claims.key_id, expires_at=claims.expires_at)


@router.post("/v1/sessions/refresh", response_model=LoginResponse,
             responses={401: {"description": "no/invalid/expired token"}})
async def refresh(player: Player, rt: Annotated[Runtime, Depends(runtime)]) -> LoginResponse:
    """Trade a genuine, unexpired token for one under the home's current epoch (after a region loss
    re-homed the player): the session goes on without a new login; expiry is counted from now."""
    return _issue(rt, player.player_id, player.home_region)
