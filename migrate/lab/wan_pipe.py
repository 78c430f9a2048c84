"""The data path of the WAN proxy: one proxied TCP connection = two delayed, order-keeping directions.

Each direction has a reader task that stamps every chunk with its release time and queues it, and a
writer task that sleeps until that release time and writes. The queue holds a bounded number of
bytes, so a fast sender is slowed by TCP itself (the reader stops reading) instead of growing memory:
a 100+ MB pg_basebackup or an hours-long replication stream passes through without buffering it."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from typing import Protocol

log = logging.getLogger("migrate.lab.wan")

UP = 0  # client → target
DOWN = 1  # target → client
READ_CHUNK = 64 * 1024  # bytes per read; also how far the buffer may overshoot its bound
DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024  # per direction of each connection


class LinkTiming(Protocol):
    """What a direction needs from its link: when a chunk may leave, and where to count bytes."""

    def release_time(self, direction: int, arrival: float, nbytes: int) -> float:
        """Earliest time (loop clock) a chunk that arrived at `arrival` may be delivered."""

    def delivered(self, direction: int, nbytes: int, buffered: int) -> None:
        """Record `nbytes` delivered; `buffered` is what the direction held just before."""


class Direction:
    """One direction of one connection: every byte is delivered, in order, no earlier than its release."""

    def __init__(self, timing: LinkTiming, direction: int, src: asyncio.StreamReader,
                 dst: asyncio.StreamWriter, buffer_bytes: int) -> None:
        self._timing = timing
        self._direction = direction
        self._src = src
        self._dst = dst
        self._limit = buffer_bytes
        self._queue: deque[tuple[float, bytes]] = deque()  # (release time, data); b"" marks EOF
        self._buffered = 0  # bytes read but not yet written and drained
        self._changed = asyncio.Condition()
        self._last_release = 0.0

    async def read_loop(self) -> None:
        """Read until EOF, queueing each chunk with a release time never before the previous one's."""
        loop = asyncio.get_running_loop()
        while True:
            # Wait for room *before* reading: while we wait, the kernel buffers fill and the sender stalls.
            async with self._changed:
                await self._changed.wait_for(lambda: self._buffered < self._limit)
            data = await self._src.read(READ_CHUNK)
            release = self._timing.release_time(self._direction, loop.time(), len(data))
            # Jitter may draw a shorter delay than the previous chunk's. The FIFO queue already keeps
            # byte order; the clamp makes each chunk's release time true to it (no chunk is "due"
            # behind one that is not), which is what lets the writer batch by time.
            release = max(release, self._last_release)
            self._last_release = release
            async with self._changed:
                self._queue.append((release, data))
                self._buffered += len(data)
                self._changed.notify_all()
            if not data:
                return

    async def write_loop(self) -> None:
        """Deliver queued chunks at their release times; propagate EOF as a half-close after its delay."""
        loop = asyncio.get_running_loop()
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._queue))
                head_release = self._queue[0][0]
            wait = head_release - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            batch, eof = self._take_due(max(loop.time(), head_release))
            if batch:
                data = b"".join(batch)
                self._dst.write(data)
                await self._dst.drain()
                self._timing.delivered(self._direction, len(data), self._buffered)
                async with self._changed:
                    self._buffered -= len(data)
                    self._changed.notify_all()
            if eof:
                if self._dst.can_write_eof():
                    self._dst.write_eof()
                    await self._dst.drain()
                return

    def _take_due(self, now: float) -> tuple[list[bytes], bool]:
        # One write for every chunk already due: many tiny chunks must not cost one syscall each.
        batch: list[bytes] = []
        while self._queue and self._queue[0][0] <= now:
            _, data = self._queue.popleft()
            if not data:
                return batch, True
            batch.append(data)
        return batch, False


async def proxy_connection(timing: LinkTiming, client_reader: asyncio.StreamReader,
                           client_writer: asyncio.StreamWriter, target_host: str, target_port: int,
                           buffer_bytes: int, link_name: str) -> None:
    """Forward one accepted connection to the target until both sides close; any error resets both."""
    try:
        target_reader, target_writer = await asyncio.open_connection(target_host, target_port)
    except OSError as exc:
        log.info("link %s: target %s:%s unreachable (%s); resetting client", link_name, target_host,
                 target_port, exc)
        reset(client_writer)
        return
    except asyncio.CancelledError:
        reset(client_writer)  # cut or stopped while connecting
        raise
    directions = (Direction(timing, UP, client_reader, target_writer, buffer_bytes),
                  Direction(timing, DOWN, target_reader, client_writer, buffer_bytes))
    clean = False
    try:
        async with asyncio.TaskGroup() as group:
            for direction in directions:
                group.create_task(direction.read_loop())
                group.create_task(direction.write_loop())
        clean = True
    except* (OSError, asyncio.IncompleteReadError) as errors:
        log.debug("link %s: connection reset: %s", link_name, errors.exceptions[0])
    finally:
        # A clean end (EOF both ways) closes politely; a reset, an error or a cut resets both sides.
        for writer in (client_writer, target_writer):
            if clean:
                writer.close()
            else:
                reset(writer)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection at once with a TCP RST, discarding anything not yet sent."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            # Linger 0: close() sends RST, so the peer sees a reset rather than a tidy end of stream.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
