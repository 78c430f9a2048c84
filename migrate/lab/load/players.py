"""The players: who they are (seeded players homed where their geography's nearest region is), what
they do (a realistic request mix) and how a game client behaves on the answers it gets.

A player runs one request at a time (a game client waits for its answer), so a player's writes are
ordered and the ledger can judge them. A client:
- logs in when it has no token (and again after a 401, e.g. `stale_epoch` after re-homing, retrying once);
- refreshes its session after a 409 `stale_home_epoch` (a region loss re-homed the player: epoch + 1) at
  the region the answer names, and retries, without logging in again;
- follows a 409 `wrong_region` to the region the answer names (once), through its geography's link to
  that region: the request's latency is the sum of both exchanges, the 409 is counted as recovered;
- sends home-bound requests (scores, tickets) straight to the region serving its home, as the login,
  the last 409 or any answer about itself (X-Serving-Region) named it: a game client remembers its
  home's endpoint and learns a re-home from its next answer;
- reads its own profile with `X-Min-LSN` after a write and checks it sees that write (read-your-writes)."""

from __future__ import annotations

import random
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import httpx

from migrate.lab.load.ledger import Ledger
from migrate.lab.load.report import Metrics
from migrate.lab.topology import GEO_NEAREST, GEOGRAPHIES

GEO_MIX = {"apac": 0.60, "na": 0.25, "eu": 0.15}  # DESIGN §2 / §10
# Share of requests per action ("matchmaking" becomes create, poll or cancel by the ticket's state).
REQUEST_MIX = {"profile_read": 50, "leaderboard_regional": 15, "leaderboard_global": 5, "login": 5,
               "profile_write": 10, "score_submit": 10, "matchmaking": 5}
OWN_PROFILE_SHARE = 0.8  # profile reads of the player's own profile; the rest look at someone else
MAX_SCORE = 8_388_607


@dataclass
class Session:
    """One player's client state."""

    player_id: int
    geography: str
    token: str | None = None
    serving_region: str | None = None  # where the login said this player's home is served
    ticket_id: str | None = None
    ticket_polls: int = 0
    ticket_expires_at: float | None = None  # the ticket's expires_at, as its last answer gave it (epoch s)
    last_lsn: str | None = None  # X-LSN of the last acknowledged profile write


def _epoch(iso: object) -> float | None:
    """Epoch seconds of an ISO 8601 time from an answer; None when absent or not one."""
    try:
        return datetime.fromisoformat(str(iso)).timestamp() if iso else None
    except ValueError:
        return None


def load_players(writer_dsn: str, per_geography: dict[str, int], seed: int) -> dict[str, list[int]]:
    """Player ids per geography: a seeded sample of players whose home_region is the geography's
    nearest region (apac → ap-northeast-1, na → us-east-1, eu → eu-central-1), read from the writer."""
    import psycopg

    rng = random.Random(f"players:{seed}")
    wanted = {GEO_NEAREST[g]: g for g in per_geography}
    out: dict[str, list[int]] = {g: [] for g in per_geography}
    with psycopg.connect(writer_dsn, autocommit=True, connect_timeout=5) as conn:
        top = conn.execute("SELECT coalesce(max(id), 0) FROM players").fetchone()[0]
        if top == 0:
            return out
        need = sum(per_geography.values())
        tried: set[int] = set()
        for _ in range(6):  # sample, top up what a geography is still short of
            if all(len(out[g]) >= n for g, n in per_geography.items()) or len(tried) >= top:
                break
            k = min(top - len(tried), max(64, 4 * need))
            batch = [i for i in rng.sample(range(1, top + 1), min(top, k + len(tried))) if i not in tried][:k]
            tried.update(batch)
            rows = conn.execute("SELECT id, home_region FROM players WHERE id = ANY(%s) ORDER BY id",
                                (batch,)).fetchall()
            order = {pid: i for i, pid in enumerate(batch)}
            for pid, home in sorted(rows, key=lambda r: order[r[0]]):
                geo = wanted.get(home)
                if geo is not None and len(out[geo]) < per_geography[geo]:
                    out[geo].append(pid)
    return out


def split_players(total: int) -> dict[str, int]:
    """How many players of each geography for `total` players at the 60/25/15 mix (each ≥ 1)."""
    return {g: max(1, round(total * GEO_MIX[g])) for g in GEOGRAPHIES}


