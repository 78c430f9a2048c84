"""The internal listener: /metrics and /internal/* answer only on INTERNAL_PORT.

The public port is what the load balancer (and, in the lab, every WAN link) forwards to, so a player
asking the public name for /internal/shadow/report (it holds player data) or /metrics gets the same
404 as for any unknown path. The internal port is bound to 127.0.0.1 by default (`python -m app`):
on ECS only the task's own containers (a metrics sidecar) reach it, and the ALB's target group names
the public port alone. Which listener a request came in on is the connection's local address
(`scope["server"]`), set by the server, not by anything the client sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NOT_FOUND = b'{"error":"not_found","message":"Not Found"}'


def is_internal_path(path: str) -> bool:
    """Whether `path` answers only on the internal listener."""
    return path == "/metrics" or path == "/internal" or path.startswith(("/internal/", "/metrics/"))


class InternalOnly:
    """404 for internal paths on any listener but `internal_port` (None: internal paths answer nowhere)."""

    def __init__(self, app: Any, internal_port: int | None) -> None:
        self.app = app
        self.internal_port = internal_port

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and is_internal_path(scope.get("path", "")) and not self._internal(scope):
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(NOT_FOUND)).encode())]})
            await send({"type": "http.response.body", "body": NOT_FOUND})
            return
        await self.app(scope, receive, send)

    def _internal(self, scope: dict) -> bool:
        server = scope.get("server")  # (host, port) of the listening socket; None on a Unix socket
        return self.internal_port is not None and server is not None and server[1] == self.internal_port
