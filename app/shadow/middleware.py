"""The outermost ASGI middleware of the source app (copies the live answer as it streams out, then
offers it to the mirror) and the internal report endpoint."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.shadow.mirror import Mirror

log = logging.getLogger("app.shadow")

# --- the ASGI middleware -----------------------------------------------------------------------

class ShadowMiddleware:
    """Outermost middleware: tees sampled answers to the mirror after they are sent, and stamps
    Server-Timing on answers to mirrored requests."""

    def __init__(self, app: ASGIApp, mirror: Mirror) -> None:
        self.app = app
        self.mirror = mirror

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = scope.get("headers", [])
        if any(k == b"x-shadow" for k, _ in headers):
            await self.app(scope, receive, _server_timing(send, started))
            return
        config = self.mirror.active()
        if config is None or scope["method"] not in config.methods:
            await self.app(scope, receive, send)
            return
        geo_header = config.geo_header.encode("latin-1")
        geo = next((v for k, v in headers if k == geo_header), b"").decode("latin-1").strip().lower()
        if geo != config.geography:
            await self.app(scope, receive, send)
            return

        status, content_type = 500, ""
        chunks: list[bytes] | None = []
        size = 0
        request_body: list[bytes] = []

        async def tee_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and message.get("body"):
                request_body.append(message["body"])
            return message

        async def tee_send(message: Message) -> None:
            nonlocal status, content_type, chunks, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        content_type = v.decode("latin-1")
            elif message["type"] == "http.response.body" and chunks is not None:
                body = message.get("body", b"")
                size += len(body)
                if size > config.max_body_bytes:
                    chunks = None  # too large to compare: counted, never buffered
                elif body:
                    chunks.append(body)
            await send(message)

        await self.app(scope, tee_receive if scope["method"] not in ("GET", "HEAD") else receive, tee_send)
        # The live answer has been sent; from here on nothing the player waits for.
        try:
            self.mirror.offer(config, scope, status, chunks, content_type, b"".join(request_body),
                              (time.perf_counter() - started) * 1000)
        except Exception:
            log.exception("shadow: offering a sample failed")


def _server_timing(send: Send, started: float) -> Send:
    async def stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            duration = (time.perf_counter() - started) * 1000
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"server-timing", f"app;dur={duration:.3f}".encode())]}
        await send(message)

    return stamped


# --- the report endpoint -----------------------------------------------------------------------

router = APIRouter(tags=["internal"])


@router.get("/internal/shadow/report", include_in_schema=False)
async def shadow_report(request: Request) -> dict[str, Any]:
    """The mirror's configuration and report (re-reads the shadow file first). Internal: the load
    balancer must not route /internal to players."""
    return request.app.state.shadow.status()
