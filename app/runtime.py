"""Everything one app instance holds open while it runs: pools, Redis, the peer HTTP client.

Started in the ASGI lifespan (so it lives on the server's event loop) and reached by request
handlers through the `runtime` dependency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis
from fastapi import Request
from psycopg_pool import AsyncConnectionPool

from app.config import Settings
from app.metrics import Metrics
from app.pools import ReaderRouter, WriterRouter, new_pool, open_pool
from app.watched import WatchedJson, WatchedParameter


@dataclass
class Runtime:
    """One instance's live resources; `clock` returns Unix seconds (tests substitute it)."""

    settings: Settings
    metrics: Metrics
    writer: AsyncConnectionPool
    readers: ReaderRouter
    redis: aioredis.Redis
    http: httpx.AsyncClient
    clock: Callable[[], float] = time.time
    # the home routing map an operator rewrites: HOME_ROUTING_PARAMETER, else HOME_ROUTING_FILE (None: the setting)
    home_routing_source: WatchedJson | WatchedParameter | None = None
    writers: WriterRouter | None = None  # a home's own writer once cutover moved it (None: `writer` for all)
    extras: dict = field(default_factory=dict)  # per-module state (scripts, peer cache)

    @classmethod
    async def start(cls, settings: Settings, metrics: Metrics, clock: Callable[[], float] | None = None,
                    peer_transport: httpx.AsyncBaseTransport | None = None) -> Runtime:
        """Open the writer pool (without waiting for the DB), Redis client and peer client."""
        writer = new_pool(settings.writer_dsn, settings, "writer", prepare=False)
        await open_pool(writer)
        readers = ReaderRouter(settings)
        await readers.pool()
        client = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds, health_check_interval=30)
        http = httpx.AsyncClient(timeout=settings.peer_timeout_seconds, transport=peer_transport,
                                 headers={"user-agent": f"game-api/{settings.app_version} ({settings.region})"})
        routing = home_routing_source(settings)
        writers = (WatchedParameter(settings.writers_parameter, settings.region, settings.writers_poll_seconds)
                   if settings.writers_parameter else None)
        # read before the first request: a task that served by identity (or wrote to the origin) until its
        # first poll would send a cut-over home's writes to the origin, which refuses them
        for parameter in (routing, writers):
            if isinstance(parameter, WatchedParameter):
                await asyncio.to_thread(parameter.refresh)
        made = cls(settings=settings, metrics=metrics, writer=writer, readers=readers, redis=client,
                   http=http, clock=clock or time.time,
                   home_routing_source=routing, writers=WriterRouter(settings, writer, writers))
        for name, parameter in (("home_routing_poll", routing), ("writers_poll", writers)):
            if isinstance(parameter, WatchedParameter):
                made.extras[name] = asyncio.get_running_loop().create_task(parameter.run())
        return made

    async def close(self) -> None:
        """Close everything start() opened."""
        for name in ("home_routing_poll", "writers_poll"):
            poll = self.extras.pop(name, None)
            if poll is not None:
                poll.cancel()
        await self.http.aclose()
        await self.redis.aclose()
        await self.readers.close()
        if self.writers is not None:
            await self.writers.close()
        await self.writer.close(timeout=1.0)

    def _route(self, home_region: str) -> tuple[str, int]:
        source = self.home_routing_source
        routing = source.get() if source is not None else self.settings.home_routing
        target = routing.get(home_region, home_region)
        if isinstance(target, str):
            return target, 1
        if isinstance(target, dict) and isinstance(target.get("region"), str):
            epoch = target.get("epoch", 1)
            return target["region"], epoch if isinstance(epoch, int) and epoch >= 1 else 1
        return home_region, 1

    def serving_region(self, home_region: str) -> str:
        """The region that currently homes players whose home_region column is `home_region`."""
        return self._route(home_region)[0]

    def home_epoch(self, home_region: str) -> int:
        """How many times `home_region`'s players have been re-homed by a region loss, plus one."""
        return self._route(home_region)[1]


def home_routing_source(settings: Settings) -> WatchedJson | WatchedParameter | None:
    """Where the home routing map is read from: HOME_ROUTING_PARAMETER (polled), HOME_ROUTING_FILE, or
    None (the HOME_ROUTING setting)."""
    if settings.home_routing_parameter:
        return WatchedParameter(settings.home_routing_parameter, settings.region, settings.home_routing_poll_seconds)
    if settings.home_routing_file:
        return WatchedJson(settings.home_routing_file)
    return None


def runtime(request: Request) -> Runtime:
    """FastAPI dependency: this instance's Runtime."""
    return request.app.state.runtime
