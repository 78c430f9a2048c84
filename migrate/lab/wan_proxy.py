"""The WAN proxy: a set of links plus the line-based JSON control server, and a runner that hosts it
on an event loop in a background thread (for tests and in-process use).

Control protocol (127.0.0.1 only): one JSON object per line in, one JSON object per line out.
    {"op": "ping"}                                   → {"ok": true}
    {"op": "status"}                                 → {"ok": true, "links": [<link status>, ...]}
    {"op": "cut" | "restore", "link": NAME}          → {"ok": true}
    {"op": "degrade", "link": NAME, "extra_rtt_ms": N} → {"ok": true}
    {"op": "add_links", "links": [<LinkSpec dict>, ...]} → {"ok": true, "links": [<link status>, ...]}
    {"op": "remove_link", "link": NAME}              → {"ok": true}
Any failure → {"ok": false, "error": "<one line>"}."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from migrate.errors import LabError
from migrate.lab.wan_link import Link
from migrate.lab.wan_pipe import DEFAULT_BUFFER_BYTES
from migrate.lab.wan_spec import LinkSpec

log = logging.getLogger("migrate.lab.wan")

CONTROL_LINE_LIMIT = 4 * 1024 * 1024  # one request line; add_links for a whole lab fits easily
T = TypeVar("T")


class WanProxy:
    """Every link of the emulated WAN; all methods must run on the loop that called `start`."""

    def __init__(self, links: Iterable[LinkSpec] = (), *, control_port: int | None = None,
                 buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self._initial = list(links)
        self._control_port = control_port  # None: no control server (in-process use only)
        self._buffer_bytes = buffer_bytes
        self._links: dict[str, Link] = {}
        self._control: asyncio.Server | None = None

    @property
    def control_port(self) -> int | None:
        """The control server's actual port (None when there is none)."""
        if self._control is None or not self._control.sockets:
            return self._control_port
        return self._control.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Listen on every initial link and the control port; on LabError nothing is left listening."""
        try:
            await self.add_links(self._initial)
            if self._control_port is not None:
                try:
                    self._control = await asyncio.start_server(
                        self._serve_control, "127.0.0.1", self._control_port, limit=CONTROL_LINE_LIMIT)
                except OSError as exc:
                    raise LabError(f"cannot listen on 127.0.0.1:{self._control_port} for the WAN "
                                   f"proxy's control port: {exc.strerror or exc}") from exc
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the control server and every link, resetting their open connections."""
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
            self._control = None
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.stop() for link in links), return_exceptions=True)

    def link(self, name: str) -> Link:
        """The running link called `name`; LabError naming the known links if there is none."""
        try:
            return self._links[name]
        except (KeyError, TypeError):  # TypeError: a control request sent a non-string name
            known = ", ".join(sorted(self._links)) or "(none)"
            raise LabError(f"unknown link {name!r}; known: {known}") from None

    def port(self, name: str) -> int:
        """The port link `name` actually listens on."""
        return self.link(name).port

    async def add_links(self, specs: Iterable[LinkSpec]) -> None:
        """Start each link in order; a name already running with the same endpoints only takes the new
        timing (so re-adding is idempotent); on LabError the links before the failing one stay up."""
        for spec in specs:
            current = self._links.get(spec.name)
            if current is None:
                link = Link(spec, self._buffer_bytes)
                await link.start()
                self._links[spec.name] = link
            elif current.spec.same_endpoints(spec):
                # Idempotent: re-adding is a no-op, or a timing change applied to chunks read from now on.
                current.spec = replace(spec, listen_port=current.spec.listen_port)
            else:
                raise LabError(f"link {spec.name!r} already exists with different endpoints "
                               f"(port {current.spec.listen_port} -> {current.spec.target_host}:"
                               f"{current.spec.target_port}); remove it first")

    async def remove_link(self, name: str) -> None:
        """Stop listening on link `name` and reset its connections."""
        link = self.link(name)
        del self._links[name]
        await link.stop()

    async def cut(self, name: str) -> None:
        """Partition link `name`: reset its open connections and every new one until restored."""
        await self.link(name).set_cut(True)
        log.info("link %s: cut", name)

    async def restore(self, name: str) -> None:
        """End a partition of link `name`: new connections pass again (dropped ones stay dropped)."""
        await self.link(name).set_cut(False)
        log.info("link %s: restored", name)

    async def degrade(self, name: str, extra_rtt_ms: float) -> None:
        """Add `extra_rtt_ms` to link `name`'s round trip for data read from now on; 0 clears it."""
        self.link(name).degrade(extra_rtt_ms)
        log.info("link %s: extra rtt %s ms", name, extra_rtt_ms)

    def status(self) -> list[dict[str, Any]]:
        """One status dict per link, sorted by name."""
        return [self._links[name].status() for name in sorted(self._links)]

    # --- control protocol -------------------------------------------------------------------------

    async def handle(self, request: Any) -> dict[str, Any]:
        """Answer one control request; never raises for a bad request (it becomes ok: false)."""
        try:
            if not isinstance(request, dict):
                raise LabError("a request must be a JSON object")
            op = request.get("op")
            if op == "ping":
                return {"ok": True}
            if op == "status":
                return {"ok": True, "links": self.status()}
            if op == "cut":
                await self.cut(_field(request, "link"))
            elif op == "restore":
                await self.restore(_field(request, "link"))
            elif op == "degrade":
                await self.degrade(_field(request, "link"), _field(request, "extra_rtt_ms"))
            elif op == "add_links":
                raw = _field(request, "links")
                if not isinstance(raw, list):
                    raise LabError("'links' must be a list of link objects")
                specs = [LinkSpec.from_dict(item) for item in raw]
                await self.add_links(specs)
                return {"ok": True, "links": [self.link(s.name).status() for s in specs]}
            elif op == "remove_link":
                await self.remove_link(_field(request, "link"))
            else:
                raise LabError(f"unknown op {op!r}; known: {', '.join(OPS)}")
            return {"ok": True}
        except LabError as exc:
            return {"ok": False, "error": exc.one_line()}
        except Exception as exc:  # a bug must not take the control port down with it
            log.exception("control request %r failed", request)
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                except ValueError as exc:
                    reply = {"ok": False, "error": f"bad request (not JSON): {exc}"}
                else:
                    reply = await self.handle(request)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (OSError, ValueError):
            pass  # a client vanished or sent an over-long line; its connection is just dropped
        finally:
            writer.close()


