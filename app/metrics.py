"""Prometheus metrics: requests, errors and latency per route template (never the raw path, so a
scan of random URLs cannot explode the label set) and status; plus a few domain counters.

Each app instance owns its registry, so several instances can live in one process (tests)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds; dense around the 80 ms APAC target and the 145-230 ms inter-region round trips.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0,
                   2.5, 5.0, 10.0)
UNMATCHED = "<unmatched>"


class Metrics:
    """The instruments of one app instance."""

    def __init__(self, region: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self.requests = Counter("app_http_requests", "HTTP requests served", labels,
                                registry=self.registry)
        self.errors = Counter("app_http_errors", "HTTP responses with status >= 400", labels,
                              registry=self.registry)
        self.latency = Histogram("app_http_request_duration_seconds", "Time to serve a request",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.reads = Counter("app_profile_reads", "Profile reads by the pool that served them and why",
                             ("served_by", "reason"), registry=self.registry)
        self.peer_fetches = Counter("app_peer_fetches", "Fetches of a peer region's top-100",
                                    ("peer", "outcome"), registry=self.registry)
        self.writes_held = Counter("app_writes_held", "Writes held while their home was fenced, by outcome "
                                   "(released: written once the fence lifted; refused: 503 past the hold)",
                                   ("outcome",), registry=self.registry)
        self.writes_waiting = Gauge("app_writes_waiting", "Writes being held right now (their home is fenced)",
                                    registry=self.registry)
        self.info = Gauge("app_info", "Constant 1, labelled with region and version",
                          ("region", "version"), registry=self.registry)
        self.info.labels(region=region, version=version).set(1)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        key = {"method": method, "route": route, "status": str(status)}
        self.requests.labels(**key).inc()
        self.latency.labels(**key).observe(seconds)
        if status >= 400:
            self.errors.labels(**key).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every instrument."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request; the route label is the matched template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # The router stores the matched route in the (shared) scope dict.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
