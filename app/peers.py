"""Peer regions' top-100s for the global leaderboard, fetched over HTTP and cached briefly.

A peer's result (its entries, or why it failed) is reused for GLOBAL_CACHE_SECONDS. A successful
result older than that but younger than GLOBAL_MAX_STALE_SECONDS is still served while one background
fetch refreshes it, so a far peer's round trip (e.g. 230 ms Tokyo ↔ Frankfurt) stays off the hot
path. One fetch per peer is in flight at a time; concurrent requests share it."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from app.ranking import TOP, Entry, RegionalBoard
from app.runtime import Runtime

log = logging.getLogger("app")


@dataclass(frozen=True)
class PeerResult:
    """One fetch of a peer's board: `entries` on success, else `error`."""

    region: str
    fetched_at: float  # time.monotonic(): when the fetch was sent (entries: the board is at least this recent),
    # or when it failed (error)
    entries: list[Entry] | None
    error: str | None = None

    def age(self) -> float:
        """Seconds since the fetch."""
        return time.monotonic() - self.fetched_at


class PeerBoards:
    """The cache of peer results for one app instance."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.cache: dict[str, PeerResult] = {}
        self.inflight: dict[str, asyncio.Task[PeerResult]] = {}

    async def get(self, region: str, url: str) -> PeerResult:
        """The peer's board, fresh enough by the settings above."""
        cached = self.cache.get(region)
        settings = self.rt.settings
        if cached is not None:
            age = cached.age()
            if age < settings.global_cache_seconds:
                return cached
            if cached.entries is not None and age < settings.global_max_stale_seconds:
                self._start(region, url)
                return cached
        return await asyncio.shield(self._start(region, url))

    def _start(self, region: str, url: str) -> asyncio.Task[PeerResult]:
        task = self.inflight.get(region)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(region, url))
            self.inflight[region] = task
            task.add_done_callback(lambda _: self.inflight.pop(region, None))
        return task

    async def _fetch(self, region: str, url: str) -> PeerResult:
        # Ages count from the send, not the answer: the peer read its board after we sent, so a result
        # served at age < GLOBAL_MAX_STALE_SECONDS holds every score acknowledged that long ago, however
        # long the answer took to cross the ocean or to be picked up by a busy event loop.
        sent = time.monotonic()
        try:
            response = await self.rt.http.get(f"{url}/v1/leaderboard/regional", params={"limit": TOP})
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            board = RegionalBoard.model_validate_json(response.content)
            if board.region != region:
                raise ValueError(f"answered as region {board.region!r}")
            result = PeerResult(region, sent, board.entries)
            outcome = "ok"
        except (httpx.HTTPError, ValueError, ValidationError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("peer %s (%s): %s", region, url, reason)
            # a failure is reused from when it was known: requests meanwhile answer at once, incomplete
            result = PeerResult(region, time.monotonic(), None, reason)
            outcome = "error"
        self.rt.metrics.peer_fetches.labels(peer=region, outcome=outcome).inc()
        self.cache[region] = result
        return result

    def close(self) -> None:
        """Cancel fetches still in flight."""
        for task in list(self.inflight.values()):
            task.cancel()


def peer_boards(rt: Runtime) -> PeerBoards:
    """This instance's PeerBoards (created on first use)."""
    boards = rt.extras.get("peers")
    if boards is None:
        boards = rt.extras["peers"] = PeerBoards(rt)
    return boards
