"""An ASGI app served over real HTTP by uvicorn in a thread of this process (tests and benchmarks that
run several regions' apps side by side)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from migrate.lab.pg import free_port


@contextlib.contextmanager
def serve(app, port: int | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:`port` (default: a free one) for the block; its base URL."""
    port = port or free_port()
    # A bounded graceful shutdown: a peer's keep-alive request through a WAN link must not keep the app
    # (and its background tasks) running past the block.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False, timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        if thread.is_alive():  # a connection that never went idle: stop without waiting for it
            server.force_exit = True
            thread.join(timeout=15)
