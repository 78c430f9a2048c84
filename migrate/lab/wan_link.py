"""One running WAN link: its listener, its open connections, its controls (cut, degrade) and counters."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from migrate.errors import LabError
from migrate.lab.wan_pipe import DOWN, UP, proxy_connection, reset
from migrate.lab.wan_spec import LinkSpec

log = logging.getLogger("migrate.lab.wan")


class Link:
    """A listening link; must be used from the event loop that started it."""

    def __init__(self, spec: LinkSpec, buffer_bytes: int) -> None:
        self.spec = spec  # replaced in place by add_links when rtt/jitter/bandwidth change
        self.buffer_bytes = buffer_bytes  # bound on bytes held per direction of each connection
        self.cut = False  # True: a partition — no connection passes
        self.extra_rtt_ms = 0.0  # added round trip (a lag spike), on top of spec.rtt_ms
        self.bytes = [0, 0]  # bytes delivered [to target, to client]
        self.reads = [0, 0]  # chunks read and stamped [from client, from target]; tests check chunking
        self.peak_buffered = 0  # most bytes one direction of one connection held at once
        self._tx_free = [0.0, 0.0]  # per direction: when the shared bandwidth cap is next free
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()  # one per open connection
        self._random = random.Random()

    @property
    def port(self) -> int:
        """The port actually listened on (differs from spec.listen_port when that was 0)."""
        if self._server is None or not self._server.sockets:
            return self.spec.listen_port
        return self._server.sockets[0].getsockname()[1]

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        """Listen on 127.0.0.1; raise LabError if the port cannot be bound."""
        try:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.spec.listen_port)
        except OSError as exc:
            raise LabError(f"cannot listen on 127.0.0.1:{self.spec.listen_port} for WAN link "
                           f"{self.spec.name!r}: {exc.strerror or exc}") from exc
        log.info("link %s: 127.0.0.1:%d -> %s:%d, rtt %.1f ms", self.spec.name, self.port,
                 self.spec.target_host, self.spec.target_port, self.spec.rtt_ms)

    async def stop(self) -> None:
        """Stop listening and reset every open connection; returns when they are all gone."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.drop_connections()

    async def set_cut(self, cut: bool) -> None:
        """Cut: reset every open connection and every new one until restored; restore: let them pass."""
        self.cut = cut
        if cut:
            await self.drop_connections()

    def degrade(self, extra_rtt_ms: float) -> None:
        """Add `extra_rtt_ms` to the round trip of every chunk read from now on (0 clears it)."""
        if isinstance(extra_rtt_ms, bool) or not isinstance(extra_rtt_ms, (int, float)) or extra_rtt_ms < 0:
            raise LabError(f"extra_rtt_ms must be a number >= 0, got {extra_rtt_ms!r}")
        self.extra_rtt_ms = float(extra_rtt_ms)

    async def drop_connections(self) -> None:
        """Reset every open connection (both sides) and wait until their tasks have finished."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """The operator's view of this link, JSON-ready."""
        spec = self.spec
        return {
            "name": spec.name,
            "listen_port": self.port,
            "target": f"{spec.target_host}:{spec.target_port}",
            "rtt_ms": spec.rtt_ms,
            "jitter_ms": spec.jitter_ms,
            "bandwidth_bytes_per_s": spec.bandwidth_bytes_per_s,
            "cut": self.cut,
            "extra_rtt_ms": self.extra_rtt_ms,
            "open_connections": self.open_connections,
            "bytes_to_target": self.bytes[UP],
            "bytes_to_client": self.bytes[DOWN],
            "peak_buffered_bytes": self.peak_buffered,
        }

    # --- LinkTiming, used by the data path ------------------------------------------------------

    def release_time(self, direction: int, arrival: float, nbytes: int) -> float:
        """Earliest delivery time of a chunk: bandwidth queueing, then half the round trip ± jitter."""
        spec = self.spec
        if nbytes:
            self.reads[direction] += 1
        depart = arrival
        if spec.bandwidth_bytes_per_s and nbytes:
            # The link serialises chunks one after another, whichever connection they belong to.
            depart = max(arrival, self._tx_free[direction]) + nbytes / spec.bandwidth_bytes_per_s
            self._tx_free[direction] = depart
        one_way_ms = (spec.rtt_ms + self.extra_rtt_ms) / 2
        jitter = spec.jitter_ms or 0.0
        delay_ms = one_way_ms + self._random.uniform(-jitter / 2, jitter / 2)
        return depart + max(0.0, delay_ms) / 1000

    def delivered(self, direction: int, nbytes: int, buffered: int) -> None:
        self.bytes[direction] += nbytes
        self.peak_buffered = max(self.peak_buffered, buffered)

    # --- accepting ------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            reset(writer)  # a partition: the connection dies at once, like a refused one
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await proxy_connection(self, reader, writer, self.spec.target_host, self.spec.target_port,
                                   self.buffer_bytes, self.spec.name)
        except asyncio.CancelledError:
            pass  # a cut or a stop; proxy_connection already reset both sides
        except Exception:  # a bug, not a network event: say so instead of losing it in the task
            log.exception("link %s: connection failed unexpectedly", self.spec.name)
        finally:
            self._tasks.discard(task)