@dataclass
class Outcome:
    """One HTTP exchange."""

    status: int | None  # None: no HTTP answer
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    error: str | None = None  # kind when it failed: 'timeout', 'connection_refused', 'http_503_…'

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def answered(self) -> bool:
        """The server decided (any HTTP status below 500): for the ledger, a 4xx wrote nothing."""
        return self.status is not None and self.status < 500


def _causes(exc: BaseException):
    """The exception and everything it was raised from (httpx → httpcore → anyio → OSError)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([e.__cause__, e.__context__, *getattr(e, "exceptions", ())])


def classify(exc: Exception) -> str:
    """Error kind of a transport failure: timeout, connection_refused, connection_reset,
    connection_closed (the server hung up mid-answer), connection_error, transport_<type>."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    causes = list(_causes(exc))
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return "connection_refused"
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)) for e in causes):
        return "connection_reset"
    if isinstance(exc, httpx.RemoteProtocolError) or any(
            type(e).__name__ in ("BrokenResourceError", "EndOfStream", "ClosedResourceError") for e in causes):
        return "connection_closed"
    if isinstance(exc, httpx.ConnectError):
        return "connection_error"
    return f"transport_{type(exc).__name__}"


def http_error_kind(status: int, body: Any) -> str:
    code = body.get("error") if isinstance(body, dict) else None
    return f"http_{status}_{code}" if code else f"http_{status}"


class Network:
    """HTTP clients per (geography, region): a player in `geo` reaches `region`'s app through the
    WAN link at `port(geo, region)`. Connections are kept alive and pooled per link."""

    def __init__(self, port: Callable[[str, str], int], *, timeout_s: float, max_connections: int,
                 host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.timeout = httpx.Timeout(timeout_s)
        # Idle connections are dropped after 2 s, well before uvicorn's 5 s keep-alive: otherwise a request
        # can leave on a connection the server is closing (across a 170 ms link) and fail as "reset".
        self.limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                                   keepalive_expiry=2.0)
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}
        # The links are plain HTTP, but httpx builds a TLS context per client unless given one (~0.1 s
        # of CPU each, on the players' event loop): one, shared.
        self._tls = ssl.create_default_context()

    def client(self, geography: str, region: str) -> httpx.AsyncClient:
        key = (geography, region)
        if key not in self._clients:
            self._clients[key] = httpx.AsyncClient(
                base_url=f"http://{self.host}:{self.port(geography, region)}", timeout=self.timeout,
                limits=self.limits, verify=self._tls,
                # The edge's viewer geography (CloudFront-Viewer-Country in AWS): shadow traffic
                # mirrors the requests of the geography being moved (app/shadow.py).
                headers={"User-Agent": "migrate-load/1", "X-Player-Geo": geography})
        return self._clients[key]

    async def exchange(self, geography: str, region: str, method: str, path: str, *,
                       json: Any = None, headers: dict[str, str] | None = None) -> Outcome:
        started = time.perf_counter()
        try:
            response = await self.client(geography, region).request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(None, latency_ms=(time.perf_counter() - started) * 1000, error=classify(exc))
        except OSError as exc:
            return Outcome(None, latency_ms=(time.perf_counter() - started) * 1000, error=classify(exc))
        latency = (time.perf_counter() - started) * 1000
        try:
            body = response.json()
        except ValueError:
            body = None
        error = None if response.status_code < 400 else http_error_kind(response.status_code, body)
        return Outcome(response.status_code, body, dict(response.headers), latency, error)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


