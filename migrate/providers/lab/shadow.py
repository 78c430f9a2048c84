"""ShadowMirror in the lab: the switch is `<lab>/shadow.json`, which every lab app watches (the
default SHADOW_FILE is shadow.json beside READERS_FILE, and the lab keeps readers.json in the lab
folder), so mirroring starts and stops without restarting the live source app. The candidate is
reached through the source → target WAN link, as the source's app would reach it in AWS; the second
primary sample goes to the source app directly. The report is read from the source app."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from migrate.errors import ProviderError, TransientProviderError
from migrate.lab.topology import LabTopology
from migrate.providers.shadow import EndpointReport, IgnoreRules, MirrorReport, switch_document

WHERE = "lab shadow"
CONFIRM_SECONDS = 15.0


class LabShadowMirror:
    """Switches the mirror of the lab's source app through the watched shadow file."""

    def __init__(self, topology: LabTopology) -> None:
        self.t = topology

    @property
    def path(self) -> Path:
        return self.t.lab_dir / "shadow.json"

    # -- the switch ---------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            value = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ProviderError(f"{self.path} is unreadable: {exc}", where=WHERE,
                                hint="remove it; the next start writes it again") from exc
        return value if isinstance(value, dict) else {}

    def _write(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def start_mirror(self, source: str, target: str, geography: str, sample_rate: float, reads_only: bool,
                     ignore: IgnoreRules, *, mirror_id: str, recheck_seconds: float = 1.0) -> dict:
        if source == target:
            raise ProviderError(f"cannot mirror {source} to itself", where=WHERE)
        doc = switch_document(source, target, geography, sample_rate, reads_only, ignore, mirror_id=mirror_id,
                              recheck_seconds=recheck_seconds, primary_url=self.t.app_url(source),
                              candidate_url=self.t.peer_url(source, target))
        current = self._read()
        other = current.get("enabled") and current.get("mirror_id") != mirror_id and current.get("target") != target
        if other:
            raise ProviderError(f"{source} already mirrors {current.get('geography')} reads to "
                                f"{current.get('target')} (mirror {current.get('mirror_id')})", where=WHERE,
                                hint=f"roll back shadow-traffic for {current.get('target')} first: one "
                                     "mirror per source at a time")
        if current != doc:
            self._write(doc)
        report = self._confirm(source, lambda r: r.enabled and r.mirror_id == mirror_id, "start mirroring")
        return {"mirror_id": mirror_id, "switch": str(self.path), "candidate_url": doc["candidate_url"],
                "geography": geography, "sample_rate": sample_rate, "since": report.since}

    def stop_mirror(self, source: str) -> None:
        current = self._read()
        if not current.get("enabled"):
            return
        self._write({"enabled": False, "mirror_id": current.get("mirror_id"), "target": current.get("target"),
                     "stopped_at": datetime.now(UTC).isoformat(timespec="seconds")})
        try:  # best effort: a source app that is down reads the switch when it starts
            self._confirm(source, lambda r: not r.enabled, "stop mirroring", seconds=5.0)
        except ProviderError:
            pass

    def _confirm(self, source: str, done, what: str, seconds: float = CONFIRM_SECONDS) -> MirrorReport:
        deadline = time.monotonic() + seconds
        while True:
            report = self.mirror_report(source)
            if not report.available:
                raise ProviderError(f"{source}'s app cannot mirror: it watches no shadow file", where=WHERE,
                                    hint="restart it with SHADOW_FILE (or READERS_FILE) set: "
                                         "`migrate lab down && migrate lab up`")
            if report.config_error:
                raise ProviderError(f"{source}'s app refused {self.path}: {report.config_error}", where=WHERE)
            if done(report):
                return report
            if time.monotonic() > deadline:
                raise TransientProviderError(f"{source}'s app did not {what} within {seconds:g}s", where=WHERE,
                                             hint=f"see {self.t.lab_dir}/app-{source}.log")
            time.sleep(0.1)

    # -- the report ---------------------------------------------------------------------------
    def mirror_report(self, source: str) -> MirrorReport:
        url = f"{self.t.internal_url(source)}/internal/shadow/report"
        try:
            response = httpx.get(url, timeout=5.0)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TransientProviderError(f"{source}'s app did not give its shadow report: "
                                         f"{type(exc).__name__}: {exc}", where=WHERE,
                                         hint="is it running? `migrate lab status`") from exc
        if response.status_code != 200:
            raise TransientProviderError(f"{source}'s shadow report: HTTP {response.status_code}", where=WHERE)
        return parse_report(source, body)


def parse_report(source: str, body: dict[str, Any]) -> MirrorReport:
    """The app's GET /internal/shadow/report body as a MirrorReport."""
    config = body.get("config") or {}
    endpoints = []
    for route, e in sorted((body.get("endpoints") or {}).items()):
        endpoints.append(EndpointReport(
            route=route, eligible=e["eligible"], sampled=e["sampled"], mirrored=e["mirrored"],
            compared=e["compared"], mismatched=e["mismatched"], converged=e["converged"],
            within_staleness=e["within_staleness"], not_diffed=e["not_diffed"],
            candidate_errors=e["candidate_errors"], lost=e["lost"], loss=dict(e.get("loss") or {}),
            candidate_errors_by_kind=dict(e.get("candidate_errors_by_kind") or {}),
            mismatched_fields=dict(e.get("mismatched_fields") or {}),
            noisy_fields=dict(e.get("noisy_fields") or {}), sample_diffs=tuple(e.get("sample_diffs") or ()),
            latency=dict(e.get("latency") or {})))
    return MirrorReport(source=source, available=bool(body.get("configured")), enabled=bool(body.get("enabled")),
                        mirror_id=body.get("mirror_id"), target=config.get("target"),
                        geography=config.get("geography"), since=body.get("since"),
                        endpoints=tuple(endpoints), queue_depth=(body.get("queue") or {}).get("depth", 0),
                        config_error=body.get("config_error"))