OPS = ("ping", "status", "cut", "restore", "degrade", "add_links", "remove_link")


def _field(request: dict, key: str) -> Any:
    if key not in request:
        raise LabError(f"request {request.get('op')!r} needs {key!r}")
    return request[key]


class WanProxyThread:
    """A WanProxy on its own event loop in a daemon thread; every method blocks until it is done."""

    def __init__(self, links: Iterable[LinkSpec] = (), *, control_port: int | None = None,
                 buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self.proxy = WanProxy(links, control_port=control_port, buffer_bytes=buffer_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "WanProxyThread":
        """Start the loop thread and the proxy; raises what `WanProxy.start` raised."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="wan-proxy", daemon=True)
        self._thread.start()
        try:
            self._call(self.proxy.start())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self) -> None:
        """Stop the proxy (resetting its connections) and end the loop thread."""
        if self._loop is None:
            return
        try:
            self._call(self.proxy.stop())
        finally:
            self._shutdown_loop()

    def __enter__(self) -> "WanProxyThread":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def port(self, name: str) -> int:
        """The port link `name` actually listens on."""
        return self._call(_value(lambda: self.proxy.port(name)))

    @property
    def control_port(self) -> int | None:
        """The control server's actual port (None when there is none)."""
        return self.proxy.control_port

    def link(self, name: str) -> Link:
        """The running Link (read its counters only; change it through the methods here)."""
        return self._call(_value(lambda: self.proxy.link(name)))

    def cut(self, name: str) -> None:
        """Blocking `WanProxy.cut`."""
        self._call(self.proxy.cut(name))

    def restore(self, name: str) -> None:
        """Blocking `WanProxy.restore`."""
        self._call(self.proxy.restore(name))

    def degrade(self, name: str, extra_rtt_ms: float) -> None:
        """Blocking `WanProxy.degrade`."""
        self._call(self.proxy.degrade(name, extra_rtt_ms))

    def add_links(self, specs: Iterable[LinkSpec]) -> None:
        """Blocking `WanProxy.add_links`."""
        self._call(self.proxy.add_links(list(specs)))

    def remove_link(self, name: str) -> None:
        """Blocking `WanProxy.remove_link`."""
        self._call(self.proxy.remove_link(name))

    def status(self) -> list[dict[str, Any]]:
        """Blocking `WanProxy.status`."""
        return self._call(_value(self.proxy.status))

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        if self._loop is None:
            coro.close()
            raise LabError("the WAN proxy thread is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise LabError(f"the WAN proxy thread did not answer within {timeout:g} s") from None

    def _shutdown_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def cancel_rest() -> None:
            # Control-client handlers may still be pending; end them so the loop closes cleanly.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        loop.close()


async def _value(fn: Any) -> Any:
    # Reads of loop-owned state also run on the loop thread, so they never see a half-applied change.
    return fn()
