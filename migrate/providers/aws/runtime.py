"""The RegionRuntime Protocol on AWS: the region's Redis on ElastiCache and its game API on ECS Fargate
behind the region's ALB.

Names follow terraform/modules/region (prefix "game", region short code e.g. "apne1"), so that after the
region's Terraform root is applied this adapter finds what Terraform made instead of making a twin:
  ECS cluster "game-apne1", service and task definition family "game-apne1-api", ALB "game-apne1-api",
  ElastiCache replication group "game-apne1-redis".
Each is a template with "{region}" and "{short}" and can be overridden. What is absent is created:
the cluster, the service (from the family's latest revision, with per-region network options) and the
replication group (TLS in transit and encryption at rest, always). The task definition and the ALB are
Terraform's; without them deploy_api fails with a hint instead of guessing a network.

Reading /health goes to https://<ALB DNS name>/health with SNI and Host set to the API's public name (the
ALB's certificate is for that name, not for *.elb.amazonaws.com); tests inject a base URL instead.

Every AWS call goes through `clients.call`, so only ProviderError / TransientProviderError leave here;
api_health and image_available report failures as values, as their contracts say.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from migrate.errors import ProviderError
from migrate.providers.aws.clients import AwsClients, ClientFactory, call
from migrate.providers.aws.clients import AccountGuard, env_clients
from migrate.providers.protocols import ApiEndpoint, HealthResult

log = logging.getLogger(__name__)

MANAGED_TAG = {"Key": "managed-by", "Value": "migrate"}
GROUP_NOT_FOUND = frozenset({"ReplicationGroupNotFoundFault"})
LB_NOT_FOUND = frozenset({"LoadBalancerNotFound"})
CLUSTER_NOT_FOUND = frozenset({"ClusterNotFoundException"})
SERVICE_GONE = frozenset({"ServiceNotFoundException", "ServiceNotActiveException", "ClusterNotFoundException"})
_BROKEN_CACHE_STATES = frozenset({"create-failed"})
_DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c", "northeast": "ne",
               "northwest": "nw", "southeast": "se", "southwest": "sw"}
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[a-z0-9._/-]+)"
    r"(?::(?P<tag>[A-Za-z0-9._-]+)|@(?P<digest>sha256:[a-f0-9]{64}))$")
_SHORT_IMAGE = re.compile(r"^(?P<repo>[a-z0-9._/-]+)(?::(?P<tag>[A-Za-z0-9._-]+)|@(?P<digest>sha256:[a-f0-9]{64}))$")


def short_region(region: str) -> str:
    """The short code Terraform's roots use in names: "ap-northeast-1" -> "apne1", "eu-central-1" -> "euc1"."""
    parts = region.split("-")
    if len(parts) < 3 or not parts[-1].isdigit():
        raise ProviderError(f"not an AWS region name: {region!r}", where="aws")
    middle = "".join(_DIRECTIONS.get(p, p) for p in parts[1:-1])
    return f"{parts[0]}{middle}{parts[-1]}"


def parse_image(image: str, default_region: str) -> dict[str, str | None]:
    """{registry_id, region, repository, tag, digest} of an ECR image reference (full URI, or "repo:tag")."""
    match = _ECR_IMAGE.match(image.strip())
    if match:
        return {"registry_id": match["account"], "region": match["region"], "repository": match["repo"],
                "tag": match["tag"], "digest": match["digest"]}
    match = _SHORT_IMAGE.match(image.strip())
    if match:
        return {"registry_id": None, "region": default_region, "repository": match["repo"], "tag": match["tag"],
                "digest": match["digest"]}
    raise ProviderError(f"not an ECR image reference with a tag or digest: {image!r}", where="aws",
                        hint="e.g. 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/game-api:1.4.2")


