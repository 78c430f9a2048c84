"""How a player's client behaves on the game's answers (wrong region, expired session, no answer) and
how transport failures are named. Client behaviour runs against an in-memory stand-in of the game
(httpx MockTransport); transport failures against real sockets."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
import random
import socket
import struct
import threading

import httpx
import pytest

from migrate.lab.load.ledger import Ledger
from migrate.lab.load.players import Network, Player, Session, classify, split_players
from migrate.lab.load.report import Metrics
from migrate.lab.pg import free_port

US, AP = "us-east-1", "ap-northeast-1"


class FakeGame:
    """Two regions; player 1 is homed in us-east-1. Tokyo answers scores with 409 wrong_region."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.bump_epoch_after: int | None = None
        self.patch_status = 200
        self.login_names_serving: str | None = US  # the login's serving_region (None: an app that omits it)
        self.serving_now: str | None = None  # X-Serving-Region on answers about the player (a re-home)
        self.rehomed_to: str | None = None  # a region loss re-homed the player there (epoch 2): old tokens' writes 409
        self.ticket_expires_in = 300.0  # seconds from the ticket's creation to the expires_at its answer names

    def handler(self, region: str):
        def handle(request: httpx.Request) -> httpx.Response:
            self.calls.append((region, request.method, request.url.path))
            auth = request.headers.get("authorization", "")
            if request.url.path == "/v1/login":
                return httpx.Response(200, json={"token": f"t-{len(self.calls)}",
                                                 "serving_region": self.login_names_serving})
            if request.url.path == "/v1/sessions/refresh":
                return httpx.Response(200, json={"token": "t-refreshed", "serving_region": self.serving_now or US,
                                                 "home_epoch": 2})
            if self.rehomed_to is not None and auth != "Bearer t-refreshed" and request.method in ("POST", "PATCH"):
                return httpx.Response(409, json={"error": "stale_home_epoch", "token_home_epoch": 1, "home_epoch": 2,
                                                 "serving_region": self.rehomed_to})
            stale = self.bump_epoch_after is not None and len(self.calls) > self.bump_epoch_after
            if stale and auth == "Bearer t-1":
                return httpx.Response(401, json={"error": "unauthorized", "reason": "stale_epoch"})
            if request.url.path == "/v1/matchmaking/tickets":
                expires = datetime.now(timezone.utc) + timedelta(seconds=self.ticket_expires_in)
                return httpx.Response(200, json={"ticket_id": "t1", "status": "waiting",
                                                 "expires_at": expires.isoformat()})
            if request.url.path.startswith("/v1/matchmaking/tickets/"):
                return httpx.Response(404, json={"error": "ticket_not_found"})  # gone
            if request.url.path == "/v1/scores":
                if region != (self.serving_now or US):
                    return httpx.Response(409, json={"error": "wrong_region", "home_region": US,
                                                     "serving_region": self.serving_now or US, "region": region})
                return httpx.Response(200, json={"region": region, "best_score": json.loads(request.content)["score"]})
            if request.method == "PATCH":
                if self.patch_status != 200:
                    return httpx.Response(self.patch_status, json={"error": "database_unavailable"})
                return httpx.Response(200, json={"lsn": "0/1"}, headers={
                    "X-LSN": "0/1", **({"X-Serving-Region": self.serving_now} if self.serving_now else {})})
            return httpx.Response(200, json={})

        return handle


class MockNetwork(Network):
    def __init__(self, game: FakeGame) -> None:
        super().__init__(lambda g, r: 0, timeout_s=1, max_connections=4)
        self.game = game

    def client(self, geography: str, region: str) -> httpx.AsyncClient:
        key = (geography, region)
        if key not in self._clients:
            self._clients[key] = httpx.AsyncClient(base_url="http://game",
                                                   transport=httpx.MockTransport(self.game.handler(region)))
        return self._clients[key]


def play(game: FakeGame, actions: list[tuple[str, str]]) -> tuple[Metrics, Ledger, Session]:
    metrics, ledger = Metrics(), Ledger("t")
    net = MockNetwork(game)
    player = Player(net, metrics, ledger, random.Random(1), {"apac": [1]})
    session = Session(1, "apac")

    async def run() -> None:
        for region, action in actions:
            await player.act(session, region, action)
        await net.close()

    asyncio.run(run())
    return metrics, ledger, session


def test_a_wrong_region_answer_is_followed_to_the_serving_region():
    game = FakeGame()
    game.login_names_serving = None  # the client does not know where its home is served yet
    metrics, ledger, session = play(game, [(AP, "score_submit")])
    assert game.calls == [(AP, "POST", "/v1/login"), (AP, "POST", "/v1/scores"),
                          (US, "POST", "/v1/scores")]
    assert metrics.recovered == {"wrong_region": 1}
    assert metrics.errors_by_kind == {}
    assert metrics.cell("apac", "score_submit").histogram.get_total_count() == 1  # one action, both exchanges
    assert ledger.scores[1].region == US and ledger.scores[1].acked == 1 and ledger.refused == 1
    assert session.serving_region == US


