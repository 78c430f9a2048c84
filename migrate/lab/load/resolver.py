"""Route 53 the way a player's resolver sees it: the `api.game.example` records read from Route 53
(moto in the lab), a region chosen per player by the records' routing policy, health-aware, TTL
honoured.

- Records are re-read only when the TTL of the last read has run out, so a weight change made in
  Route 53 reaches players one TTL later at most, as in the real world. A failed re-read serves the
  last good records (serve-stale) and is counted.
- A player's answer is cached for what is left of that TTL: the weighted pick is a hash of (seed,
  player id, TTL generation), so a player sticks to one record for a TTL and the share of players on
  each record follows the weights.
- Weighted (Route 53's rules): only healthy records with weight > 0 are considered; if none is
  healthy, healthy weight-0 records are considered (equal shares); if nothing is healthy every
  record counts as healthy. All weights 0 → equal shares.
- Latency (SetIdentifier "<region>-latency", `Region` field): the healthy record whose region has the
  lowest round trip from the player's geography (`player_rtt_ms`); all unhealthy → all considered.
- A record without a health check is always healthy. Health is Route 53's: checkers (one per player
  geography here, probing the region's app through that geography's WAN link) each track consecutive
  results against the check's FailureThreshold, and the check is healthy while more than 18 % of the
  checkers say so (so a cut link between one geography and a region does not take the region out of
  DNS, exactly as a real checker fleet would not). `Disabled` checks are healthy; `Inverted` inverts.
- Geolocation (records carrying `GeoLocation`): the API name answers a player with a pool name by the
  continent of the player's geography (`GEO_CONTINENT`), falling back to the default location ("*"),
  as Route 53 does; the pool name's own records (weighted or latency) then pick the region. This is
  how routing is scoped per geography (migrate/providers/aws/dns.py). Without geolocation records the
  API name's own records pick the region.
- Record → region: the `Region` field, else a SetIdentifier that starts with a region name, else a
  value whose first label is a region ("<region>.lb.game.example")."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import httpx

from migrate.names import API_NAME, HOSTED_ZONE, fqdn
from migrate.lab.topology import GEO_CONTINENT, GEOGRAPHIES, REGIONS, player_rtt_ms

ZONE_NAME = fqdn(HOSTED_ZONE)
HEALTHY_FRACTION = 0.18  # Route 53: healthy when more than 18 % of its checkers report healthy
DEFAULT_FAILURE_THRESHOLD = 3  # Route 53's default when a check does not say


class ResolveError(Exception):
    """The name could not be resolved (no zone, no records, Route 53 unreachable and nothing cached)."""


@dataclass(frozen=True)
class Record:
    """One resource record set of the API name, reduced to what routing needs."""

    region: str  # the region it sends players to
    policy: str  # "weighted", "latency" or "simple"
    value: str  # the first value (CNAME target or address), for display
    ttl: int  # seconds a resolver may cache the answer
    set_identifier: str | None = None
    weight: int | None = None  # weighted records only
    health_check_id: str | None = None  # None: always healthy

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "policy": self.policy, "value": self.value, "ttl": self.ttl,
                "set_identifier": self.set_identifier, "weight": self.weight,
                "health_check_id": self.health_check_id}


def record_region(rrset: dict[str, Any], regions: Iterable[str] = REGIONS) -> str | None:
    """The region a record set points at: Region field, SetIdentifier prefix, or value's first label."""
    regions = tuple(regions)
    if rrset.get("Region") in regions:
        return rrset["Region"]
    ident = rrset.get("SetIdentifier") or ""
    for region in sorted(regions, key=len, reverse=True):
        if ident == region or ident.startswith(region + "-"):
            return region
    values = [v.get("Value", "") for v in rrset.get("ResourceRecords") or []]
    alias = (rrset.get("AliasTarget") or {}).get("DNSName")
    if alias:
        values.append(alias)
    for value in values:
        first = value.rstrip(".").split(".", 1)[0].lower()
        if first in regions:
            return first
    return None


