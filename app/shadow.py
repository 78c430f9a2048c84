"""Shadow traffic: mirror a sampled share of one player geography's reads to a candidate region and
diff the answers three ways, without adding latency to the live request.

Where the mirror lives. In the source region's app, as the outermost ASGI middleware. The source app
is the one place that sees every real player request together with the answer the player got, so
the live answer is the first primary sample for free, and no new hop sits in front of the players
(a mirroring proxy process would be one more thing on the live path that can fail or queue). The
middleware only copies the answer while it streams out; all mirror work happens after the live
response has been sent, in background workers fed by a bounded queue that drops (and counts) rather
than waits. On AWS the same code runs in the source region's ECS tasks.

Switching it on. The migration tool writes a JSON file (SHADOW_FILE; by default `shadow.json`
beside READERS_FILE) that the app re-reads when it changes, like READERS_FILE: no restart of the
live game. On AWS, where many tasks must read one switch, the same document lives in an SSM
parameter (SHADOW_PARAMETER) that every task polls every few seconds. Only the app of the switch's
`source` region mirrors (the lab's apps share one file). A new `mirror_id` starts a fresh report;
`"enabled": false` stops mirroring and keeps the last report readable. `api_host`, when set, is sent
as Host and TLS SNI to primary_url and candidate_url (load balancers whose certificate is for the
API's public name).

Which requests. Those with a mirrored method (GET/HEAD: writes would be applied twice) whose
geography header (`X-Player-Geo` by default: in the lab the load generator sets it as the
stand-in for the edge's viewer-geography header, e.g. CloudFront-Viewer-Country) names the
geography being moved; of those, the players whose id hashes below `sample_rate` (sha256 of the id,
so a player is all in or all out, and the same players in every process). The id is the bearer
token's `sub`, else the path's `{player_id}`; a request with neither (the leaderboards) is
sampled per request at the same rate.

The three-way diff. For a sampled request the mirror sends the same request (same headers,
including X-Min-LSN, plus `X-Shadow`) to the candidate through the source → target link, and once
that answer is in, again to the primary: the two primary samples bracket the candidate's view in
time. Each answer is flattened to field paths (`$status`, `entries.3.score`, …). A field whose two
primary samples differ is noise (a timestamp, an order, a moving value) and is cancelled; a field
where the primaries agree and the candidate does not is a suspect. A suspect is settled by time,
because replicas and caches converge and bugs do not: it is explained if the candidate's value is
what the primary answered to the same request within the endpoint's `staleness_seconds` (its data
type's documented bound, e.g. the peer leaderboard cache), else the request is compared once more
after `recheck_seconds`; only a field that differs again is a real mismatch. Field ignore rules
(global and per route template) drop fields from the diff; an endpoint with `diff: false` (an
answer that differs between regions by design) is still mirrored for latency and errors.

The report, per route template (GET /internal/shadow/report): requests eligible and sampled,
comparisons and their outcome (matched, within staleness, converged on recheck, mismatched), the
mismatched and the noisy fields, a few sample diffs, the candidate's errors (5xx, timeouts,
connection failures), latency p50/p95 of the live answer and of the candidate (its own server
time from `Server-Timing`, and the round trip from the source), and the mirror's own loss (queue
full, answers too large, the primary failing its second sample, mirroring stopped while queued).
Requests carrying `X-Shadow` are never mirrored again; every app answers them with
`Server-Timing: app;dur=<ms>`.

The figures of a fleet (SHADOW_METRICS=emf). Each task's report is its own; on ECS the operator reads
the fleet's from CloudWatch. Every SHADOW_METRICS_SECONDS the task prints, per route, its counters
since the last print and its latency values as CloudWatch Embedded Metric Format lines on stdout
(namespace Game/Shadow, dimensions Region, MirrorId, Route), and a Heartbeat (Region, MirrorId) while it
mirrors; the awslogs driver ships them and CloudWatch extracts the metrics, so the app makes no
CloudWatch calls. Sample diffs are not metrics: each is printed once as a JSON line
(`shadow_sample_diff`) for CloudWatch Logs Insights."""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import json
import logging
import random
import sys
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request
from hdrh.histogram import HdrHistogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.shadow_lists import KeyedList, compare_keyed
from app.watched import WatchedJson, WatchedParameter

log = logging.getLogger("app.shadow")

SHADOW_HEADER = "x-shadow"
DEFAULT_GEO_HEADER = "x-player-geo"
STATUS_FIELD = "$status"
BODY_FIELD = "$body"  # a body that is not JSON: compared as a digest
# Not forwarded: connection-level headers, and the geography header (a mirrored request is never
# eligible again; X-Shadow says so too).
_NOT_FORWARDED = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
                  "upgrade", "proxy-connection", "proxy-authorization", "accept-encoding", SHADOW_HEADER}
SAMPLE_DIFF_VALUE_CHARS = 120
HISTORY_KEYS = 2048  # request keys whose recent primary answers are kept (staleness_seconds > 0 only)
HISTORY_PER_KEY = 64
RECENT_MAX = 1000  # latency values kept per route and side between two EMF prints


# --- configuration (the watched file) ----------------------------------------------------------

def _pattern(text: str) -> tuple[str, ...]:
    if not isinstance(text, str) or not text or any(not part for part in text.split(".")):
        raise ValueError(f"ignore pattern {text!r} must be dotted field names, e.g. 'entries.*.score'")
    return tuple(text.split("."))


