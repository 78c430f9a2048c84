"""RegionRuntime and Infrastructure in the lab: a region's Redis and app are local processes; its
"foundation" is a folder of its own (the ports were reserved when the lab was built)."""

from __future__ import annotations

import shutil
import time
from importlib.util import find_spec

from migrate.errors import LabError, ProviderError
from migrate.lab import processes, world
from migrate.lab.topology import LabTopology
from migrate.providers.protocols import ApiEndpoint, CheckpointFn, HealthResult, ProgressFn


class LabRegionRuntime:
    """Redis and the app of each region as processes of the lab."""

    def __init__(self, topology: LabTopology) -> None:
        self.t = topology

    def _guard(self, what: str, fn):
        try:
            return fn()
        except LabError as exc:
            raise ProviderError(f"lab: {what}: {exc.one_line()}", hint=exc.hint) from exc

    def ensure_cache(self, region: str) -> dict:
        started = self._guard(f"start {region}'s Redis", lambda: world.start_region_redis(self.t, region))
        return {"redis_url": self.t.redis_url(region), "pid": started.pid}

    def remove_cache(self, region: str) -> None:
        self._guard(f"stop {region}'s Redis", lambda: world.stop_region_redis(self.t, region))

    def cache_ready(self, region: str) -> bool:
        return world.redis_answers(self.t.redis_ports[region])

    def deploy_api(self, region: str) -> ApiEndpoint:
        self._guard(f"start {region}'s app", lambda: world.start_region_app(self.t, region))
        return self._endpoint(region)

    def remove_api(self, region: str) -> None:
        self._guard(f"stop {region}'s app", lambda: world.stop_region_app(self.t, region))

    def _endpoint(self, region: str) -> ApiEndpoint:
        return ApiEndpoint(region, "127.0.0.1", self.t.app_ports[region], self.t.app_url(region))

    def api_endpoint(self, region: str) -> ApiEndpoint | None:
        if processes.running_pid(self.t.lab_dir, world.app_process(region)) is None:
            return None
        return self._endpoint(region)

    def api_health(self, region: str, through_geography: str | None = None) -> HealthResult:
        import httpx

        base = (self.t.player_url(through_geography, region) if through_geography
                else self.t.app_url(region))
        start = time.perf_counter()
        try:
            response = httpx.get(f"{base}/health", timeout=5.0)
        except httpx.HTTPError as exc:
            return HealthResult(False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        latency = (time.perf_counter() - start) * 1000
        try:
            body = response.json()
        except ValueError:
            body = {}
        role = body.get("role") if isinstance(body, dict) else None  # app /health: {"role": "writer"|"replica", ...}
        detail = f"HTTP {response.status_code}" + (f", database {role}" if role else "") + f", {latency:.0f} ms"
        app = body.get("app") if isinstance(body, dict) and isinstance(body.get("app"), dict) else None
        return HealthResult(response.status_code == 200, detail, latency, app)

    def image_available(self) -> tuple[bool, str]:
        spec = find_spec("app")
        if spec is None:
            return False, "the game backend package `app` is not importable"
        return True, f"app package at {spec.origin}"


class LabInfrastructure:
    """A region's lab foundation: its folder (ports are reserved in lab.json when the lab is built)."""

    def __init__(self, topology: LabTopology) -> None:
        self.t = topology

    def _folder(self, region: str):
        return self.t.lab_dir / "regions" / region

    def commands(self, region: str, dry_run: bool) -> list[str]:
        return [f"mkdir -p {self._folder(region)}"]

    def preflight(self, region: str) -> list[tuple[str, bool, str]]:
        ports = all(region in m for m in (self.t.app_ports, self.t.redis_ports, self.t.pg_ports))
        redis = shutil.which("redis-server")
        return [("ports-reserved", ports, f"{region}'s ports {'reserved' if ports else 'missing'} in lab.json"),
                ("redis-server-installed", redis is not None,
                 redis or "redis-server not found: apt-get install -y redis-server")]

    def rehearse(self, region: str, checkpoint: CheckpointFn) -> list[str]:
        return [f"would create {self._folder(region)}"]

    def apply(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        self._folder(region).mkdir(parents=True, exist_ok=True)
        return {"folder": str(self._folder(region))}

    def destroy(self, region: str, checkpoint: CheckpointFn) -> None:
        shutil.rmtree(self._folder(region), ignore_errors=True)