def parse_records(rrsets: Iterable[dict[str, Any]], name: str = API_NAME,
                  regions: Iterable[str] = REGIONS) -> tuple[list[Record], list[str]]:
    """The record sets of `name` as Records, plus a note for each one whose region is unknown."""
    records, notes = [], []
    for rr in rrsets:
        if fqdn(rr.get("Name", "")) != fqdn(name) or rr.get("Type") not in ("CNAME", "A", "AAAA"):
            continue
        region = record_region(rr, regions)
        if region is None:
            notes.append(f"record {rr.get('SetIdentifier') or rr.get('Name')} maps to no known region")
            continue
        if "Weight" in rr:
            policy = "weighted"
        elif "Region" in rr:
            policy = "latency"
        else:
            policy = "simple"
        values = [v.get("Value", "") for v in rr.get("ResourceRecords") or []]
        value = values[0] if values else (rr.get("AliasTarget") or {}).get("DNSName", "")
        records.append(Record(region=region, policy=policy, value=value,
                              ttl=int(rr.get("TTL", 60)), set_identifier=rr.get("SetIdentifier"),
                              weight=int(rr["Weight"]) if "Weight" in rr else None,
                              health_check_id=rr.get("HealthCheckId")))
    return records, notes


@dataclass(frozen=True)
class GeoRecord:
    """One geolocation record of the API name: players at `location` are answered with `target` (a name)."""

    location: str  # a continent code ("AS"), a country code, or "*" (the default location)
    target: str  # the name it answers with (FQDN), e.g. "apac.api.game.example."
    ttl: int
    set_identifier: str | None = None


def parse_front(rrsets: Iterable[dict[str, Any]], name: str = API_NAME) -> list[GeoRecord]:
    """The geolocation records of `name` (empty when its routing is not scoped by geography)."""
    front = []
    for rr in rrsets:
        if fqdn(rr.get("Name", "")) != fqdn(name) or "GeoLocation" not in rr:
            continue
        where = rr["GeoLocation"]
        location = where.get("CountryCode") or where.get("ContinentCode") or "*"
        values = [v.get("Value", "") for v in rr.get("ResourceRecords") or []]
        target = values[0] if values else (rr.get("AliasTarget") or {}).get("DNSName", "")
        front.append(GeoRecord(location, fqdn(target), int(rr.get("TTL", 60)), rr.get("SetIdentifier")))
    return front


def pick_location(front: list[GeoRecord], geography: str) -> GeoRecord | None:
    """Route 53's geolocation answer for a player of `geography`: its continent's record, else the default."""
    continent = GEO_CONTINENT.get(geography)
    return (next((g for g in front if g.location == continent), None)
            or next((g for g in front if g.location == "*"), None))


@dataclass(frozen=True)
class HealthCheckSpec:
    """What a checker needs from a Route 53 health check (the region comes from its record)."""

    check_id: str
    region: str
    type: str = "HTTP"  # HTTP, HTTPS, HTTP_STR_MATCH, HTTPS_STR_MATCH, TCP; others: not probed
    path: str = "/health"
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    inverted: bool = False
    disabled: bool = False
    search_string: str | None = None

    @classmethod
    def from_config(cls, check_id: str, region: str, config: dict[str, Any]) -> "HealthCheckSpec":
        return cls(check_id=check_id, region=region, type=config.get("Type", "HTTP"),
                   path=config.get("ResourcePath") or "/",
                   failure_threshold=int(config.get("FailureThreshold") or DEFAULT_FAILURE_THRESHOLD),
                   inverted=bool(config.get("Inverted", False)), disabled=bool(config.get("Disabled", False)),
                   search_string=config.get("SearchString"))


@dataclass
class _Checker:
    """One checker's view of one health check: Route 53 flips it after FailureThreshold consecutive
    results that disagree with its current status."""

    healthy: bool = True  # Route 53 treats a new health check as healthy until it has data
    streak: int = 0  # consecutive results disagreeing with `healthy`
    probes: int = 0
    last_error: str | None = None

    def observe(self, ok: bool, threshold: int) -> None:
        self.probes += 1
        if ok == self.healthy:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= threshold:
            self.healthy, self.streak = ok, 0


Endpoint = Callable[[str, str], tuple[str, int]]  # (geography, region) → (host, port) of the app


