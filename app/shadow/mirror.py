"""The mirror: the watched switch, a bounded queue and background workers that send each sampled read
to the candidate and again to the primary, and diff the three answers."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.types import Scope

from app.shadow.config import (
    SHADOW_HEADER,
    EndpointRule,
    ShadowConfig,
    player_sampled,
    token_subject,
)
from app.shadow.diff import (
    ABSENT,
    FieldPath,
    _Empty,
    answer_fields,
    path_shape,
    path_text,
    three_way,
)
from app.shadow.emf import EmfEmitter
from app.shadow.lists import compare_keyed
from app.shadow.report import ShadowReport, now_iso
from app.watched import WatchedJson, WatchedParameter

log = logging.getLogger("app.shadow")

# Not forwarded: connection-level headers, and the geography header (a mirrored request is never
# eligible again; X-Shadow says so too).
_NOT_FORWARDED = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
                  "upgrade", "proxy-connection", "proxy-authorization", "accept-encoding", SHADOW_HEADER}
SAMPLE_DIFF_VALUE_CHARS = 120

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
                    "request": f"{sample.method} {sample.target}", "at": now_iso(),
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
