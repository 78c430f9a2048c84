"""The WAN proxy over real loopback sockets.

Timing checks are lower bounds (a delay can only add time on a busy machine) or ratios between two
measurements taken in the same run — never absolute upper limits."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from migrate.errors import LabError
from migrate.lab.wan import (LinkSpec, WanProxyThread, add_links, cut_link, degrade_link, link_status,
                             remove_link, restore_link, wait_until_ready)
from migrate.lab.wan_pipe import READ_CHUNK

REPO = Path(__file__).resolve().parents[2]


# --- loopback servers the links forward to ------------------------------------------------------

class _Echo(socketserver.BaseRequestHandler):
    """Echo every byte; on the client's EOF, finish echoing and half-close back."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)
        self.request.shutdown(socket.SHUT_WR)


class _HashSink(socketserver.BaseRequestHandler):
    """Wait a moment (so the proxy's buffer fills), hash everything until EOF, answer the digest."""

    def handle(self) -> None:
        time.sleep(0.3)
        digest = hashlib.sha256()
        while data := self.request.recv(1 << 20):
            digest.update(data)
        self.request.sendall(digest.hexdigest().encode())


class _Resetter(socketserver.BaseRequestHandler):
    """Reset every connection at once."""

    def handle(self) -> None:
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        # Resets are what cut tests cause; only a real bug in a handler deserves the traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serving(handler: type[socketserver.BaseRequestHandler]):
    """A threaded TCP server on 127.0.0.1; yields its port."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def echo_port():
    with serving(_Echo) as port:
        yield port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def link(name: str, target_port: int, rtt_ms: float, **extra) -> LinkSpec:
    return LinkSpec(name=name, listen_port=0, target_host="127.0.0.1", target_port=target_port,
                    rtt_ms=rtt_ms, **extra)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip(sock: socket.socket) -> float:
    """Seconds for one byte to go through the link to the echo server and back."""
    start = time.perf_counter()
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    return time.perf_counter() - start


def min_round_trip(port: int, n: int = 3) -> float:
    with connect(port) as sock:
        return min(round_trip(sock) for _ in range(n))


def recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(1 << 20):
        chunks.append(data)
    return b"".join(chunks)


def is_dropped(sock: socket.socket) -> bool:
    """True when the peer has closed or reset the connection (without sending data)."""
    try:
        sock.sendall(b"ping")
        return sock.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def new_connection_is_dropped(port: int) -> bool:
    """True when a new connection is refused, reset while connecting, or dropped right after."""
    try:
        sock = connect(port)
    except ConnectionError:
        return True  # the reset can beat connect()'s own completion check
    with sock:
        return is_dropped(sock)


# --- data path ----------------------------------------------------------------------------------

def test_round_trip_takes_at_least_the_rtt_and_grows_with_it(echo_port):
    with WanProxyThread([link("far", echo_port, 200), link("near", echo_port, 20)]) as wan:
        far = min_round_trip(wan.port("far"))
        near = min_round_trip(wan.port("near"))
    assert far >= 0.9 * 0.200
    assert near >= 0.9 * 0.020
    assert far > 3 * near


def test_bytes_keep_their_order_under_heavy_jitter_and_eof_propagates(echo_port):
    # Jitter (±20 ms) far above the base delay (1 ms each way): any reordering would show.
    with WanProxyThread([link("jittery", echo_port, 2, jitter_ms=40)]) as wan:
        sent = [b"%05d;" % i for i in range(10_000)]
        with connect(wan.port("jittery")) as sock:
            def send() -> None:
                for i, chunk in enumerate(sent):
                    sock.sendall(chunk)
                    if i % 50 == 0:
                        time.sleep(0.0005)  # let the proxy read many separate chunks
                sock.shutdown(socket.SHUT_WR)  # half-close: the echo server must see EOF through the link
            sender = threading.Thread(target=send)
            sender.start()
            received = recv_all(sock)  # ends only if the echo's half-close came back through the link
            sender.join()
        reads = wan.link("jittery").reads
    assert received == b"".join(sent)
    assert reads[0] > 20  # the proxy really saw many chunks, each with its own jittered delay


def test_large_transfer_is_intact_and_buffering_stays_bounded():
    size = 50 * 1024 * 1024
    payload = os.urandom(size)
    buffer_bytes = 256 * 1024
    with serving(_HashSink) as sink_port, \
            WanProxyThread([link("bulk", sink_port, 2)], buffer_bytes=buffer_bytes) as wan:
        with connect(wan.port("bulk")) as sock:
            view = memoryview(payload)
            for offset in range(0, size, 1 << 20):
                sock.sendall(view[offset:offset + (1 << 20)])
            sock.shutdown(socket.SHUT_WR)
            answer = recv_all(sock).decode()
        status = wan.status()[0]
        peak = wan.link("bulk").peak_buffered
    assert answer == hashlib.sha256(payload).hexdigest()
    assert status["bytes_to_target"] == size
    # The sink did not read for a while, so the proxy held as much as it may — and no more.
    assert buffer_bytes <= peak <= buffer_bytes + READ_CHUNK


def test_bandwidth_cap_slows_a_transfer():
    size = 1024 * 1024
    with serving(_HashSink) as sink_port, \
            WanProxyThread([link("thin", sink_port, 0, bandwidth_bytes_per_s=4 * 1024 * 1024)]) as wan:
        with connect(wan.port("thin")) as sock:
            start = time.perf_counter()
            sock.sendall(b"\0" * size)
            sock.shutdown(socket.SHUT_WR)
            recv_all(sock)
            elapsed = time.perf_counter() - start
    assert elapsed >= 0.9 * 0.25  # 1 MiB at 4 MiB/s


def test_a_reset_from_the_target_closes_the_client_side():
    with serving(_Resetter) as port, WanProxyThread([link("rst", port, 10)]) as wan:
        with connect(wan.port("rst")) as sock:
            assert is_dropped(sock)
        deadline = time.monotonic() + 10
        while wan.status()[0]["open_connections"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert wan.status()[0]["open_connections"] == 0


# --- controls -----------------------------------------------------------------------------------

def test_cut_drops_open_connections_and_refuses_new_ones_until_restored(echo_port):
    with WanProxyThread([link("pg", echo_port, 10)]) as wan:
        port = wan.port("pg")
        with connect(port) as before:
            round_trip(before)
            assert wan.status()[0]["open_connections"] == 1
            wan.cut("pg")
            assert is_dropped(before)
        status = wan.status()[0]
        assert status["cut"] is True and status["open_connections"] == 0
        assert new_connection_is_dropped(port)
        wan.restore("pg")
        assert wan.status()[0]["cut"] is False
        with connect(port) as after:
            round_trip(after)


def test_degrade_adds_latency_and_zero_clears_it(echo_port):
    with WanProxyThread([link("pg", echo_port, 20)]) as wan:
        port = wan.port("pg")
        base = min_round_trip(port)
        wan.degrade("pg", 200)
        assert wan.status()[0]["extra_rtt_ms"] == 200
        degraded = min_round_trip(port)
        wan.degrade("pg", 0)
        cleared = min_round_trip(port)
    assert degraded >= 0.9 * 0.220
    assert degraded > 3 * base
    assert cleared < degraded / 3


def test_links_are_added_idempotently_and_removed(echo_port):
    with WanProxyThread([]) as wan:
        wan.add_links([link("a", echo_port, 10)])
        port = wan.port("a")
        wan.add_links([link("a", echo_port, 30)])  # same endpoints: only the timing changes
        assert [s["rtt_ms"] for s in wan.status()] == [30]
        assert wan.port("a") == port
        with pytest.raises(LabError, match="different endpoints"):
            wan.add_links([link("a", echo_port + 1, 10)])
        wan.remove_link("a")
        assert wan.status() == []
        with pytest.raises(LabError, match=r"unknown link 'a'; known: \(none\)"):
            wan.cut("a")


def test_link_spec_round_trips_through_a_dict_and_rejects_bad_input():
    spec = LinkSpec("ap-northeast-1->us-east-1:pg", 5433, "127.0.0.1", 5432, rtt_ms=145)
    assert spec.jitter_ms == pytest.approx(7.25)  # 5 % of the rtt by default
    assert LinkSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(LabError, match="unknown keys colour"):
        LinkSpec.from_dict({**spec.to_dict(), "colour": "red"})
    with pytest.raises(LabError, match="rtt_ms must be"):
        LinkSpec("x", 1, "127.0.0.1", 2, rtt_ms=-1)


# --- the server process and its control protocol ------------------------------------------------

def test_server_process_is_driven_by_the_client_helpers_and_stops_on_sigterm(tmp_path, echo_port):
    control = free_port()
    listen = free_port()
    name = "ap-northeast-1->us-east-1:pg"
    config = tmp_path / "links.json"
    config.write_text(json.dumps([
        LinkSpec(name, listen, "127.0.0.1", echo_port, rtt_ms=20).to_dict()]))
    pidfile = tmp_path / "wan.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrate.lab.wan", "serve", "--config", str(config),
         "--control-port", str(control), "--pidfile", str(pidfile)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_ready(control, timeout=20)
        assert int(pidfile.read_text()) == proc.pid

        [status] = link_status(control)
        assert (status["name"], status["listen_port"], status["target"], status["rtt_ms"]) == \
            (name, listen, f"127.0.0.1:{echo_port}", 20)
        with connect(listen) as sock:
            round_trip(sock)
            assert link_status(control)[0]["open_connections"] == 1
            cut_link(control, name)
            assert is_dropped(sock)
        assert link_status(control)[0]["cut"] is True
        restore_link(control, name)
        degrade_link(control, name, 50)
        assert link_status(control)[0]["extra_rtt_ms"] == 50
        degrade_link(control, name, 0)
        with connect(listen) as sock:
            round_trip(sock)
        assert link_status(control)[0]["bytes_to_client"] >= 2

        with pytest.raises(LabError, match=f"unknown link 'nope'; known: {name}"):
            cut_link(control, "nope")

        extra = LinkSpec("eu-central-1->us-east-1:pg", 0, "127.0.0.1", echo_port, rtt_ms=5)
        [added] = add_links(control, [extra])
        assert add_links(control, [extra])[0]["listen_port"] == added["listen_port"]  # idempotent
        with connect(added["listen_port"]) as sock:
            round_trip(sock)
        remove_link(control, extra.name)
        assert [s["name"] for s in link_status(control)] == [name]

        cli = subprocess.run([sys.executable, "-m", "migrate.lab.wan", "cut", "--control-port",
                              str(control), "nope"], cwd=REPO, capture_output=True, text=True)
        assert cli.returncode == 1
        assert "unknown link 'nope'" in cli.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not pidfile.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    with pytest.raises(LabError, match="unreachable"):
        link_status(control, timeout=2)


def test_server_refuses_a_bad_config_with_one_line(tmp_path):
    config = tmp_path / "links.json"
    config.write_text(json.dumps([{"name": "x", "listen_port": 1}]))
    cli = subprocess.run([sys.executable, "-m", "migrate.lab.wan", "serve", "--config", str(config),
                          "--control-port", str(free_port())], cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert cli.returncode == 1
    assert cli.stderr.startswith("error: WAN link 'x': missing keys target_host, target_port, rtt_ms")