class Player:
    """Plays one request of a session: picks what the mix says and behaves like a game client."""

    def __init__(self, net: Network, metrics: Metrics, ledger: Ledger, rng: random.Random,
                 others: dict[str, list[int]], *, follow_wrong_region: bool = True) -> None:
        self.net = net
        self.metrics = metrics
        self.ledger = ledger
        self.rng = rng
        self.others = others
        self.follow_wrong_region = follow_wrong_region
        self._kinds = list(REQUEST_MIX)
        self._weights = [REQUEST_MIX[k] for k in self._kinds]

    def choose(self) -> str:
        return self.rng.choices(self._kinds, self._weights)[0]

    async def act(self, s: Session, region: str, action: str) -> None:
        """Run `action` for session `s` against `region` and record what happened."""
        if action == "login":
            await self._login(s, region)
        elif action == "profile_read":
            await self._profile_read(s, region)
        elif action == "profile_write":
            await self._authed(s, region, "profile_write", self._profile_write)
        elif action == "score_submit":
            await self._authed(s, region, "score_submit", self._score_submit, home_bound=True)
        elif action == "leaderboard_regional":
            await self._plain(s, region, "leaderboard_regional", "/v1/leaderboard/regional?limit=100")
        elif action == "leaderboard_global":
            await self._plain(s, region, "leaderboard_global", "/v1/leaderboard/global?limit=100")
        elif action == "matchmaking":
            if s.ticket_id is None:
                await self._authed(s, region, "match_create", self._match_create, home_bound=True)
            elif s.ticket_polls >= 3 and self.rng.random() < 0.5:
                await self._authed(s, region, "match_cancel", self._match_cancel, home_bound=True)
            else:
                await self._authed(s, region, "match_poll", self._match_poll, home_bound=True)
        else:
            raise ValueError(f"unknown action {action!r}")

    # -- plumbing -------------------------------------------------------------------------------

    def _record(self, s: Session, kind: str, latency_ms: float, error: str | None, region: str) -> None:
        self.metrics.record(s.geography, kind, latency_ms, error, region)

    def _auth(self, s: Session) -> dict[str, str]:
        return {"Authorization": f"Bearer {s.token}"}

    async def _login(self, s: Session, region: str) -> bool:
        out = await self.net.exchange(s.geography, region, "POST", "/v1/login", json={"player_id": s.player_id})
        self._record(s, "login", out.latency_ms, out.error, region)
        if out.ok and isinstance(out.body, dict):
            s.token = out.body.get("token")
            s.serving_region = out.body.get("serving_region")
            return s.token is not None
        return False

    async def _refresh(self, s: Session, region: str) -> bool:
        """Trade the token for one under the home's current epoch (after a region loss re-homed the player):
        the session goes on without a login (app/sessions.py)."""
        out = await self.net.exchange(s.geography, region, "POST", "/v1/sessions/refresh", headers=self._auth(s))
        self._record(s, "session_refresh", out.latency_ms, out.error, region)
        if out.ok and isinstance(out.body, dict) and out.body.get("token"):
            s.token = out.body["token"]
            s.serving_region = out.body.get("serving_region") or s.serving_region
            return True
        return False

    async def _plain(self, s: Session, region: str, kind: str, path: str) -> None:
        out = await self.net.exchange(s.geography, region, "GET", path)
        self._record(s, kind, out.latency_ms, out.error, region)

    async def _authed(self, s: Session, region: str, kind: str, body: Callable, home_bound: bool = False) -> None:
        """Log in first if needed, then run `body` (one exchange, its own ledger bookkeeping). A 401
        makes the client log in again and retry; a 409 wrong_region makes it retry at the region the
        answer names; at most two retries. The latency recorded is the sum of the exchanges.

        A home-bound request (scores, tickets: only the region serving the player's home takes them) goes
        where the login or the last 409 said that is, as a game client remembers it, rather than through
        DNS to a region that can only send it on."""
        if s.token is None and not await self._login(s, region):
            return
        spent, target = 0.0, (s.serving_region if home_bound and s.serving_region else region)
        for attempt in range(3):
            out = await body(s, target)
            spent += out.latency_ms
            self._learn_serving(s, out)
            code = out.body.get("error") if isinstance(out.body, dict) else None
            last = attempt == 2
            if out.status == 401 and not last:
                self.metrics.recovered[f"unauthorized_{out.body.get('reason', 'unknown')}"
                                       if isinstance(out.body, dict) else "unauthorized"] += 1
                s.token = None
                if not await self._login(s, region):
                    self._record(s, kind, spent, out.error, target)
                    return
                continue
            serving = out.body.get("serving_region") if isinstance(out.body, dict) else None
            if (out.status == 409 and code == "wrong_region" and self.follow_wrong_region and not last
                    and serving and serving != target):
                self.metrics.recovered["wrong_region"] += 1
                target = s.serving_region = serving
                continue
            if out.status == 409 and code == "stale_home_epoch" and not last:
                self.metrics.recovered["stale_home_epoch"] += 1
                if serving and home_bound:
                    target = serving
                if not await self._refresh(s, serving or target):
                    self._record(s, kind, spent, out.error, target)
                    return
                continue
            self._record(s, kind, spent, out.error, target)
            return

    @staticmethod
    def _learn_serving(s: Session, out) -> None:
        """An answer about the player names the region serving its home now (X-Serving-Region)."""
        served = out.headers.get("x-serving-region") if out.headers else None
        if served:
            s.serving_region = served

    # -- actions --------------------------------------------------------------------------------

    async def _profile_read(self, s: Session, region: str) -> None:
        own = self.rng.random() < OWN_PROFILE_SHARE or not self.others.get(s.geography)
        pid = s.player_id if own else self.rng.choice(self.others[s.geography])
        headers = {"X-Min-LSN": s.last_lsn} if own and s.last_lsn else None
        out = await self.net.exchange(s.geography, region, "GET", f"/v1/players/{pid}", headers=headers)
        self._record(s, "profile_read", out.latency_ms, out.error, region)
        if own:
            self._learn_serving(s, out)
        expected = self.ledger.last_profile_value(s.player_id) if headers else None
        if out.ok and expected is not None and not self.ledger.may_have_changed(s.player_id):
            self.metrics.ryw_checked += 1
            seen = ((out.body or {}).get("profile") or {}).get(self.ledger.profile_key)
            if seen != expected and len(self.metrics.ryw_stale) < 1000:
                self.metrics.ryw_stale.append({"player_id": pid, "region": region, "expected": expected,
                                               "seen": seen, "min_lsn": s.last_lsn,
                                               "read_from": out.headers.get("x-read-from")})

    async def _profile_write(self, s: Session, region: str):
        value = self.ledger.next_profile_value(s.player_id)
        self.ledger.profile_sent(s.player_id, value)
        payload = {"profile": {self.ledger.profile_key: value}, "xp": self.rng.randrange(0, 10_000_000),
                   "coins": self.rng.randrange(0, 1_000_000)}
        out = await self.net.exchange(s.geography, region, "PATCH", f"/v1/players/{s.player_id}",
                                      json=payload, headers=self._auth(s))

        if out.ok:
            lsn = out.headers.get("x-lsn") or (out.body or {}).get("lsn")
            self.ledger.profile_acked(s.player_id, value, lsn, region)
            s.last_lsn = lsn
        elif out.answered:
            self.ledger.profile_refused(s.player_id, value)
        else:
            self.ledger.profile_unanswered(s.player_id, value)
        return out

    async def _score_submit(self, s: Session, region: str):
        score = self.rng.randrange(0, MAX_SCORE + 1)
        self.ledger.score_sent(s.player_id)
        out = await self.net.exchange(s.geography, region, "POST", "/v1/scores", json={"score": score},
                                      headers=self._auth(s))

        if out.ok:
            self.ledger.score_acked(s.player_id, score, (out.body or {}).get("region") or region)
        elif out.answered:
            self.ledger.score_refused(s.player_id)
        else:
            self.ledger.score_unanswered(s.player_id)
        return out

    async def _match_create(self, s: Session, region: str):
        out = await self.net.exchange(s.geography, region, "POST", "/v1/matchmaking/tickets",
                                      json={"mode": "default"}, headers=self._auth(s))

        if out.ok and isinstance(out.body, dict) and out.body.get("status") == "waiting":
            s.ticket_id, s.ticket_polls = out.body.get("ticket_id"), 0
            s.ticket_expires_at = _epoch(out.body.get("expires_at"))
        return out

    def _expired(self, s: Session, out) -> None:
        """A 404 for a ticket past the expires_at its last answer gave is the game forgetting an old ticket
        (TICKET_TTL_SECONDS without a change), which the client meets by queueing again: not a failure."""
        code = out.body.get("error") if isinstance(out.body, dict) else None
        if out.status == 404 and code == "ticket_not_found" and s.ticket_expires_at is not None \
                and time.time() >= s.ticket_expires_at:
            out.error = None
            self.metrics.recovered["ticket_expired"] += 1

    async def _match_poll(self, s: Session, region: str):
        out = await self.net.exchange(s.geography, region, "GET", f"/v1/matchmaking/tickets/{s.ticket_id}",
                                      headers=self._auth(s))

        s.ticket_polls += 1
        status = out.body.get("status") if isinstance(out.body, dict) else None
        if out.ok and isinstance(out.body, dict):
            s.ticket_expires_at = _epoch(out.body.get("expires_at"))
        self._expired(s, out)
        if (out.ok and status != "waiting") or out.status in (403, 404):
            s.ticket_id = None  # matched or cancelled (or gone, e.g. expired): next time queue again
        return out

    async def _match_cancel(self, s: Session, region: str):
        out = await self.net.exchange(s.geography, region, "DELETE", f"/v1/matchmaking/tickets/{s.ticket_id}",
                                      headers=self._auth(s))

        self._expired(s, out)
        if out.ok or out.status in (403, 404, 409):
            s.ticket_id = None
        if out.status == 409 and isinstance(out.body, dict) and out.body.get("error") == "already_matched":
            out.error = None  # the ticket found a match meanwhile: the expected end of a race, not a failure
        return out
