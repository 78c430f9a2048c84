"""`python -m app [--host H] [--port P] [--internal-port Q]`: serve the API with uvicorn, configured
from the environment. With an internal port (INTERNAL_PORT) the process listens twice: players' port
and, on --internal-host (127.0.0.1 by default: only the host, or the ECS task, reaches it), the port
where /metrics and /internal/* answer (app/internal.py)."""

from __future__ import annotations

import argparse
import os
import socket

import uvicorn


def _listen(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle off only on sockets whose proto says TCP
    # (base_events._set_nodelay), and accepted sockets inherit it. With proto 0 every response whose
    # headers and body leave as two writes could wait for the client's delayed ACK: +40 ms on about one
    # request in ten (measured in the lab: the local geography's p95 was 74 ms for a 30 ms link).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets on Linux
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--internal-host", default=os.environ.get("INTERNAL_HOST", "127.0.0.1"))
    parser.add_argument("--internal-port", type=int, default=int(os.environ.get("INTERNAL_PORT") or 0) or None)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))
    args = parser.parse_args()
    if args.internal_port is not None:
        os.environ["INTERNAL_PORT"] = str(args.internal_port)  # the app's Settings read it
    config = uvicorn.Config("app.main:create_app_from_env", factory=True, log_level=args.log_level,
                            access_log=False)
    sockets = [_listen(args.host, args.port)]
    if args.internal_port is not None:
        sockets.append(_listen(args.internal_host, args.internal_port))
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
