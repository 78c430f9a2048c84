"""HomeServing on AWS, for apps that run as many ECS tasks per region.

- Routing: the home routing map (the document the lab writes to its HOME_ROUTING_FILE: home → serving
  region, or {"region", "epoch"} once a region loss re-homed it) in an SSM parameter in every region
  ("/game/<region>/api/home-routing", under the API's SSM path, which its task role already reads).
  Every task polls its region's copy (HOME_ROUTING_PARAMETER, app/watched.WatchedParameter). A change
  is written to every region, then waited out for one poll of the tasks (their interval, jittered up
  to ×1.2, plus a margin): "returns once written" means every task reads it. Every copy is compared
  before a change, so a run that died between two regions' writes is finished by the next. A region whose SSM does
  not answer fails the change (TransientProviderError: run it again), except the home's own region
  during a take-over, which is the region that was lost; its copy is rewritten when it comes back.
- Reads (serving, epoch) come from the first region that answers, the source first.
- State: each region's ElastiCache through the shared mover (migrate/providers/home_cache.py), at the
  rediss:// URL (with its AUTH token) that Terraform keeps in "/game/<region>/api/redis-url"; which
  players a home homes, from the origin's writer (the schema phases' DatabaseAccess).

Every AWS call goes through `clients.call`, so only ProviderError / TransientProviderError leave here."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import redis

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.clients import AwsClients, ClientFactory, call
from migrate.providers.aws.ssm_map import PARAMETER_NOT_FOUND, SsmJsonMap
from migrate.providers.home_cache import HomeCache
from migrate.providers.home_routing import entry, read_entry

WHERE = "aws home serving"
APP_POLL_SECONDS = 5.0  # the apps' HOME_ROUTING_POLL_SECONDS default (app/config.py)


class AwsHomeServing:
    """HomeServing on SSM (the routing map) and ElastiCache (the state); see the module docstring."""

    def __init__(
        self,
        regions: Sequence[str],
        clients: ClientFactory | None = None,
        *,
        endpoint_url: str | None = None,
        routing_parameter: str = "/game/{region}/api/home-routing",
        redis_url_parameter: str = "/game/{region}/api/redis-url",
        origin_dsn: Callable[[], str] | None = None,
        origin_password: Callable[[], str] | None = None,
        app_poll_seconds: float = APP_POLL_SECONDS,
        propagation_margin: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """
        regions: every region of the spec, the source first (reads try them in this order).
        origin_dsn: libpq DSN of the origin's writer (DatabaseAccess.writer_dsn); None: moving state refuses.
        origin_password: its password (DatabaseAccess.password: the DSN carries none); None: the DSN's or libpq's own.
        app_poll_seconds / propagation_margin: how long a written map takes to reach every task.
        """
        self.regions = tuple(regions)
        self._clients = clients or AwsClients(endpoint_url=endpoint_url)
        self._redis_url = redis_url_parameter
        self._origin_dsn, self._origin_password = origin_dsn, origin_password
        self.routing = SsmJsonMap(self.regions, self._clients, routing_parameter, what="home routing map",
                                  where=WHERE, propagation_seconds=app_poll_seconds * 1.2 + propagation_margin,
                                  sleep=sleep)
        self.cache = HomeCache(self._redis, self._homed, where=WHERE,
                               routing_hint="HOME_ROUTING_PARAMETER (every region's copy)",
                               cache_hint="is the region's ElastiCache available, and reachable from here?")

    def parameter(self, region: str) -> str:
        """The routing map's SSM parameter in `region` (pure)."""
        return self.routing.parameter(region)

    def _entry(self, home: str) -> tuple[str, int]:
        return read_entry(self.routing.current(), home)

    def _write(self, copies: dict[str, dict[str, Any]], home: str, region: str, epoch: int, *,
               may_miss: str | None = None) -> None:
        routing = dict(next(iter(copies.values()), {}))
        routing[home] = entry(region, epoch)
        self.routing.write(routing, may_miss=may_miss)

    def serving(self, home: str) -> str:
        return self._entry(home)[0]

    def home_epoch(self, home: str) -> int:
        return self._entry(home)[1]

    def serve(self, home: str, region: str) -> None:
        self._known(home, region)
        copies = self.routing.every_copy()
        entries = {read_entry(c, home) for c in copies.values()}
        epoch = max(e for _, e in entries)  # the epoch never goes back
        if entries != {(region, epoch)}:
            self._write(copies, home, region, epoch)

    def take_over(self, home: str, region: str, from_epoch: int) -> int:
        self._known(home, region)
        copies = self.routing.every_copy(may_miss=home)  # the home's own region is the one that was lost
        entries = {read_entry(c, home) for c in copies.values()}
        epoch = max(e for _, e in entries)
        if epoch > from_epoch and entries == {(region, epoch)}:  # taken over already (a resumed run)
            return epoch
        epoch = max(epoch, from_epoch + 1)
        self._write(copies, home, region, epoch, may_miss=home)
        return epoch

    def _known(self, home: str, region: str) -> None:
        for name in (home, region):
            if name not in self.regions:
                raise ProviderError(f"{home}: serve from {region}: {name} is not a region of the spec "
                                    f"({', '.join(self.regions)})", where=WHERE)

    # ---- state ---------------------------------------------------------------------------------
    def _redis(self, region: str) -> redis.Redis:
        answer = call(self._clients("ssm", region), "get_parameter", region, absent=PARAMETER_NOT_FOUND,
                      Name=self._redis_url.format(region=region), WithDecryption=True)
        if answer is None:
            raise ProviderError(f"{region} has no cache URL ({self._redis_url.format(region=region)})", where=WHERE,
                                hint=f"run stand-up-region for {region} (Terraform writes it)")
        return redis.Redis.from_url(answer["Parameter"]["Value"], socket_timeout=10, socket_connect_timeout=10)

    def _homed(self, home: str, player_ids: list[int]) -> set[int]:
        if not player_ids:
            return set()
        if self._origin_dsn is None:
            raise ProviderError("the spec names no database_secret_id: the origin's players cannot be read",
                                where=WHERE, hint="set [environments.aws.aws] database_secret_id")
        try:
            password = {"password": self._origin_password()} if self._origin_password else {}
            with psycopg.connect(self._origin_dsn(), autocommit=True, connect_timeout=10, **password) as conn:
                rows = conn.execute("SELECT id FROM players WHERE id = ANY(%s) AND home_region = %s",
                                    (player_ids, home)).fetchall()
        except psycopg.OperationalError as exc:
            raise TransientProviderError(f"{home}: the origin's writer: {str(exc).strip().splitlines()[0]}",
                                         where=WHERE) from None
        return {row[0] for row in rows}

    def move_state(self, home: str, source: str, target: str) -> dict:
        return self.cache.move_state(home, source, target)

    def state_counts(self, home: str, region: str) -> dict:
        return self.cache.state_counts(home, region)
