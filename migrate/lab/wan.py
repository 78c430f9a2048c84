"""The lab's WAN: a userspace asyncio TCP proxy on every cross-region link (tc netem is unavailable).

Each link delays each direction by rtt/2 (± jitter/2 per chunk, never reordering bytes), optionally
caps bandwidth, holds a bounded buffer per direction (backpressure), and can be cut, restored and
degraded at runtime through a line-based JSON control port.

    python -m migrate.lab.wan serve --config links.json --control-port N [--pidfile F]
    python -m migrate.lab.wan status  --control-port N
    python -m migrate.lab.wan cut     --control-port N LINK
    python -m migrate.lab.wan restore --control-port N LINK
    python -m migrate.lab.wan degrade --control-port N LINK EXTRA_RTT_MS

This module is the public face; the parts live in wan_spec (LinkSpec), wan_pipe (data path),
wan_link (one link), wan_proxy (WanProxy, WanProxyThread, control server) and wan_client (helpers)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from migrate.errors import LabError
from migrate.lab.wan_client import (add_links, cut_link, degrade_link, link_status, remove_link,
                                    request, restore_link, wait_until_ready)
from migrate.lab.wan_pipe import DEFAULT_BUFFER_BYTES
from migrate.lab.wan_proxy import WanProxy, WanProxyThread
from migrate.lab.wan_spec import LinkSpec

__all__ = [
    "DEFAULT_BUFFER_BYTES", "LinkSpec", "WanProxy", "WanProxyThread", "add_links", "cut_link",
    "degrade_link", "link_status", "load_links", "main", "remove_link", "request", "restore_link",
    "serve", "wait_until_ready",
]

log = logging.getLogger("migrate.lab.wan")


def load_links(path: Path) -> list[LinkSpec]:
    """Read a JSON list of LinkSpec dicts; LabError (one line) if unreadable or invalid."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise LabError(f"cannot read WAN links file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise LabError(f"WAN links file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise LabError(f"WAN links file {path} must hold a JSON list of links")
    specs = [LinkSpec.from_dict(item) for item in data]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LabError(f"WAN links file {path} names a link twice: {', '.join(duplicates)}")
    return specs


async def serve(specs: list[LinkSpec], control_port: int, pidfile: Path | None = None) -> None:
    """Run the proxy until SIGTERM or SIGINT, then reset every connection and remove the pidfile."""
    proxy = WanProxy(specs, control_port=control_port)
    await proxy.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Written only once every port listens, so a pidfile means "ready".
    try:
        if pidfile is not None:
            pidfile.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        await proxy.stop()
        raise LabError(f"cannot write the WAN proxy pidfile {pidfile}: {exc.strerror or exc}") from exc
    log.info("WAN proxy ready: %d links, control port %s", len(specs), proxy.control_port)
    try:
        await stop.wait()
        log.info("WAN proxy stopping")
    finally:
        await proxy.stop()
        if pidfile is not None:
            pidfile.unlink(missing_ok=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m migrate.lab.wan",
                                     description="The lab's WAN proxy and its controls.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the proxy until SIGTERM")
    serve_cmd.add_argument("--config", type=Path, required=True, help="JSON list of LinkSpec objects")
    serve_cmd.add_argument("--control-port", type=int, required=True)
    serve_cmd.add_argument("--pidfile", type=Path)
    for name, help_text in (("status", "print every link's status as JSON"),
                            ("cut", "partition a link"), ("restore", "end a link's partition"),
                            ("degrade", "add round-trip time to a link (0 clears)")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--control-port", type=int, required=True)
        if name != "status":
            cmd.add_argument("link")
        if name == "degrade":
            cmd.add_argument("extra_rtt_ms", type=float)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; prints a one-line error to stderr and returns 1 on LabError."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                                format="%(asctime)s %(name)s %(levelname)s %(message)s")
            asyncio.run(serve(load_links(args.config), args.control_port, args.pidfile))
        elif args.command == "status":
            print(json.dumps(link_status(args.control_port), indent=2))
        elif args.command == "cut":
            cut_link(args.control_port, args.link)
        elif args.command == "restore":
            restore_link(args.control_port, args.link)
        elif args.command == "degrade":
            degrade_link(args.control_port, args.link, args.extra_rtt_ms)
    except LabError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
