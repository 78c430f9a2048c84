"""HomeServing in the lab: the shared HOME_ROUTING_FILE every region's app watches, and each region's
own Redis (its leaderboard sorted set and matchmaking keys, prefix `game:<region>:`, app/config.py).

Moving a home's cache state is the shared mover's (migrate/providers/home_cache.py), the same as on AWS.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import redis

from migrate.errors import ProviderError
from migrate.lab.topology import LabTopology
from migrate.lab.world import HOME_ROUTING, write_atomic
from migrate.providers.home_cache import HomeCache
from migrate.providers.home_routing import entry, read_entry
from migrate.providers.lab.global_database import lab_errors

WHERE = "lab home serving"


class LabHomeServing:
    def __init__(self, topology: LabTopology) -> None:
        self.t = topology
        self.cache = HomeCache(self._redis, self._homed, where=WHERE,
                               routing_hint=f"the home routing file ({topology.home_routing_file})",
                               cache_hint="is the region's Redis up? `migrate lab status`")

    # ---- routing -------------------------------------------------------------------------------

    def _routing(self) -> dict[str, Any]:
        routing: dict[str, Any] = dict(HOME_ROUTING)
        try:
            routing.update(json.loads(self.t.home_routing_file.read_text()))
        except (OSError, ValueError):
            pass
        return routing

    def _entry(self, home: str) -> tuple[str, int]:
        return read_entry(self._routing(), home)

    def _write(self, home: str, region: str, epoch: int) -> None:
        routing = self._routing()
        routing[home] = entry(region, epoch)
        write_atomic(self.t.home_routing_file, json.dumps(routing, indent=2, sort_keys=True) + "\n")

    def serving(self, home: str) -> str:
        return self._entry(home)[0]

    def home_epoch(self, home: str) -> int:
        return self._entry(home)[1]

    def serve(self, home: str, region: str) -> None:
        if region not in self.t.redis_ports:
            raise ProviderError(f"{home}: serve from {region}: the lab has no such region", where=WHERE)
        serving, epoch = self._entry(home)
        if serving != region:
            self._write(home, region, epoch)

    def take_over(self, home: str, region: str, from_epoch: int) -> int:
        if region not in self.t.redis_ports:
            raise ProviderError(f"{home}: take over in {region}: the lab has no such region", where=WHERE)
        serving, epoch = self._entry(home)
        if epoch > from_epoch:  # taken over already (a resumed run): the same answer
            return epoch
        self._write(home, region, from_epoch + 1)
        return from_epoch + 1

    # ---- state ---------------------------------------------------------------------------------

    def _redis(self, region: str) -> redis.Redis:
        return redis.Redis.from_url(self.t.redis_url(region), socket_timeout=10)

    def _homed(self, home: str, player_ids: list[int]) -> set[int]:
        """Which of these players `home` homes (the origin holds every player's row)."""
        if not player_ids:
            return set()
        with psycopg.connect(self.t.primary().dsn(), autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute("SELECT id FROM players WHERE id = ANY(%s) AND home_region = %s",
                                (player_ids, home)).fetchall()
        return {row[0] for row in rows}

    def move_state(self, home: str, source: str, target: str) -> dict[str, Any]:
        with lab_errors(f"{home}: move {source} → {target}", WHERE):
            return self.cache.move_state(home, source, target)

    def state_counts(self, home: str, region: str) -> dict[str, int]:
        with lab_errors(f"{home}: count in {region}", WHERE):
            return self.cache.state_counts(home, region)