class HealthCheckers:
    """Route 53's health checkers, played by the load generator: every `interval_s` each checker (one
    per geography) probes each health-checked region's app through that geography's link."""

    def __init__(self, endpoint: Endpoint, *, interval_s: float = 1.0, timeout_s: float = 1.0,
                 geographies: Iterable[str] = GEOGRAPHIES) -> None:
        self.endpoint = endpoint
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.geographies = tuple(geographies)
        self._specs: dict[str, HealthCheckSpec] = {}
        self._state: dict[tuple[str, str], _Checker] = {}  # (check id, geography) → checker
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=max(1, 3 * len(self.geographies)),
                                        thread_name_prefix="health")
        self._client = httpx.Client(timeout=timeout_s)
        self.rounds = 0

    def watch(self, specs: Iterable[HealthCheckSpec]) -> None:
        """Set the health checks to probe (a check no record uses any more stops being probed)."""
        with self._lock:
            self._specs = {s.check_id: s for s in specs}

    def _probe(self, spec: HealthCheckSpec, geography: str) -> tuple[bool, str | None]:
        host, port = self.endpoint(geography, spec.region)
        kind = spec.type.upper()
        try:
            if kind == "TCP":
                with httpx.Client(timeout=self.timeout_s) as c:  # a connect is the whole check
                    c.get(f"http://{host}:{port}/", headers={"Connection": "close"})
                return True, None
            if not kind.startswith("HTTP"):
                return True, None  # CALCULATED / CLOUDWATCH_METRIC: nothing to probe in the lab
            # A fresh connection per probe, as a Route 53 checker makes: a cut link fails the connect.
            response = self._client.get(f"http://{host}:{port}{spec.path}", headers={"Connection": "close"})
            ok = 200 <= response.status_code < 400
            if ok and kind.endswith("STR_MATCH") and spec.search_string:
                ok = spec.search_string in response.text[:5120]  # Route 53 searches the first 5,120 bytes
            return ok, None if ok else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            if kind == "TCP" and not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                return True, None  # connected; the HTTP exchange does not matter for TCP checks
            return False, type(exc).__name__

    def probe_once(self) -> None:
        """One round: every checker probes every check (in parallel), then statuses are updated."""
        with self._lock:
            specs = list(self._specs.values())
        jobs = [(s, g, self._pool.submit(self._probe, s, g)) for s in specs for g in self.geographies]
        results = [(s, g, f.result()) for s, g, f in jobs]
        with self._lock:
            for spec, geography, (ok, error) in results:
                checker = self._state.setdefault((spec.check_id, geography), _Checker())
                checker.observe(ok, spec.failure_threshold)
                checker.last_error = error
            self.rounds += 1

    def is_healthy(self, check_id: str | None) -> bool:
        """Route 53's status of a health check (no check, unknown check: healthy)."""
        if check_id is None:
            return True
        with self._lock:
            spec = self._specs.get(check_id)
            if spec is None:
                return True
            if spec.disabled:
                return True
            checkers = [self._state.get((check_id, g)) for g in self.geographies]
            votes = [c.healthy if c is not None else True for c in checkers]
        status = sum(votes) / len(votes) > HEALTHY_FRACTION
        return not status if spec.inverted else status

    def snapshot(self) -> dict[str, Any]:
        """check id → {region, healthy, per-geography checker state}: for reports."""
        out = {}
        with self._lock:
            specs = list(self._specs.values())
        for spec in specs:
            with self._lock:
                per_geo = {g: {"healthy": c.healthy, "probes": c.probes, "last_error": c.last_error}
                           for g in self.geographies if (c := self._state.get((spec.check_id, g)))}
            out[spec.check_id] = {"region": spec.region, "healthy": self.is_healthy(spec.check_id),
                                  "checkers": per_geo}
        return out

    def start(self) -> None:
        """Probe once now (so the first answers already know the health), then every interval."""
        self.probe_once()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="health-checkers", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.probe_once()
            except Exception:  # noqa: BLE001 — a checker bug must not kill the load run
                pass

    def close(self) -> None:
        """Stop probing (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s * 3 + self.interval_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def route53_client(endpoint_url: str | None, region: str = "us-east-1"):
    """A boto3 Route 53 client; against moto (an endpoint URL) with fake credentials and no retries."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5)
    if endpoint_url is None:
        return boto3.client("route53", region_name=region, config=config)
    return boto3.client("route53", endpoint_url=endpoint_url, region_name=region, config=config,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@dataclass
class _Generation:
    records: list[Record]  # the API name's own records (unscoped routing)
    fetched_at: float
    expires_at: float
    number: int
    front: list[GeoRecord] = field(default_factory=list)  # the API name's geolocation records
    pools: dict[str, list[Record]] = field(default_factory=dict)  # pool name (FQDN) → its records

    def all_records(self) -> list[Record]:
        return self.records + [r for pool in self.pools.values() for r in pool]


@dataclass
class ResolverStats:
    record_reads: int = 0
    read_failures: int = 0
    last_read_error: str | None = None
    notes: list[str] = field(default_factory=list)
    answers: dict[str, dict[str, int]] = field(default_factory=dict)  # geography → region → answers


class Resolver:
    """Resolves the API name to a region for one player, like that player's resolver would.

    `clock` is monotonic seconds (injectable so TTL behaviour is testable without sleeping)."""

    def __init__(self, client, health: HealthCheckers | None = None, *, name: str = API_NAME,
                 zone: str = ZONE_NAME, seed: int = 0, clock: Callable[[], float] = time.monotonic,
                 rtt_ms: Callable[[str, str], float] = player_rtt_ms, regions: Iterable[str] = REGIONS) -> None:
        self.client = client
        self.health = health
        self.name = name
        self.zone = zone
        self.seed = seed
        self.clock = clock
        self.rtt_ms = rtt_ms
        self.regions = tuple(regions)
        self.stats = ResolverStats()
        self._zone_id: str | None = None
        self._gen: _Generation | None = None
        self._answers: dict[tuple[str, int], tuple[int, str]] = {}  # (geo, player) → (generation, region)
        self._lock = threading.Lock()

    # -- Route 53 reads -------------------------------------------------------------------------

    def _zone(self) -> str:
        if self._zone_id is None:
            zones = self.client.list_hosted_zones_by_name(DNSName=self.zone).get("HostedZones", [])
            match = [z for z in zones if fqdn(z["Name"]) == fqdn(self.zone)]
            if not match:
                raise ResolveError(f"no hosted zone {self.zone} in Route 53")
            self._zone_id = match[0]["Id"]
        return self._zone_id

    def _list(self, name: str) -> list[dict[str, Any]]:
        """Every record set of `name` (listed from that name on, as Route 53 orders names)."""
        zone_id = self._zone()
        rrsets, kwargs = [], {"HostedZoneId": zone_id, "StartRecordName": name}
        while True:
            page = self.client.list_resource_record_sets(**kwargs)
            batch = page.get("ResourceRecordSets", [])
            rrsets.extend(r for r in batch if fqdn(r["Name"]) == fqdn(name))
            past = any(fqdn(r["Name"]) != fqdn(name) for r in batch)
            if not page.get("IsTruncated") or past:
                return rrsets
            kwargs = {"HostedZoneId": zone_id, "StartRecordName": page["NextRecordName"],
                      "StartRecordType": page["NextRecordType"]}
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def _parse(self, rrsets: list[dict[str, Any]], name: str) -> list[Record]:
        records, notes = parse_records(rrsets, name, self.regions)
        for note in notes:
            if note not in self.stats.notes:
                self.stats.notes.append(note)
        return records

    def _read(self) -> tuple[list[Record], list[GeoRecord], dict[str, list[Record]]]:
        """(the API name's records, its geolocation records, each answered pool's records)."""
        rrsets = self._list(self.name)
        front = parse_front(rrsets, self.name)
        records = self._parse([r for r in rrsets if "GeoLocation" not in r], self.name)
        pools = {g.target: self._parse(self._list(g.target), g.target) for g in front}
        if self.health is not None:
            every = records + [r for pool in pools.values() for r in pool]
            specs = []
            for check_id in sorted({r.health_check_id for r in every if r.health_check_id}):
                region = next(r.region for r in every if r.health_check_id == check_id)
                config = self.client.get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"]
                specs.append(HealthCheckSpec.from_config(check_id, region, config))
            self.health.watch(specs)
        return records, front, pools

    def needs_refresh(self) -> bool:
        """True when the cached records' TTL has run out (or nothing was read yet)."""
        gen = self._gen
        return gen is None or self.clock() >= gen.expires_at

    def refresh(self, force: bool = False) -> None:
        """Re-read the records if their TTL ran out; on failure keep serving the last good ones."""
        with self._lock:
            if not force and not self.needs_refresh():
                return
            now = self.clock()
            try:
                records, front, pools = self._read()
            except Exception as exc:  # noqa: BLE001 — botocore/connection errors: serve stale, count
                self.stats.read_failures += 1
                self.stats.last_read_error = f"{type(exc).__name__}: {exc}"[:300]
                if isinstance(exc, ResolveError) or "NoSuchHostedZone" in str(exc):
                    self._zone_id = None
                if self._gen is None:
                    raise ResolveError(f"cannot read {self.name} from Route 53: {exc}") from exc
                # Retry after a second, not a full TTL: what a resolver does on SERVFAIL.
                self._gen.expires_at = now + 1.0
                return
            self.stats.record_reads += 1
            # A resolver caches each name for its own TTL; re-reading all at the shortest is the same or fresher.
            ttl = min([r.ttl for r in records] + [g.ttl for g in front]
                      + [r.ttl for pool in pools.values() for r in pool], default=5)
            number = self._gen.number + 1 if self._gen else 1
            self._gen = _Generation(records, now, now + max(ttl, 0), number, front, pools)

    @property
    def records(self) -> list[Record]:
        """Every record that can route a player to a region (the API name's and its pools')."""
        return self._gen.all_records() if self._gen else []

    # -- answers --------------------------------------------------------------------------------

    def resolve(self, geography: str, player_id: int, *, refresh: bool = True) -> str:
        """The region this player's requests go to now (re-reads Route 53 only after the TTL).

        refresh=False never calls Route 53 (an event loop refreshes from a thread instead and
        meanwhile answers from the records it has, for at most the duration of one read)."""
        if refresh and self.needs_refresh():
            self.refresh()
        gen = self._gen
        if gen is None or not (gen.records or gen.front):
            raise ResolveError(f"no records for {self.name}")
        key = (geography, player_id)
        cached = self._answers.get(key)
        if cached is not None and cached[0] == gen.number:
            return cached[1]
        region = self._choose(gen, geography, player_id)
        self._answers[key] = (gen.number, region)
        per_geo = self.stats.answers.setdefault(geography, {})
        per_geo[region] = per_geo.get(region, 0) + 1
        return region

    def _healthy(self, record: Record) -> bool:
        return self.health.is_healthy(record.health_check_id) if self.health else True

    def _choose(self, gen: _Generation, geography: str, player_id: int) -> str:
        records = gen.records
        if gen.front:
            answer = pick_location(gen.front, geography)
            if answer is None:
                raise ResolveError(f"{self.name} has no geolocation record for {geography} players and no default")
            records = gen.pools.get(answer.target) or []
            if not records:
                raise ResolveError(f"{answer.target} (the {geography} pool) has no records")
        latency = [r for r in records if r.policy == "latency"]
        if latency:  # Route 53 forbids mixing policies; moto allows it: latency (the end state) wins
            candidates = [r for r in latency if self._healthy(r)] or latency
            best = min(candidates, key=lambda r: (self.rtt_ms(geography, r.region), r.region))
            return best.region
        weighted = [r for r in records if r.policy == "weighted"]
        if not weighted:
            return records[0].region  # a simple record: one answer
        draw = random.Random(f"{self.seed}:{player_id}:{gen.number}").random()
        return pick_weighted(weighted, self._healthy, draw).region

    def healthy_regions(self) -> dict[str, bool]:
        """region → is its record healthy now (for reports)."""
        return {r.region: self._healthy(r) for r in self.records}


def pick_weighted(records: list[Record], healthy: Callable[[Record], bool], draw: float) -> Record:
    """Route 53's weighted choice for a uniform `draw` in [0, 1)."""
    records = sorted(records, key=lambda r: (r.set_identifier or "", r.region))
    nonzero = [r for r in records if (r.weight or 0) > 0]
    zero = [r for r in records if (r.weight or 0) == 0]
    pool = [r for r in nonzero if healthy(r)]
    if not pool:
        pool = [r for r in zero if healthy(r)]
        if pool:
            return pool[min(int(draw * len(pool)), len(pool) - 1)]
        pool = nonzero or zero  # nothing healthy: every record counts as healthy
        if not nonzero:
            return pool[min(int(draw * len(pool)), len(pool) - 1)]
    total = sum(r.weight or 0 for r in pool)
    point, acc = draw * total, 0.0
    for r in pool:
        acc += r.weight or 0
        if point < acc:
            return r
    return pool[-1]