@dataclass(frozen=True)
class EndpointRule:
    """How one route template is compared."""

    diff: bool = True  # False: mirrored for latency and errors only (answers differ by design)
    ignore: tuple[tuple[str, ...], ...] = ()  # extra field patterns dropped from the diff
    staleness_seconds: float = 0.0  # the candidate may answer what the primary answered this recently
    # top-level list fields compared per key, lag judged by each entry's version (app/shadow_lists.py)
    keyed_lists: dict[str, KeyedList] = field(default_factory=dict)


@dataclass(frozen=True)
class ShadowConfig:
    """One parsed SHADOW_FILE."""

    enabled: bool
    mirror_id: str
    geography: str = ""
    candidate_url: str = ""
    primary_url: str = ""
    source: str = ""
    target: str = ""
    geo_header: str = DEFAULT_GEO_HEADER
    api_host: str = ""  # Host and TLS SNI for primary_url and candidate_url; "" = the URL's own host
    sample_rate: float = 0.0
    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    ignore: tuple[tuple[str, ...], ...] = ()
    endpoints: dict[str, EndpointRule] = field(default_factory=dict)
    timeout_seconds: float = 2.0
    queue_max: int = 1000
    workers: int = 16
    recheck_seconds: float = 1.0
    max_body_bytes: int = 256 * 1024
    sample_diffs: int = 5

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ShadowConfig:
        """Validate the file's object; ValueError naming the first bad key."""
        enabled = raw.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ValueError("'enabled' must be true or false")
        mirror_id = str(raw.get("mirror_id") or "")
        if not enabled:
            return cls(False, mirror_id)
        for key in ("mirror_id", "geography", "candidate_url", "primary_url"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ValueError(f"'{key}' is required when enabled")
        rate = raw.get("sample_rate")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 < rate <= 1:
            raise ValueError("'sample_rate' must be a number in (0, 1]")
        endpoints = {}
        for route, rule in (raw.get("endpoints") or {}).items():
            if not isinstance(rule, dict):
                raise ValueError(f"endpoints[{route!r}] must be an object")
            keyed = rule.get("keyed_lists") or {}
            if not isinstance(keyed, dict):
                raise ValueError(f"endpoints[{route!r}].keyed_lists must be an object: list field → rule")
            try:
                keyed_lists = {str(name): KeyedList.parse(spec) for name, spec in keyed.items()}
            except ValueError as exc:
                raise ValueError(f"endpoints[{route!r}].keyed_lists: {exc}") from None
            endpoints[route] = EndpointRule(
                diff=bool(rule.get("diff", True)),
                ignore=tuple(_pattern(p) for p in rule.get("ignore_fields", [])),
                staleness_seconds=float(rule.get("staleness_seconds", 0.0)), keyed_lists=keyed_lists)
        methods = raw.get("methods", ["GET", "HEAD"])
        return cls(
            enabled=True, mirror_id=raw["mirror_id"], geography=raw["geography"].lower(),
            candidate_url=raw["candidate_url"].rstrip("/"), primary_url=raw["primary_url"].rstrip("/"),
            source=str(raw.get("source", "")), target=str(raw.get("target", "")),
            geo_header=str(raw.get("geo_header", DEFAULT_GEO_HEADER)).lower(),
            api_host=str(raw.get("api_host") or ""),
            sample_rate=float(rate), methods=frozenset(str(m).upper() for m in methods),
            ignore=tuple(_pattern(p) for p in raw.get("ignore_fields", [])), endpoints=endpoints,
            timeout_seconds=float(raw.get("timeout_seconds", 2.0)),
            queue_max=max(1, int(raw.get("queue_max", 1000))), workers=max(1, int(raw.get("workers", 16))),
            recheck_seconds=max(0.0, float(raw.get("recheck_seconds", 1.0))),
            max_body_bytes=int(raw.get("max_body_bytes", 256 * 1024)),
            sample_diffs=int(raw.get("sample_diffs", 5)))

    def rule(self, route: str) -> EndpointRule:
        return self.endpoints.get(route) or EndpointRule()

    def public(self) -> dict[str, Any]:
        """The settings, for the report."""
        return {"source": self.source, "target": self.target, "geography": self.geography,
                "geo_header": self.geo_header, "sample_rate": self.sample_rate,
                "methods": sorted(self.methods), "candidate_url": self.candidate_url,
                "primary_url": self.primary_url, "api_host": self.api_host,
                "ignore_fields": [".".join(p) for p in self.ignore],
                "endpoints": {r: {"diff": e.diff, "ignore_fields": [".".join(p) for p in e.ignore],
                                  "staleness_seconds": e.staleness_seconds,
                                  "keyed_lists": {n: k.public() for n, k in e.keyed_lists.items()}}
                              for r, e in self.endpoints.items()},
                "timeout_seconds": self.timeout_seconds, "queue_max": self.queue_max,
                "workers": self.workers, "recheck_seconds": self.recheck_seconds}


# --- sampling ----------------------------------------------------------------------------------

def player_sampled(player_id: str, rate: float) -> bool:
    """True for the stable `rate` share of player ids (sha256, the same in every process)."""
    digest = hashlib.sha256(f"shadow:{player_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def token_subject(authorization: str | None) -> str | None:
    """The `sub` claim of a bearer token, unverified: it only picks the sample (the candidate and
    the primary verify the token themselves)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    payload = authorization[7:].strip().split(".")[0]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return str(sub) if isinstance(sub, (int, str)) and not isinstance(sub, bool) else None


# --- the three-way diff ------------------------------------------------------------------------

FieldPath = tuple[str | int, ...]


class _Empty:
    """An empty object or array, as a leaf (so `{}` vs `[]` vs absent differ)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Empty) and other.kind == self.kind

    def __hash__(self) -> int:
        return hash(self.kind)

    def __repr__(self) -> str:
        return self.kind


ABSENT = _Empty("<absent>")
_EMPTY_OBJECT, _EMPTY_ARRAY = _Empty("{}"), _Empty("[]")


def flatten(value: Any, prefix: FieldPath = (), out: dict[FieldPath, Any] | None = None) -> dict[FieldPath, Any]:
    """Leaf path → value of a JSON document (list items by index)."""
    out = {} if out is None else out
    if isinstance(value, dict):
        if not value:
            out[prefix] = _EMPTY_OBJECT
        for key, item in value.items():
            flatten(item, prefix + (str(key),), out)
    elif isinstance(value, list):
        if not value:
            out[prefix] = _EMPTY_ARRAY
        for index, item in enumerate(value):
            flatten(item, prefix + (index,), out)
    else:
        out[prefix] = value
    return out


def answer_fields(status: int, body: bytes, content_type: str = "application/json") -> dict[FieldPath, Any]:
    """An HTTP answer as comparable fields: `$status` plus the JSON body's leaves (or a digest)."""
    fields: dict[FieldPath, Any] = {(STATUS_FIELD,): status}
    if not body:
        return fields
    if "json" in content_type:
        try:
            return flatten(json.loads(body), (), fields)
        except ValueError:
            pass
    fields[(BODY_FIELD,)] = hashlib.sha256(body).hexdigest()
    return fields


def same(a: Any, b: Any) -> bool:
    """Equal with the same JSON type (1, 1.0 and true are three different answers)."""
    return type(a) is type(b) and a == b


def path_text(path: FieldPath) -> str:
    return ".".join(str(p) for p in path)


def path_shape(path: FieldPath) -> str:
    """The path with list indices as `*`: what a field is, across list positions."""
    return ".".join("*" if isinstance(p, int) else p for p in path)


def ignored(path: FieldPath, patterns: tuple[tuple[str, ...], ...]) -> bool:
    """True when some pattern matches a run of the path's keys (and so everything below them);
    `*` in a pattern matches any one key or list index."""
    keys = [str(p) for p in path]
    for pattern in patterns:
        n = len(pattern)
        for start in range(len(keys) - n + 1):
            if all(fnmatch.fnmatchcase(keys[start + j], pattern[j]) for j in range(n)):
                return True
    return False


@dataclass(frozen=True)
class Diff:
    """One three-way comparison."""

    mismatched: tuple[FieldPath, ...]  # primaries agree, the candidate differs
    noisy: tuple[FieldPath, ...]  # the two primary samples differ: cancelled


def three_way(primary: dict[FieldPath, Any], second: dict[FieldPath, Any], candidate: dict[FieldPath, Any],
              ignore: tuple[tuple[str, ...], ...] = ()) -> Diff:
    """Compare flattened answers: noise is what the primary's own two samples disagree on."""
    mismatched, noisy = [], []
    for path in sorted({*primary, *second, *candidate}, key=lambda p: tuple(map(str, p))):
        if ignore and ignored(path, ignore):
            continue
        p1, p2, c = primary.get(path, ABSENT), second.get(path, ABSENT), candidate.get(path, ABSENT)
        if not same(p1, p2):
            noisy.append(path)
        elif not same(c, p1):
            mismatched.append(path)
    return Diff(tuple(mismatched), tuple(noisy))


# --- the report --------------------------------------------------------------------------------

def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Latency:
    """A latency histogram in microseconds (1 µs .. 10 min, 3 significant digits), and the values
    recorded since the last EMF print (a uniform sample of RECENT_MAX beyond that many)."""

    def __init__(self) -> None:
        self.h = HdrHistogram(1, 600_000_000, 3)
        self.recent: list[float] = []
        self._since = 0

    def record(self, ms: float) -> None:
        self.h.record_value(max(1, min(int(ms * 1000), 600_000_000)))
        self._since += 1
        if len(self.recent) < RECENT_MAX:
            self.recent.append(round(ms, 3))
        else:  # reservoir sampling: bounded memory and log volume, still an unbiased sample
            slot = random.randrange(self._since)
            if slot < RECENT_MAX:
                self.recent[slot] = round(ms, 3)

    def take_recent(self) -> list[float]:
        """The values since the last call."""
        values, self.recent, self._since = self.recent, [], 0
        return values

    def summary(self) -> dict[str, Any]:
        n = self.h.get_total_count()
        if not n:
            return {"count": 0, "p50_ms": None, "p95_ms": None}
        return {"count": n, "p50_ms": round(self.h.get_value_at_percentile(50) / 1000, 3),
                "p95_ms": round(self.h.get_value_at_percentile(95) / 1000, 3)}


class EndpointStats:
    """Counters of one route template (see the module doc for what each means)."""

    def __init__(self) -> None:
        self.eligible = 0  # requests of the geography with a mirrored method
        self.sampled = 0  # of those, chosen by the sample
        self.mirrored = 0  # sent to the candidate
        self.compared = 0  # three-way diffs made
        self.matched = 0
        self.within_staleness = 0
        self.converged = 0
        self.mismatched = 0
        self.not_diffed = 0  # answered by both sides, endpoint not diffed (diff: false)
        self.candidate_errors: Counter[str] = Counter()
        self.loss: Counter[str] = Counter()
        self.noisy_fields: Counter[str] = Counter()  # field shape → answers where the primaries differed
        self.mismatched_fields: Counter[str] = Counter()  # field shape → answers it really differed in
        self.sample_diffs: list[dict[str, Any]] = []
        self.primary_ms = _Latency()  # the live answer's server time
        self.candidate_ms = _Latency()  # the candidate's server time (Server-Timing)
        self.candidate_round_trip_ms = _Latency()  # the candidate as the mirror saw it (with the WAN)

    def counts(self) -> dict[str, int]:
        """The EMF counters (cumulative): metric name → value."""
        return {"Eligible": self.eligible, "Sampled": self.sampled, "Mirrored": self.mirrored,
                "Compared": self.compared, "Mismatched": self.mismatched, "Converged": self.converged,
                "WithinStaleness": self.within_staleness, "NotDiffed": self.not_diffed,
                "CandidateErrors": sum(self.candidate_errors.values()), "Lost": sum(self.loss.values())}

    def latencies(self) -> dict[str, _Latency]:
        """The EMF latency metrics (milliseconds): metric name → histogram."""
        return {"PrimaryLatency": self.primary_ms, "CandidateLatency": self.candidate_ms,
                "CandidateRoundTripLatency": self.candidate_round_trip_ms}

    def to_json(self) -> dict[str, Any]:
        errors = sum(self.candidate_errors.values())
        return {
            "eligible": self.eligible, "sampled": self.sampled, "mirrored": self.mirrored,
            "compared": self.compared, "matched": self.matched, "within_staleness": self.within_staleness,
            "converged": self.converged, "mismatched": self.mismatched, "not_diffed": self.not_diffed,
            "mismatch_rate": round(self.mismatched / self.compared, 6) if self.compared else None,
            "candidate_errors": errors, "candidate_errors_by_kind": dict(self.candidate_errors),
            "candidate_error_rate": round(errors / self.mirrored, 6) if self.mirrored else None,
            "loss": dict(self.loss), "lost": sum(self.loss.values()),
            "mismatched_fields": dict(self.mismatched_fields.most_common(10)),
            "noisy_fields": dict(self.noisy_fields.most_common(10)),
            "sample_diffs": list(self.sample_diffs),
            "latency": {"primary": self.primary_ms.summary(), "candidate": self.candidate_ms.summary(),
                        "candidate_round_trip": self.candidate_round_trip_ms.summary()},
        }


class ShadowReport:
    """Everything one mirror (one mirror_id) measured."""

    def __init__(self, config: ShadowConfig) -> None:
        self.config = config
        self.since = _now_iso()
        self.endpoints: dict[str, EndpointStats] = {}
        self.history: OrderedDict[str, deque] = OrderedDict()

    def endpoint(self, route: str) -> EndpointStats:
        stats = self.endpoints.get(route)
        if stats is None:
            stats = self.endpoints[route] = EndpointStats()
        return stats

    def remember(self, key: str, at: float, fields: dict[FieldPath, Any], keep_seconds: float) -> None:
        """Keep a primary answer to `key` for the staleness check."""
        entries = self.history.get(key)
        if entries is None:
            entries = self.history[key] = deque(maxlen=HISTORY_PER_KEY)
            while len(self.history) > HISTORY_KEYS:
                self.history.popitem(last=False)
        else:
            self.history.move_to_end(key)
        entries.append((at, fields))
        while entries and entries[0][0] < at - keep_seconds - 1:
            entries.popleft()

    def seen_recently(self, key: str, path: FieldPath, value: Any, now: float, seconds: float) -> bool:
        """True when the primary answered `value` at `path` to `key` within the last `seconds`."""
        if seconds <= 0:
            return False
        return any(at >= now - seconds and same(fields.get(path, ABSENT), value)
                   for at, fields in self.history.get(key, ()))

    def to_json(self) -> dict[str, Any]:
        per = {route: stats.to_json() for route, stats in sorted(self.endpoints.items())}
        total = {k: sum(e[k] for e in per.values())
                 for k in ("eligible", "sampled", "mirrored", "compared", "matched", "within_staleness",
                           "converged", "mismatched", "not_diffed", "candidate_errors", "lost")}
        total["mismatch_rate"] = round(total["mismatched"] / total["compared"], 6) if total["compared"] else None
        total["candidate_error_rate"] = (round(total["candidate_errors"] / total["mirrored"], 6)
                                         if total["mirrored"] else None)
        loss: Counter[str] = Counter()
        for stats in self.endpoints.values():
            loss.update(stats.loss)
        total["loss"] = dict(loss)
        return {"mirror_id": self.config.mirror_id, "since": self.since, "updated_at": _now_iso(),
                "config": self.config.public(), "totals": total, "endpoints": per}


# --- the mirror --------------------------------------------------------------------------------

@dataclass
class _Sample:
    config: ShadowConfig
    report: ShadowReport
    route: str
    method: str
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes  # the request body (empty for reads)
    status: int  # the live answer
    answer: bytes
    content_type: str
    at: float  # time.monotonic() when the live answer was complete


@dataclass
class _Answer:
    status: int | None
    body: bytes = b""
    content_type: str = ""
    round_trip_ms: float = 0.0
    server_ms: float | None = None
    error: str | None = None

    def fields(self) -> dict[FieldPath, Any]:
        return answer_fields(self.status or 0, self.body, self.content_type)

    def document(self) -> Any:
        return _document(self.body, self.content_type)


def _document(body: bytes, content_type: str) -> Any:
    """The answer's JSON value (None when it is not JSON)."""
    if not body or "json" not in content_type:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _without_lists(fields: dict[FieldPath, Any], names) -> dict[FieldPath, Any]:
    """The flattened answer less the keyed lists (compared by key, not by index)."""
    return {path: value for path, value in fields.items() if not (path and path[0] in names)}


def keyed_differences(rule: EndpointRule, target: str, primary: Any, second: Any, candidate: Any,
                      now: float) -> tuple[list[FieldPath], int]:
    """(real differences, differences explained by the route's bound) of every keyed list of a route;
    now: Unix seconds (entry versions are the primary's wall-clock times)."""
    mismatched, explained = [], 0
    for name, spec in rule.keyed_lists.items():
        outcome = compare_keyed(name, primary, second, candidate, spec, now=now,
                                bound_seconds=rule.staleness_seconds, limit=spec.limit(target))
        mismatched.extend(outcome.mismatched)
        explained += outcome.explained
    return mismatched, explained


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection_closed"
    return f"transport_{type(exc).__name__}"


def _server_ms(value: str | None) -> float | None:
    """`app;dur=12.3` → 12.3."""
    for part in (value or "").split(";"):
        name, _, number = part.strip().partition("=")
        if name == "dur":
            try:
                return float(number)
            except ValueError:
                return None
    return None


def _clip(value: Any) -> Any:
    if isinstance(value, _Empty):
        return repr(value)
    if isinstance(value, str) and len(value) > SAMPLE_DIFF_VALUE_CHARS:
        return value[:SAMPLE_DIFF_VALUE_CHARS] + "…"
    return value


class Mirror:
    """One app instance's mirror: the watched switch, the queue, the workers and the report."""

    def __init__(self, path: Path | None, region: str | None = None, *,
                 switch: WatchedParameter | None = None, emf: EmfEmitter | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.switch: WatchedJson | WatchedParameter = switch if switch is not None else WatchedJson(path)
        self.path = path
        self.where = switch.where if switch is not None else (str(path) if path else None)  # None: cannot mirror
        self.region = region  # only a switch naming this region as the source turns mirroring on here
        self.emf = emf
        self.clock = clock  # Unix seconds: "now" for the versions keyed lists carry (the apps' clocks)
        self._background: list[asyncio.Task] = []
        self._raw: dict[str, Any] | None = None
        self.config: ShadowConfig | None = None
        self.config_error: str | None = None
        self.report: ShadowReport | None = None
        self._queue: asyncio.Queue[_Sample] | None = None
        self._workers: list[asyncio.Task] = []
        self._shape: tuple[int, int] | None = None
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random()

    @classmethod
    def from_settings(cls, settings: Any) -> Mirror:
        """The mirror an app's Settings ask for: SHADOW_PARAMETER wins over the shadow file."""
        switch = (WatchedParameter(settings.shadow_parameter, settings.region, settings.shadow_poll_seconds)
                  if settings.shadow_parameter else None)
        emf = EmfEmitter(settings.region, settings.shadow_metrics_seconds) if settings.shadow_metrics else None
        return cls(settings.shadow_path, settings.region, switch=switch, emf=emf)

    def start(self) -> None:
        """Start the background work (polling the parameter, printing EMF); inside the running loop."""
        loop = asyncio.get_running_loop()
        if isinstance(self.switch, WatchedParameter):
            self._background.append(loop.create_task(self.switch.run()))
        if self.emf is not None:
            self._background.append(loop.create_task(self.emf.run(self)))

    # -- configuration --------------------------------------------------------------------------
    def active(self) -> ShadowConfig | None:
        """The enabled configuration, re-read when the switch changed; None when mirroring is off."""
        raw = self.switch.get()
        if raw is not self._raw:
            self._raw = raw
            try:
                config = ShadowConfig.parse(raw) if raw else None
                self.config_error = None
            except (ValueError, TypeError) as exc:
                log.warning("%s: %s; mirroring off", self.where, exc)
                config, self.config_error = None, str(exc)
            if (config is not None and config.enabled and self.region is not None
                    and config.source != self.region):
                config = None  # another region's mirror (the lab's apps share one file): not ours
            self.config = config
            if config is not None and config.enabled and (
                    self.report is None or self.report.config.mirror_id != config.mirror_id):
                self.report = ShadowReport(config)
                log.info("shadow %s: mirroring %s reads at %.3g to %s", config.mirror_id,
                         config.geography, config.sample_rate, config.candidate_url)
            elif config is not None and config.enabled and self.report is not None:
                self.report.config = config
        config = self.config
        return config if config is not None and config.enabled else None

    def status(self) -> dict[str, Any]:
        """What GET /internal/shadow/report answers."""
        config = self.active()
        out: dict[str, Any] = {"region": self.region, "configured": self.where is not None,
                               "file": str(self.path) if self.path else None, "switch": self.where,
                               "enabled": config is not None,
                               "config_error": self.config_error,
                               "queue": {"depth": self._queue.qsize() if self._queue else 0,
                                         "max": (config or self.config or ShadowConfig(False, "")).queue_max}}
        out.update(self.report.to_json() if self.report else {"mirror_id": None, "totals": None, "endpoints": {}})
        return out

    # -- the live path: called after the answer was sent ---------------------------------------
    def offer(self, config: ShadowConfig, scope: Scope, status: int, answer: list[bytes] | None,
              content_type: str, body: bytes, live_ms: float) -> None:
        """Consider one finished live request for mirroring; never blocks, never raises."""
        report = self.report
        if report is None or report.config.mirror_id != config.mirror_id:
            return
        route = getattr(scope.get("route"), "path", None) or "<unmatched>"
        stats = report.endpoint(route)
        stats.eligible += 1
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        player = token_subject(next((v for k, v in headers if k == "authorization"), None))
        if player is None:
            path_player = (scope.get("path_params") or {}).get("player_id")
            player = str(path_player) if path_player is not None else None
        chosen = (player_sampled(player, config.sample_rate) if player is not None
                  else self._rng.random() < config.sample_rate)
        if not chosen:
            return
        stats.sampled += 1
        stats.primary_ms.record(live_ms)
        if answer is None:
            stats.loss["too_large"] += 1
            return
        if status >= 500:
            stats.loss["primary_error"] += 1  # the primary is failing: nothing to compare against
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        forwarded = [(k, v) for k, v in headers if k not in _NOT_FORWARDED and k != config.geo_header]
        forwarded.append((SHADOW_HEADER, config.mirror_id))
        sample = _Sample(config, report, route, scope["method"], target, forwarded, body, status,
                         b"".join(answer), content_type, time.monotonic())
        queue = self._ensure_workers(config)
        try:
            queue.put_nowait(sample)
        except asyncio.QueueFull:
            stats.loss["queue_full"] += 1

    # -- the workers ---------------------------------------------------------------------------
    def _ensure_workers(self, config: ShadowConfig) -> asyncio.Queue:
        shape = (config.queue_max, config.workers)
        if self._queue is None or shape != self._shape:
            # New sizes: fresh workers on a fresh queue (samples already queued move over).
            for task in self._workers:
                task.cancel()
            old, self._queue, self._shape = self._queue, asyncio.Queue(maxsize=config.queue_max), shape
            while old is not None and not old.empty() and not self._queue.full():
                self._queue.put_nowait(old.get_nowait())
            self._workers = []
        self._workers = [t for t in self._workers if not t.done()]
        while len(self._workers) < config.workers:
            self._workers.append(asyncio.get_running_loop().create_task(self._work(self._queue)))
        if self._client is None:
            self._client = httpx.AsyncClient(
                # Idle connections are dropped well before uvicorn's 5 s keep-alive ends, so a
                # reused connection is rarely one the server is closing.
                limits=httpx.Limits(max_connections=4 * config.workers,
                                    max_keepalive_connections=2 * config.workers, keepalive_expiry=2.0),
                headers={"user-agent": "game-api-shadow/1"})
        return self._queue

    async def _work(self, queue: asyncio.Queue) -> None:
        while True:
            sample = await queue.get()
            try:
                await self._mirror(sample)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("shadow: comparing %s %s failed", sample.method, sample.target)
                sample.report.endpoint(sample.route).loss[f"mirror_bug_{type(exc).__name__}"] += 1
            finally:
                queue.task_done()

    def _current(self, sample: _Sample) -> bool:
        config = self.config
        return (config is not None and config.enabled and config.mirror_id == sample.config.mirror_id
                and self.report is sample.report)

    async def _send(self, base_url: str, sample: _Sample) -> _Answer:
        assert self._client is not None
        started = time.perf_counter()
        headers, extensions = sample.headers, {}
        if sample.config.api_host:  # an ALB's certificate names the API, not the balancer's own name
            headers = [*headers, ("host", sample.config.api_host)]
            extensions = {"sni_hostname": sample.config.api_host}
        for attempt in (1, 2):
            try:
                response = await self._client.request(
                    sample.method, base_url + sample.target, headers=headers,
                    content=sample.body or None, timeout=sample.config.timeout_seconds,
                    extensions=extensions)
                break
            except httpx.RemoteProtocolError as exc:
                # A pooled connection the server closed while the request crossed the WAN: the
                # mirror's artefact, not the candidate's failure. Reads are safe to send again.
                if attempt == 1 and sample.method in ("GET", "HEAD"):
                    started = time.perf_counter()
                    continue
                return _Answer(None, round_trip_ms=(time.perf_counter() - started) * 1000,
                               error=_error_kind(exc))
            except httpx.HTTPError as exc:
                return _Answer(None, round_trip_ms=(time.perf_counter() - started) * 1000,
                               error=_error_kind(exc))
        answer = _Answer(response.status_code, response.content, response.headers.get("content-type", ""),
                         (time.perf_counter() - started) * 1000,
                         _server_ms(response.headers.get("server-timing")))
        if response.status_code >= 500:
            answer.error = f"http_{response.status_code}"
        return answer

    async def _triple(self, sample: _Sample) -> tuple[_Answer, _Answer]:
        """The candidate's answer, then the primary's (so the primary samples bracket it in time)."""
        candidate = await self._send(sample.config.candidate_url, sample)
        if candidate.error is not None:
            return candidate, _Answer(None, error="not_asked")
        second = await self._send(sample.config.primary_url, sample)
        return candidate, second

    async def _mirror(self, sample: _Sample) -> None:
        stats = sample.report.endpoint(sample.route)
        if not self._current(sample):
            stats.loss["stopped"] += 1
            return
        config, report = sample.config, sample.report
        candidate, second = await self._triple(sample)
        stats.mirrored += 1
        if candidate.error is not None:
            stats.candidate_errors[candidate.error] += 1
            return
        stats.candidate_round_trip_ms.record(candidate.round_trip_ms)
        if candidate.server_ms is not None:
            stats.candidate_ms.record(candidate.server_ms)
        if second.error is not None:
            stats.loss["primary_failed"] += 1  # no second primary sample: noise cannot be told apart
            return
        rule = config.rule(sample.route)
        if not rule.diff:
            stats.not_diffed += 1
            return
        ignore = config.ignore + rule.ignore
        key = f"{sample.method} {sample.target}"
        first = answer_fields(sample.status, sample.answer, sample.content_type)
        second_fields, candidate_fields = second.fields(), candidate.fields()
        keyed_mismatched, keyed_explained = [], 0
        if rule.keyed_lists:
            first, second_fields, candidate_fields = (_without_lists(f, rule.keyed_lists)
                                                      for f in (first, second_fields, candidate_fields))
            keyed_mismatched, keyed_explained = keyed_differences(
                rule, sample.target, _document(sample.answer, sample.content_type), second.document(),
                candidate.document(), self.clock())
        now = time.monotonic()
        if rule.staleness_seconds > 0:
            report.remember(key, sample.at, first, rule.staleness_seconds)
            report.remember(key, now, second_fields, rule.staleness_seconds)
        diff = three_way(first, second_fields, candidate_fields, ignore)
        stats.noisy_fields.update({path_shape(p) for p in diff.noisy})  # once per answer
        suspects = [p for p in diff.mismatched
                    if not report.seen_recently(key, p, candidate_fields.get(p, ABSENT), now,
                                                rule.staleness_seconds)]
        stale = len(diff.mismatched) - len(suspects) + keyed_explained
        suspects += keyed_mismatched
        still = suspects
        if suspects and config.recheck_seconds > 0:
            still = await self._recheck(sample, suspects, ignore, rule, key)
        stats.compared += 1
        if still:
            stats.mismatched += 1
            stats.mismatched_fields.update({path_shape(p) for p in still})
            if len(stats.sample_diffs) < config.sample_diffs:
                stats.sample_diffs.append({
                    "request": f"{sample.method} {sample.target}", "at": _now_iso(),
                    "fields": {path_text(p): {"primary": _clip(first.get(p, ABSENT)),
                                              "primary_again": _clip(second_fields.get(p, ABSENT)),
                                              "candidate": _clip(candidate_fields.get(p, ABSENT))}
                               for p in still[:10]}})
        elif suspects:
            stats.converged += 1
        elif stale:
            stats.within_staleness += 1
        else:
            stats.matched += 1

    async def _recheck(self, sample: _Sample, suspects: list[FieldPath], ignore, rule: EndpointRule,
                       key: str) -> list[FieldPath]:
        """Ask both sides again after recheck_seconds; the suspects that still differ."""
        await asyncio.sleep(sample.config.recheck_seconds)
        if not self._current(sample):
            return suspects
        before = await self._send(sample.config.primary_url, sample)
        candidate, after = await self._triple(sample)
        if candidate.error is not None:
            sample.report.endpoint(sample.route).candidate_errors[candidate.error] += 1
        if before.error or candidate.error or after.error:
            return suspects  # could not clear them
        first, again, cand = before.fields(), after.fields(), candidate.fields()
        keyed_mismatched: list[FieldPath] = []
        if rule.keyed_lists:
            first, again, cand = (_without_lists(f, rule.keyed_lists) for f in (first, again, cand))
            keyed_mismatched, _ = keyed_differences(rule, sample.target, before.document(), after.document(),
                                                    candidate.document(), self.clock())
        now = time.monotonic()
        if rule.staleness_seconds > 0:
            sample.report.remember(key, now, again, rule.staleness_seconds)
        diff = three_way(first, again, cand, ignore)
        differing = set(diff.mismatched) | set(keyed_mismatched)
        keyed = set(keyed_mismatched)  # already judged by their versions: no history to consult
        return [p for p in suspects if p in differing
                and (p in keyed or not sample.report.seen_recently(key, p, cand.get(p, ABSENT), now,
                                                                   rule.staleness_seconds))]

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued sample is compared (tests)."""
        if self._queue is not None:
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        for task in self._workers + self._background:
            task.cancel()
        if self._workers or self._background:
            await asyncio.gather(*self._workers, *self._background, return_exceptions=True)
        self._workers, self._background = [], []
        if self.emf is not None:
            self.emf.emit(self)  # a task scaled in still counts its last interval
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# --- the fleet's figures: CloudWatch Embedded Metric Format --------------------------------------

EMF_NAMESPACE = "Game/Shadow"
EMF_ROUTE_DIMENSIONS = ["Region", "MirrorId", "Route"]
EMF_HEARTBEAT_DIMENSIONS = ["Region", "MirrorId"]
EMF_VALUES_MAX = 100  # EMF takes at most 100 values of one metric per line


def _stdout_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _emf(timestamp_ms: int, dimensions: list[str], metrics: dict[str, tuple[str, Any]],
         properties: dict[str, Any]) -> dict[str, Any]:
    """One EMF document: `metrics` is name → (unit, value or list of values)."""
    directive = {"Namespace": EMF_NAMESPACE, "Dimensions": [dimensions],
                 "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in metrics.items()]}
    return {"_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [directive]}, **properties,
            **{name: value for name, (_, value) in metrics.items()}}


class EmfEmitter:
    """Prints one task's mirror figures as CloudWatch EMF lines (see the module doc): per route the
    counters since the last print and the latency values, a Heartbeat while mirroring, and each new
    sample diff as a plain JSON line."""

    def __init__(self, region: str, interval: float = 10.0, write: Callable[[str], None] = _stdout_line,
                 clock: Callable[[], float] = time.time) -> None:
        self.region = region
        self.interval = interval
        self._write = write
        self._clock = clock
        self._report: ShadowReport | None = None
        self._sent: dict[str, dict[str, int]] = {}  # route → counters already printed (this report)
        self._diffs: dict[str, int] = {}  # route → sample diffs already printed

    async def run(self, mirror: Mirror) -> None:
        """Print every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.emit(mirror)
            except Exception:  # a bug here must not end the printing for the life of the task
                log.exception("shadow: printing the EMF lines failed")

    def emit(self, mirror: Mirror) -> None:
        """Print what is due now, one JSON document per line (each well under the 16 KiB at which
        the container log drivers split a line)."""
        for doc in self.documents(mirror.active(), mirror.report):
            self._write(json.dumps(doc, separators=(",", ":"), default=str))

    def documents(self, config: ShadowConfig | None, report: ShadowReport | None) -> list[dict[str, Any]]:
        """The documents due now; what they carry is not carried again."""
        if report is None:
            return []
        if report is not self._report:  # a new mirror id: its counters start at zero
            self._report, self._sent, self._diffs = report, {}, {}
        now = int(self._clock() * 1000)
        base = {"Region": self.region, "MirrorId": report.config.mirror_id, "Target": report.config.target,
                "Geography": report.config.geography}
        docs = []
        if config is not None and config.mirror_id == report.config.mirror_id:
            docs.append(_emf(now, EMF_HEARTBEAT_DIMENSIONS, {"Heartbeat": ("Count", 1)}, base))
        for route, stats in sorted(report.endpoints.items()):
            props = {**base, "Route": route}
            docs += [_emf(now, EMF_ROUTE_DIMENSIONS, metrics, props) for metrics in self._route_lines(route, stats)]
            docs += [{**props, "shadow_sample_diff": diff} for diff in stats.sample_diffs[self._diffs.get(route, 0):]]
            self._diffs[route] = len(stats.sample_diffs)
        return docs

    def _route_lines(self, route: str, stats: EndpointStats) -> list[dict[str, tuple[str, Any]]]:
        """The metrics of one route's lines: the counters' deltas (all of them, when any moved) in the
        first, the latency values EMF_VALUES_MAX per line."""
        counts, sent = stats.counts(), self._sent.get(route, {})
        self._sent[route] = counts
        delta = {name: value - sent.get(name, 0) for name, value in counts.items()}
        lines: list[dict[str, tuple[str, Any]]] = []
        if any(delta.values()):
            lines.append({name: ("Count", value) for name, value in delta.items()})
        for name, latency in stats.latencies().items():
            values = latency.take_recent()
            for i in range(0, len(values), EMF_VALUES_MAX):
                if i // EMF_VALUES_MAX == len(lines):
                    lines.append({})
                lines[i // EMF_VALUES_MAX][name] = ("Milliseconds", values[i:i + EMF_VALUES_MAX])
        return lines


# --- the ASGI middleware -----------------------------------------------------------------------

class ShadowMiddleware:
    """Outermost middleware: tees sampled answers to the mirror after they are sent, and stamps
    Server-Timing on answers to mirrored requests."""

    def __init__(self, app: ASGIApp, mirror: Mirror) -> None:
        self.app = app
        self.mirror = mirror

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = scope.get("headers", [])
        if any(k == b"x-shadow" for k, _ in headers):
            await self.app(scope, receive, _server_timing(send, started))
            return
        config = self.mirror.active()
        if config is None or scope["method"] not in config.methods:
            await self.app(scope, receive, send)
            return
        geo_header = config.geo_header.encode("latin-1")
        geo = next((v for k, v in headers if k == geo_header), b"").decode("latin-1").strip().lower()
        if geo != config.geography:
            await self.app(scope, receive, send)
            return

        status, content_type = 500, ""
        chunks: list[bytes] | None = []
        size = 0
        request_body: list[bytes] = []

        async def tee_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and message.get("body"):
                request_body.append(message["body"])
            return message

        async def tee_send(message: Message) -> None:
            nonlocal status, content_type, chunks, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        content_type = v.decode("latin-1")
            elif message["type"] == "http.response.body" and chunks is not None:
                body = message.get("body", b"")
                size += len(body)
                if size > config.max_body_bytes:
                    chunks = None  # too large to compare: counted, never buffered
                elif body:
                    chunks.append(body)
            await send(message)

        await self.app(scope, tee_receive if scope["method"] not in ("GET", "HEAD") else receive, tee_send)
        # The live answer has been sent; from here on nothing the player waits for.
        try:
            self.mirror.offer(config, scope, status, chunks, content_type, b"".join(request_body),
                              (time.perf_counter() - started) * 1000)
        except Exception:
            log.exception("shadow: offering a sample failed")


def _server_timing(send: Send, started: float) -> Send:
    async def stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            duration = (time.perf_counter() - started) * 1000
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"server-timing", f"app;dur={duration:.3f}".encode())]}
        await send(message)

    return stamped


# --- the report endpoint -----------------------------------------------------------------------

router = APIRouter(tags=["internal"])


@router.get("/internal/shadow/report", include_in_schema=False)
async def shadow_report(request: Request) -> dict[str, Any]:
    """The mirror's configuration and report (re-reads the shadow file first). Internal: the load
    balancer must not route /internal to players."""
    return request.app.state.shadow.status()