def test_home_bound_requests_go_where_the_login_said_the_home_is_served_and_the_rest_through_dns():
    game = FakeGame()
    metrics, ledger, session = play(game, [(AP, "score_submit"), (AP, "profile_write")])
    assert game.calls == [(AP, "POST", "/v1/login"), (US, "POST", "/v1/scores"), (AP, "PATCH", "/v1/players/1")]
    assert metrics.recovered == {} and ledger.scores[1].acked == 1


def test_a_re_home_named_on_any_answer_about_the_player_sends_its_next_score_there_without_a_409():
    game = FakeGame()
    game.serving_now = AP  # the home was re-homed to Tokyo after the login said us-east-1
    metrics, ledger, session = play(game, [(AP, "profile_write"), (AP, "score_submit")])
    assert game.calls == [(AP, "POST", "/v1/login"), (AP, "PATCH", "/v1/players/1"), (AP, "POST", "/v1/scores")]
    assert metrics.recovered == {} and session.serving_region == AP


def test_an_expired_session_logs_in_again_and_retries():
    game = FakeGame()
    game.bump_epoch_after = 2  # after the first login and write, token t-1 is refused (stale_epoch)
    metrics, ledger, _ = play(game, [(US, "profile_write"), (US, "profile_write")])
    assert [c[2] for c in game.calls] == ["/v1/login", "/v1/players/1", "/v1/players/1", "/v1/login",
                                          "/v1/players/1"]
    assert ledger.profiles[1].acked == 2 and ledger.refused == 1
    assert metrics.recovered == {"unauthorized_stale_epoch": 1} and metrics.errors_by_kind == {}


def test_a_write_without_an_answer_is_unknown_and_a_refusal_is_not():
    game = FakeGame()
    game.patch_status = 503
    metrics, ledger, _ = play(game, [(US, "profile_write")])
    assert metrics.errors_by_kind == {"http_503_database_unavailable": 1}
    assert ledger.unanswered == 1 and ledger.profiles[1].last_ack is None
    game.patch_status = 409
    metrics, ledger, _ = play(game, [(US, "profile_write")])
    assert ledger.unanswered == 0 and ledger.refused == 1


def test_players_split_at_the_geography_mix():
    assert split_players(100) == {"apac": 60, "na": 25, "eu": 15}
    assert min(split_players(3).values()) == 1


def _fetch(port: int, timeout: float = 2.0) -> str:
    async def go() -> str:
        async with httpx.AsyncClient(timeout=timeout) as client:
            try:
                await client.get(f"http://127.0.0.1:{port}/")
            except httpx.HTTPError as exc:
                return classify(exc)
        return "ok"

    return asyncio.run(go())


@pytest.fixture
def listener():
    """A real listening socket and a way to say what it does with each connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    behaviour = {"mode": "reset"}
    held = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.recv(65536)
            if behaviour["mode"] == "reset":  # RST instead of FIN
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif behaviour["mode"] == "close":
                conn.close()
            else:
                held.append(conn)  # never answer

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1], behaviour
    sock.close()
    for conn in held:
        conn.close()


def test_transport_failures_are_named(listener):
    port, behaviour = listener
    assert _fetch(free_port()) == "connection_refused"
    assert _fetch(port) == "connection_reset"
    behaviour["mode"] = "close"
    assert _fetch(port) == "connection_closed"
    behaviour["mode"] = "silent"
    assert _fetch(port, timeout=0.3) == "timeout"


def test_a_stale_home_epoch_refreshes_the_session_where_the_home_is_served_and_retries_without_a_login():
    game = FakeGame()
    game.rehomed_to = game.serving_now = AP  # Tokyo's loss moved this player's home… here, to Tokyo itself
    metrics, ledger, session = play(game, [(US, "score_submit")])
    assert game.calls == [(US, "POST", "/v1/login"), (US, "POST", "/v1/scores"),
                          (AP, "POST", "/v1/sessions/refresh"), (AP, "POST", "/v1/scores")]
    assert metrics.recovered == {"stale_home_epoch": 1}
    assert session.token == "t-refreshed" and session.serving_region == AP
    assert ledger.scores[1].acked == 1 and metrics.errors_by_kind == {}


@pytest.mark.parametrize("expires_in,an_expiry", [(-1.0, True), (300.0, False)])
def test_a_ticket_gone_after_its_expires_at_is_an_expiry_and_one_gone_before_it_a_failure(expires_in, an_expiry):
    game = FakeGame()
    game.ticket_expires_in = expires_in
    metrics, _, session = play(game, [(US, "matchmaking"), (US, "matchmaking")])  # queue, then poll: 404
    assert [c[2] for c in game.calls][-2:] == ["/v1/matchmaking/tickets", "/v1/matchmaking/tickets/t1"]
    assert session.ticket_id is None  # either way the player queues again next time
    if an_expiry:
        assert metrics.errors_by_kind == {} and metrics.recovered == {"ticket_expired": 1}
    else:
        assert metrics.errors_by_kind == {"http_404_ticket_not_found": 1} and metrics.recovered == {}