class EcsRegionRuntime:
    """RegionRuntime on ElastiCache + ECS Fargate + the region's ALB (see the module docstring)."""

    def __init__(
        self,
        clients: ClientFactory | None = None,
        *,
        endpoint_url: str | None = None,
        cluster_name: str = "game-{short}",
        service_name: str = "game-{short}-api",
        task_family: str = "game-{short}-api",
        load_balancer_name: str = "game-{short}-api",
        cache_id: str = "game-{short}-redis",
        desired_count: int = 3,
        service_options: Mapping[str, Mapping[str, Any]] | None = None,
        cache_node_type: str = "cache.r7g.large",
        cache_engine_version: str | None = "7.1",
        cache_nodes: int = 3,
        cache_options: Mapping[str, Mapping[str, Any]] | None = None,
        image: str | None = None,
        image_region: str = "us-east-1",
        api_host: str | None = "api.game.example",
        health_path: str = "/health",
        health_base_url: Callable[[str], str | None] | Mapping[str, str] | None = None,
        health_timeout: float = 5.0,
        verify_tls: bool | str = True,
        expected_account_id: str | None = None,
        poll_interval: float = 15.0,
        wait_timeout: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        clients: (service, region) -> boto3 client (an AwsClients); None = AwsClients(endpoint_url=endpoint_url).
        cluster_name ... cache_id: "{region}"/"{short}" templates of the names (defaults: Terraform's).
        desired_count: tasks of a service this adapter creates, and the floor deploy_api raises a service to.
        service_options: region -> extra create_service arguments (networkConfiguration, loadBalancers, ...).
        cache_*: shape of a replication group this adapter creates; cache_options: region -> extra
            create_replication_group arguments (CacheSubnetGroupName, SecurityGroupIds, KmsKeyId, AuthToken).
        image: the API image to deploy (ECR URI, or "repository:tag" in image_region) that image_available checks.
        api_host: SNI and Host of health probes through the ALB (its certificate's name); None = the ALB's name.
        health_base_url: region -> base URL to probe instead of the ALB (tests, or a source region outside ECS).
        poll_interval / wait_timeout: how often and how long to wait for AWS to converge.
        """
        self._clients = clients or AwsClients(endpoint_url=endpoint_url)
        self.endpoint_url = endpoint_url
        self._names = {"cluster": cluster_name, "service": service_name, "family": task_family,
                       "lb": load_balancer_name, "cache": cache_id}
        self.desired_count = int(desired_count)
        self._service_options = {k: dict(v) for k, v in (service_options or {}).items()}
        self.cache_node_type = cache_node_type
        self.cache_engine_version = cache_engine_version
        self.cache_nodes = int(cache_nodes)
        self._cache_options = {k: dict(v) for k, v in (cache_options or {}).items()}
        self.image = image
        self.image_region = image_region
        self.api_host = api_host
        self.health_path = health_path
        self._health_base_url = health_base_url
        self.health_timeout = health_timeout
        self.verify_tls = verify_tls
        self._guard = AccountGuard(self._clients, expected_account_id)
        self._poll_interval = poll_interval
        self._wait_timeout = wait_timeout
        self._sleep = sleep
        self._clock = clock

    # ----------------------------------------------------------------- names

    def name(self, kind: str, region: str) -> str:
        """The name of `kind` ("cluster", "service", "family", "lb", "cache") in `region` (pure)."""
        return self._names[kind].format(region=region, short=short_region(region))

    # ----------------------------------------------------------------- cache

    def ensure_cache(self, region: str) -> dict:
        """Find the replication group or create it (TLS in transit, encrypted at rest); wait until available."""
        group = self._cache(region)
        if group is not None and group.get("Status") == "deleting":
            self._wait_cache_gone(region)
            group = None
        if group is None:
            self._guard.check()
            group_id = self.name("cache", region)
            params: dict[str, Any] = {
                "ReplicationGroupId": group_id,
                "ReplicationGroupDescription": f"Game sessions, leaderboard and matchmaking of {region} (migrate)",
                "Engine": "redis", "CacheNodeType": self.cache_node_type, "NumCacheClusters": self.cache_nodes,
                "AutomaticFailoverEnabled": self.cache_nodes > 1, "MultiAZEnabled": self.cache_nodes > 1,
                "TransitEncryptionEnabled": True, "AtRestEncryptionEnabled": True, "Port": 6379,
                "Tags": [MANAGED_TAG],
            }
            if self.cache_engine_version:
                params["EngineVersion"] = self.cache_engine_version
            params.update(self._cache_options.get(region, {}))
            call(self._elasticache(region), "create_replication_group", region,
                 absent={"ReplicationGroupAlreadyExistsFault"}, **params)
            log.info("creating ElastiCache replication group %s in %s", group_id, region)
        group = self._wait_cache_available(region)
        return _cache_outputs(group)

    def cache_ready(self, region: str) -> bool:
        """On AWS the operator's host cannot reach a private Redis: "answers" is the control plane's "available"."""
        group = self._cache(region)
        return group is not None and group.get("Status") == "available"

    def remove_cache(self, region: str) -> None:
        """Delete the replication group (no final snapshot: sessions and tickets are disposable at 0 traffic)
        and wait until it is gone."""
        deadline = self._clock() + self._wait_timeout
        while True:
            group = self._cache(region)
            if group is None:
                return
            if group.get("Status") != "deleting":
                self._guard.check()
                # InvalidReplicationGroupState: still creating or modifying; ask again at the next poll.
                call(self._elasticache(region), "delete_replication_group", region,
                     absent=GROUP_NOT_FOUND | {"InvalidReplicationGroupStateFault"},
                     ReplicationGroupId=group["ReplicationGroupId"])
            if self._clock() >= deadline:
                raise ProviderError(f"replication group {group['ReplicationGroupId']} in {region} still "
                                    f"{group.get('Status')} after {self._wait_timeout:.0f} s", where="aws",
                                    hint="remove_cache is idempotent: run the rollback again to keep waiting")
            self._sleep(self._poll_interval)

    # ------------------------------------------------------------------- API

    def deploy_api(self, region: str) -> ApiEndpoint:
        """Ensure the cluster and the service (at least desired_count tasks of the family's latest revision),
        wait until the service is steady, and return the ALB's endpoint. DNS still sends it nothing."""
        self._guard.check()
        cluster = self.name("cluster", region)
        self._ensure_cluster(region, cluster)
        service = self._service(region)
        if service is not None and service.get("status") == "DRAINING":
            self._wait_service_gone(region)
            service = None
        if service is None:
            task_definition = self._task_definition(region)
            params: dict[str, Any] = {
                "cluster": cluster, "serviceName": self.name("service", region), "taskDefinition": task_definition,
                "desiredCount": self.desired_count, "launchType": "FARGATE", "platformVersion": "LATEST",
                "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True},
                                            "maximumPercent": 200, "minimumHealthyPercent": 100},
                "propagateTags": "SERVICE", "enableECSManagedTags": True,
                "tags": [{"key": MANAGED_TAG["Key"], "value": MANAGED_TAG["Value"]}],
            }
            params.update(self._service_options.get(region, {}))
            call(self._ecs(region), "create_service", region, **params)
            log.info("created ECS service %s/%s (%s)", cluster, params["serviceName"], task_definition)
        elif int(service.get("desiredCount", 0)) < self.desired_count:
            # Autoscaling owns the count above the floor; only a service scaled below it is raised.
            call(self._ecs(region), "update_service", region, cluster=cluster, service=service["serviceName"],
                 desiredCount=self.desired_count)
        self._wait_service_steady(region)
        endpoint = self.api_endpoint(region)
        if endpoint is None:
            raise ProviderError(f"load balancer {self.name('lb', region)} not found in {region}", where="aws",
                                hint="apply the region's Terraform root first (it creates the ALB)")
        return endpoint

    def remove_api(self, region: str) -> None:
        """Scale the service to 0, delete it and wait until ECS reports it inactive; the cluster stays
        (Terraform's, and an empty cluster costs nothing)."""
        service = self._service(region)
        if service is None:
            return
        self._guard.check()
        cluster, name = self.name("cluster", region), service["serviceName"]
        if service.get("status") == "ACTIVE":
            call(self._ecs(region), "update_service", region, absent=SERVICE_GONE, cluster=cluster, service=name,
                 desiredCount=0)
            call(self._ecs(region), "delete_service", region, absent=SERVICE_GONE, cluster=cluster, service=name,
                 force=True)
            log.info("deleted ECS service %s/%s", cluster, name)
        self._wait_service_gone(region)

    def api_endpoint(self, region: str) -> ApiEndpoint | None:
        service = self._service(region)
        if service is None or service.get("status") != "ACTIVE":
            return None
        lb = self._load_balancer(region)
        if lb is None:
            return None
        return ApiEndpoint(region=region, host=lb["DNSName"], port=443, url=f"https://{lb['DNSName']}")

    def api_health(self, region: str, through_geography: str | None = None) -> HealthResult:
        """GET /health once; never raises. On AWS there is no per-geography path: the probe runs from here."""
        try:
            base, through_alb = self._health_base(region)
        except ProviderError as exc:
            return HealthResult(False, exc.one_line())
        if base is None:
            return HealthResult(False, f"{region}'s API is not deployed (no active ECS service "
                                       f"{self.name('service', region)} behind {self.name('lb', region)})")
        url = base.rstrip("/") + self.health_path
        headers, extensions = {}, {}
        if through_alb and self.api_host:
            headers["Host"] = self.api_host
            extensions["sni_hostname"] = self.api_host
        started = time.perf_counter()
        try:
            with httpx.Client(timeout=self.health_timeout, verify=self.verify_tls, follow_redirects=False) as client:
                response = client.get(url, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            message = next(iter(str(exc).splitlines()), "")
            return HealthResult(False, f"GET {url}: {type(exc).__name__}" + (f": {message}" if message else ""))
        latency = (time.perf_counter() - started) * 1000.0
        summary = _summarise(response)
        where = f" (from this host, not through {through_geography} players' path)" if through_geography else ""
        return HealthResult(response.status_code == 200,
                            f"HTTP {response.status_code} in {latency:.0f} ms{where}" + (f": {summary}" if summary else ""),
                            latency_ms=latency)

    def image_available(self) -> tuple[bool, str]:
        if not self.image:
            return False, "no API image configured (set TF_VAR_api_image, as the Terraform root reads it)"
        try:
            ref = parse_image(self.image, self.image_region)
        except ProviderError as exc:
            return False, exc.one_line()
        image_id = {"imageDigest": ref["digest"]} if ref["digest"] else {"imageTag": ref["tag"]}
        params: dict[str, Any] = {"repositoryName": ref["repository"], "imageIds": [image_id]}
        if ref["registry_id"]:
            params["registryId"] = ref["registry_id"]
        region = str(ref["region"])
        label = f"{ref['repository']}{'@' + str(ref['digest']) if ref['digest'] else ':' + str(ref['tag'])}"
        try:
            answer = call(self._clients("ecr", region), "describe_images", region,
                          absent={"RepositoryNotFoundException", "ImageNotFoundException"}, **params)
        except ProviderError as exc:
            return False, exc.one_line()
        details = (answer or {}).get("imageDetails") or []
        if not details:
            return False, f"image {label} not found in ECR ({region})"
        detail = details[0]
        size = detail.get("imageSizeInBytes")
        pushed = detail.get("imagePushedAt")
        facts = [f"pushed {pushed:%Y-%m-%d %H:%M}" if hasattr(pushed, "strftime") else "",
                 f"{size / 1e6:.0f} MB" if size else ""]
        return True, f"image {label} in ECR ({region})" + (f": {', '.join(f for f in facts if f)}"
                                                           if any(facts) else "")

    # ------------------------------------------------------------- helpers

    def _elasticache(self, region: str) -> Any:
        return self._clients("elasticache", region)

    def _ecs(self, region: str) -> Any:
        return self._clients("ecs", region)

    def _cache(self, region: str) -> dict | None:
        answer = call(self._elasticache(region), "describe_replication_groups", region, absent=GROUP_NOT_FOUND,
                      ReplicationGroupId=self.name("cache", region))
        groups = (answer or {}).get("ReplicationGroups", [])
        return groups[0] if groups else None

    def _wait_cache_available(self, region: str) -> dict:
        deadline = self._clock() + self._wait_timeout
        while True:
            group = self._cache(region)
            if group is None:
                raise ProviderError(f"replication group {self.name('cache', region)} in {region} disappeared while "
                                    f"waiting for it", where="aws")
            status = group.get("Status", "unknown")
            if status == "available":
                return group
            if status in _BROKEN_CACHE_STATES or status == "deleting":
                raise ProviderError(f"replication group {group['ReplicationGroupId']} in {region} is {status}",
                                    where="aws", hint="inspect it in the ElastiCache console; roll back and run again")
            if self._clock() >= deadline:
                raise ProviderError(f"replication group {group['ReplicationGroupId']} in {region} still {status} "
                                    f"after {self._wait_timeout:.0f} s", where="aws",
                                    hint="the step is idempotent: run it again to keep waiting")
            self._sleep(self._poll_interval)

    def _wait_cache_gone(self, region: str) -> None:
        deadline = self._clock() + self._wait_timeout
        while self._cache(region) is not None:
            if self._clock() >= deadline:
                raise ProviderError(f"replication group {self.name('cache', region)} in {region} still being deleted "
                                    f"after {self._wait_timeout:.0f} s", where="aws", hint="run again to keep waiting")
            self._sleep(self._poll_interval)

    def _ensure_cluster(self, region: str, cluster: str) -> None:
        answer = call(self._ecs(region), "describe_clusters", region, clusters=[cluster]) or {}
        if any(c.get("status") == "ACTIVE" for c in answer.get("clusters", [])):
            return
        call(self._ecs(region), "create_cluster", region, clusterName=cluster,
             settings=[{"name": "containerInsights", "value": "enabled"}],
             tags=[{"key": MANAGED_TAG["Key"], "value": MANAGED_TAG["Value"]}])
        log.info("created ECS cluster %s in %s", cluster, region)

    def _service(self, region: str) -> dict | None:
        """The service unless ECS reports it missing or INACTIVE (a deleted service lingers as INACTIVE)."""
        answer = call(self._ecs(region), "describe_services", region, absent=CLUSTER_NOT_FOUND,
                      cluster=self.name("cluster", region), services=[self.name("service", region)]) or {}
        live = [s for s in answer.get("services", []) if s.get("status") != "INACTIVE"]
        return live[0] if live else None

    def _task_definition(self, region: str) -> str:
        family = self.name("family", region)
        answer = call(self._ecs(region), "describe_task_definition", region, absent={"ClientException"},
                      taskDefinition=family)
        if not answer:
            raise ProviderError(f"task definition family {family} has no active revision in {region}", where="aws",
                                hint="apply the region's Terraform root first (it registers the task definition)")
        return answer["taskDefinition"]["taskDefinitionArn"]

    def _wait_service_steady(self, region: str) -> dict:
        """Until one deployment runs every desired task (ECS's "services stable"); a failed rollout stops at once."""
        deadline = self._clock() + self._wait_timeout
        while True:
            service = self._service(region)
            if service is None:
                raise ProviderError(f"ECS service {self.name('service', region)} in {region} disappeared while "
                                    f"waiting for it", where="aws")
            deployments = service.get("deployments", [])
            primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
            if primary.get("rolloutState") == "FAILED":
                raise ProviderError(f"ECS deployment of {service['serviceName']} in {region} failed: "
                                    f"{primary.get('rolloutStateReason', 'no reason given')}", where="aws",
                                    hint="see the service's events and the tasks' stopped reasons in the ECS console")
            desired, running = int(service.get("desiredCount", 0)), int(service.get("runningCount", 0))
            if len(deployments) <= 1 and running >= desired:
                return service
            if self._clock() >= deadline:
                raise ProviderError(f"ECS service {service['serviceName']} in {region} not steady after "
                                    f"{self._wait_timeout:.0f} s: {running}/{desired} tasks running, "
                                    f"{len(deployments)} deployment(s)", where="aws",
                                    hint="the step is idempotent: run it again to keep waiting")
            self._sleep(self._poll_interval)

    def _wait_service_gone(self, region: str) -> None:
        deadline = self._clock() + self._wait_timeout
        while (service := self._service(region)) is not None:
            if self._clock() >= deadline:
                raise ProviderError(f"ECS service {service['serviceName']} in {region} still {service.get('status')} "
                                    f"after {self._wait_timeout:.0f} s", where="aws", hint="run again to keep waiting")
            self._sleep(self._poll_interval)

    def _load_balancer(self, region: str) -> dict | None:
        answer = call(self._clients("elbv2", region), "describe_load_balancers", region, absent=LB_NOT_FOUND,
                      Names=[self.name("lb", region)])
        found = (answer or {}).get("LoadBalancers", [])
        return found[0] if found else None

    def _health_base(self, region: str) -> tuple[str | None, bool]:
        """(base URL, through the ALB?) of the region's API."""
        source = self._health_base_url
        if callable(source):
            base = source(region)
            if base:
                return base, False
        elif isinstance(source, Mapping) and source.get(region):
            return source[region], False
        endpoint = self.api_endpoint(region)
        return (endpoint.url, True) if endpoint else (None, True)


def _cache_outputs(group: dict) -> dict:
    node_groups = group.get("NodeGroups") or [{}]
    endpoint = node_groups[0].get("PrimaryEndpoint") or group.get("ConfigurationEndpoint") or {}
    address, port = endpoint.get("Address", ""), endpoint.get("Port", 6379)
    return {"replication_group_id": group["ReplicationGroupId"], "status": group.get("Status"),
            "endpoint": f"{address}:{port}" if address else "", "transit_encryption": group.get("TransitEncryptionEnabled"),
            "at_rest_encryption": group.get("AtRestEncryptionEnabled")}


def _summarise(response: httpx.Response) -> str:
    """The /health body in one short line: the app's region, role, lag and version when it is JSON."""
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        text = " ".join(response.text.split())
        return text[:120]
    if isinstance(body, dict):
        keys = [k for k in ("status", "region", "database_role", "role", "replication_lag_seconds", "version")
                if k in body]
        return ", ".join(f"{k}={body[k]}" for k in keys) or ", ".join(sorted(body))[:120]
    return str(body)[:120]


def from_spec(spec: Any, env: Any, repo_root: Any = None, *, clients: ClientFactory | None = None,
              **overrides: Any) -> EcsRegionRuntime:
    """The AWS runtime for an [environments.NAME] table of kind "aws": the spec's profile (or its moto
    endpoint_url), the account check, Terraform's names; the image and the task floor from the same
    variables the Terraform root reads (TF_VAR_api_image, TF_VAR_api_min_tasks)."""
    if env.kind != "aws":
        raise ProviderError(f"EcsRegionRuntime serves AWS environments, not {env.kind!r}", where="aws",
                            hint="the lab's runtime drives local processes (migrate.providers.lab)")
    floor = os.environ.get("TF_VAR_api_min_tasks") or "3"
    if not floor.isdigit():
        raise ProviderError(f"TF_VAR_api_min_tasks must be a whole number, not {floor!r}", where="aws")
    made, endpoint_url = (clients, getattr(env.aws, "endpoint_url", None)) if clients else env_clients(env)
    settings: dict[str, Any] = {
        "clients": made, "endpoint_url": endpoint_url, "expected_account_id": getattr(env.aws, "account_id", None),
        "image": os.environ.get("TF_VAR_api_image") or os.environ.get("MIGRATE_API_IMAGE"),
        "image_region": getattr(spec, "source_region", "us-east-1"), "desired_count": int(floor)}
    settings.update(overrides)
    return EcsRegionRuntime(**settings)


def stand_up_providers(spec: Any, env: Any, repo_root: Any, *, topology: Any = None,
                       clients: ClientFactory | None = None) -> dict[str, Any]:
    """The stand-up-region adapters this package provides, as Providers fields. aws: infrastructure (Terraform),
    runtime (ECS/ElastiCache), object_store (S3) and dns (Route 53); lab: object_store and dns on the lab's
    moto server (its runtime and infrastructure are the lab adapter's)."""
    from migrate.providers.aws import dns, object_store, terraform

    if env.kind == "lab":
        return {"object_store": object_store.from_spec(spec, env, repo_root, topology=topology, clients=clients),
                "dns": dns.from_spec(spec, env, repo_root, topology=topology, clients=clients)}
    if clients is None:
        clients, _ = env_clients(env)  # one set of clients (and one profile session) for all four
    return {"infrastructure": terraform.from_spec(spec, env, repo_root),
            "runtime": from_spec(spec, env, repo_root, clients=clients),
            "object_store": object_store.from_spec(spec, env, repo_root, clients=clients),
            "dns": dns.from_spec(spec, env, repo_root, clients=clients)}
