"""The ASGI application factory.

    uvicorn --factory app.main:create_app_from_env     # settings from the environment
    uvicorn app.main:app                                # the same, built on first access

`create_app(settings)` builds an independent instance (its own pools, Redis client, metrics
registry), so tests can run several "regions" in one process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app import (assets, errors, health, internal, leaderboard, match_peers, matchmaking, metrics, players, redact,
                 sessions, shadow)
from app.cross_matcher import CrossMatcher
from app.config import Settings
from app.runtime import Runtime

log = logging.getLogger("app")

MAX_BODY_BYTES = 64 * 1024


class BodyLimit:
    """Refuse request bodies over MAX_BODY_BYTES with 413 before anything parses them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", []):
                if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY_BYTES):
                    await _send_413(send)
                    return
            seen = 0

            async def limited() -> dict:
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > MAX_BODY_BYTES:
                    raise errors.AppError(413, "payload_too_large",
                                          f"request body over {MAX_BODY_BYTES} bytes")
                return message

            await self.app(scope, limited, send)
            return
        await self.app(scope, receive, send)


async def _send_413(send: Callable) -> None:
    body = b'{"error":"payload_too_large","message":"request body too large"}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings, *, clock: Callable[[], float] | None = None,
               peer_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """An app for one region. `clock` (Unix seconds) and `peer_transport` (the HTTP transport used
    to reach PEER_REGIONS) exist for tests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await Runtime.start(settings, app.state.metrics, clock=clock, peer_transport=peer_transport)
        app.state.runtime = rt
        app.state.shadow.start()
        matcher = CrossMatcher(rt)
        matcher.start()
        log.info("region %s version %s ready", settings.region, settings.app_version)
        try:
            yield
        finally:
            peers = rt.extras.get("peers")
            if peers is not None:
                peers.close()
            await matcher.close()
            await app.state.shadow.close()
            await rt.close()

    app = FastAPI(title="game API", version=settings.app_version, lifespan=lifespan,
                  description=f"Reference game backend, region {settings.region}.")
    app.state.metrics = metrics.Metrics(settings.region, settings.app_version)
    app.state.shadow = shadow.Mirror.from_settings(settings)
    errors.install(app)
    for module in (sessions, players, leaderboard, matchmaking, match_peers, assets, health, metrics, shadow):
        app.include_router(module.router)
    if settings.app_generation >= 2:
        app.include_router(players.signup_router)
    app.add_middleware(BodyLimit)
    app.add_middleware(metrics.MetricsMiddleware, metrics=app.state.metrics)
    # Outermost: it sees the answer as the player gets it and mirrors only after it was sent.
    app.add_middleware(shadow.ShadowMiddleware, mirror=app.state.shadow)
    # Outside even that: a player never reaches an internal path, so nothing mirrors or counts it.
    app.add_middleware(internal.InternalOnly, internal_port=settings.internal_port)
    return app


def create_app_from_env() -> FastAPI:
    """An app configured from the environment (see app/README.md)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redact.install("", "uvicorn", "uvicorn.error", "uvicorn.access")
    return create_app(Settings())


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` works too; built lazily so importing this module needs no environment.
    if name == "app":
        instance = globals().get("_app")
        if instance is None:
            instance = globals()["_app"] = create_app_from_env()
        return instance
    raise AttributeError(name)
