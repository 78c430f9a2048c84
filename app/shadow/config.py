"""The switch document (SHADOW_FILE or SHADOW_PARAMETER), parsed and validated, and which requests are sampled."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from app.shadow.lists import KeyedList

SHADOW_HEADER = "x-shadow"
DEFAULT_GEO_HEADER = "x-player-geo"



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
    # top-level list fields compared per key, lag judged by each entry's version (app/shadow/lists.py)
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
