"""Blocking client helpers for a running WAN proxy's control port (see wan_proxy for the protocol).

Every helper raises LabError with a one-line message when the proxy is unreachable, does not answer
in time, or answers with an error."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from typing import Any

from migrate.errors import LabError
from migrate.lab.wan_spec import LinkSpec

DEFAULT_TIMEOUT_S = 10.0
_HINT = "is the WAN proxy running? (python -m migrate.lab.wan serve --config ... --control-port N)"


def request(control_port: int, payload: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Send one request and return the reply dict, which always has ok: true (else LabError)."""
    try:
        with socket.create_connection(("127.0.0.1", control_port), timeout=timeout) as sock:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise LabError(f"WAN proxy control port 127.0.0.1:{control_port} unreachable: {reason}",
                       hint=_HINT) from exc
    if not line:
        raise LabError(f"WAN proxy on control port {control_port} closed the connection without answering")
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise LabError(f"WAN proxy on control port {control_port} sent a reply that is not JSON") from exc
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        raise LabError(f"WAN proxy: {error or 'request refused'}")
    return reply


def cut_link(control_port: int, name: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Partition link `name`: its open connections are reset and new ones refused until restored."""
    request(control_port, {"op": "cut", "link": name}, timeout=timeout)


def restore_link(control_port: int, name: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """End a partition of link `name`; new connections pass again."""
    request(control_port, {"op": "restore", "link": name}, timeout=timeout)


def degrade_link(control_port: int, name: str, extra_rtt_ms: float, *,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Add `extra_rtt_ms` to link `name`'s round trip from now on; 0 clears it."""
    request(control_port, {"op": "degrade", "link": name, "extra_rtt_ms": extra_rtt_ms}, timeout=timeout)


def link_status(control_port: int, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
    """One status dict per link (listen_port, target, rtt_ms, jitter_ms, cut, extra_rtt_ms,
    open_connections, bytes_to_target, bytes_to_client, ...), sorted by name."""
    return request(control_port, {"op": "status"}, timeout=timeout)["links"]


def add_links(control_port: int, links: Iterable[LinkSpec], *,
              timeout: float = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
    """Start the links (idempotent by name) and return their status dicts, in the order given."""
    payload = {"op": "add_links", "links": [spec.to_dict() for spec in links]}
    return request(control_port, payload, timeout=timeout)["links"]


def remove_link(control_port: int, name: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Stop link `name` and reset its open connections."""
    request(control_port, {"op": "remove_link", "link": name}, timeout=timeout)


def wait_until_ready(control_port: int, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Return once the proxy answers a ping; LabError if it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            request(control_port, {"op": "ping"}, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return
        except LabError as exc:
            if time.monotonic() >= deadline:
                raise LabError(f"WAN proxy not ready within {timeout:g} s: {exc.message}", hint=_HINT) from None
            time.sleep(0.05)
