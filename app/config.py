"""Settings, read only from environment variables (names in app/README.md).

JSON-valued variables (PEER_REGIONS, SESSION_KEYS, HOME_ROUTING) are parsed as JSON objects; a
malformed value stops the process at start-up with a message naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One region's configuration; immutable once the app is built."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, frozen=True,
                                      extra="ignore")

    region: str = Field(min_length=1, description="this instance's region, e.g. us-east-1")
    writer_dsn: str = Field(min_length=1, description="libpq DSN of the global writer")
    reader_dsn: str | None = Field(default=None, description="DSN to read from; default: writer")
    readers_file: Path | None = Field(
        default=None, description="JSON file region → reader DSN, re-read when it changes; wins "
                                  "over READER_DSN for this region when it names it")
    writers_file: Path | None = Field(
        default=None, description="JSON file home region → DSN of that home's writer (cutover moves a home "
                                  "to its own writer), re-read when it changes; a home it does not name "
                                  "writes to WRITER_DSN")
    writers_parameter: str | None = Field(
        default=None, description="SSM parameter (in REGION) holding the same map as WRITERS_FILE, polled every "
                                  "WRITERS_POLL_SECONDS; wins over it (AWS: every task reads one map). An entry "
                                  "that names only host and port takes the rest from WRITER_DSN")
    writers_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often WRITERS_PARAMETER is read (jittered): a cutover's held "
                                              "writes wait for it, so keep it well under WRITE_HOLD_SECONDS")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="this region's Redis")
    redis_prefix: str | None = Field(default=None, description="key prefix; default 'game:<region>:'")
    peer_regions: dict[str, str] = Field(
        default_factory=dict, description="region → base URL of that region's API (global board)")
    session_keys: dict[str, SecretStr] = Field(
        description="key id → HMAC secret; every key verifies, the active one signs")
    session_active_key: str | None = Field(default=None, description="signing key id; default first")
    session_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 86400)
    session_epoch: int = Field(default=1, ge=0, description="stamped in new tokens; older refused")
    home_routing: dict[str, str | dict] = Field(
        default_factory=dict, description="player home_region → region currently serving it (identity when "
                                          "absent), or {\"region\": …, \"epoch\": n}: the home's epoch, bumped each "
                                          "time a region loss re-homes it (a write carrying an older one is refused)")
    home_routing_file: Path | None = Field(
        default=None, description="JSON file with the same map, re-read when it changes")
    home_routing_parameter: str | None = Field(
        default=None, description="SSM parameter (in REGION) holding the same map, polled; wins over "
                                  "HOME_ROUTING_FILE (AWS: every task of the region reads one map)")
    home_routing_poll_seconds: float = Field(default=5.0, gt=0, le=60,
                                             description="how often HOME_ROUTING_PARAMETER is read (jittered)")
    internal_port: int | None = Field(
        default=None, ge=1, le=65535, description="port of the internal listener: /metrics and /internal/* "
                                                  "answer only there (404 on the public port); none: nowhere")
    app_version: str = Field(default="dev")
    app_generation: int = Field(default=1, ge=1, le=2, description="1: the game as it runs today; 2: the "
                                "app for home-region writers (sign-up, per-writer ids); app/generations.py")
    asset_bucket: str | None = Field(default=None, description="S3 bucket of the region's assets")
    asset_base_url: str | None = Field(default=None, description="CloudFront/S3 endpoint base URL")
    match_size: int = Field(default=2, ge=2, le=16, description="players per match")
    ticket_ttl_seconds: int = Field(default=300, ge=5, le=86400)
    cross_match_widening: list[tuple[float, float]] = Field(
        default=[(1.0, 50.0), (3.0, 100.0), (6.0, 200.0)], description="JSON [[seconds waited, largest round "
        "trip to the host in ms], …] ascending: a ticket joins cross-region matches after the first wait "
        "(app/match_policy.py); [] keeps every match in its home region")
    cross_match_interval_seconds: float = Field(default=0.25, gt=0, le=60,
                                                description="how often this region looks for cross-region matches")
    cross_match_lease_seconds: float = Field(default=3.0, gt=0, le=300, description="how long an owner holds "
                                             "a claimed ticket before asking the coordinator to settle it")
    read_your_writes_wait_ms: int = Field(default=200, ge=0, le=5000,
                                          description="how long a read waits for the replica")
    db_timeout_seconds: float = Field(default=2.0, gt=0, le=60,
                                      description="wait for a pooled connection before 503")
    db_pool_max: int = Field(default=10, ge=1, le=200)
    write_hold_seconds: float = Field(default=3.0, ge=0, le=30, description="how long a write to a "
                                      "fenced home (a cutover in progress) is held and retried before a "
                                      "retryable 503")
    write_hold_max: int = Field(default=200, ge=0, le=10000, description="writes held at once; one more "
                                "gets the retryable 503 at once")
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    peer_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    global_cache_seconds: float = Field(
        default=1.0, ge=0, description="a peer's top-100 is reused this long before a refetch")
    global_max_stale_seconds: float = Field(
        default=10.0, ge=0, description="a cached peer top-100 may be served (while refreshing in "
                                        "the background) up to this age")
    health_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    shadow_file: Path | None = Field(
        default=None, description="JSON file switching shadow traffic on and off (app/shadow.py), "
                                  "re-read when it changes; default: shadow.json beside READERS_FILE")
    shadow_parameter: str | None = Field(
        default=None, description="SSM parameter (in REGION) holding the same switch, polled; wins "
                                  "over SHADOW_FILE (AWS: every task reads one switch)")
    shadow_poll_seconds: float = Field(default=5.0, gt=0, le=300,
                                       description="how often SHADOW_PARAMETER is read (jittered)")
    shadow_metrics: Literal["emf"] | None = Field(
        default=None, description="'emf': print the mirror's figures as CloudWatch Embedded Metric "
                                  "Format lines on stdout (ECS awslogs turns them into metrics)")
    shadow_metrics_seconds: float = Field(default=10.0, gt=0, le=300,
                                          description="how often the EMF lines are printed")

    @field_validator("peer_regions")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for region, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"PEER_REGIONS[{region!r}] must be an http(s) URL, got {url!r}")
        return {region: url.rstrip("/") for region, url in value.items()}

    @field_validator("cross_match_widening")
    @classmethod
    def _widening(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if any(b[0] <= a[0] or b[1] <= a[1] for a, b in zip(value, value[1:])) or any(
                w < 0 or ms <= 0 for w, ms in value):
            raise ValueError("CROSS_MATCH_WIDENING must be [[seconds, ms], …] with both rising")
        return value

    @model_validator(mode="after")
    def _keys(self) -> Settings:
        if not self.session_keys:
            raise ValueError("SESSION_KEYS must name at least one key id → secret")
        if self.session_active_key is not None and self.session_active_key not in self.session_keys:
            raise ValueError(f"SESSION_ACTIVE_KEY {self.session_active_key!r} is not in SESSION_KEYS")
        for kid, secret in self.session_keys.items():
            if len(secret.get_secret_value()) < 16:
                raise ValueError(f"SESSION_KEYS[{kid!r}] is shorter than 16 characters")
        return self

    @property
    def signing_key_id(self) -> str:
        """The key id new tokens are signed with."""
        return self.session_active_key or next(iter(self.session_keys))

    @property
    def shadow_path(self) -> Path | None:
        """The shadow file: SHADOW_FILE, else shadow.json beside READERS_FILE (the operator's files
        for one deployment live together), else None (mirroring unavailable)."""
        if self.shadow_file is not None:
            return self.shadow_file
        return self.readers_file.parent / "shadow.json" if self.readers_file is not None else None

    @property
    def key_prefix(self) -> str:
        """Prefix of every Redis key this region writes (so regions can share a Redis in tests)."""
        return self.redis_prefix if self.redis_prefix is not None else f"game:{self.region}:"
