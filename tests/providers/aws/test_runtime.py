"""EcsRegionRuntime against a real moto server (ElastiCache replication groups, ECS clusters/services/task
definitions, elbv2, ECR), with botocore's Stubber where moto does not behave like AWS (a replication group
that moto leaves "deleting" forever, a failed ECS rollout), and /health probed on a tiny local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from migrate.errors import ProviderError
from migrate.providers.aws.runtime import (
    EcsRegionRuntime,
    from_spec,
    parse_image,
    short_region,
    stand_up_providers,
)
from migrate.providers.protocols import ApiEndpoint, RegionRuntime

from .conftest import SOURCE, TOKYO, StubbedClients

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/game-api:1.4.2"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1.0)


@pytest.fixture
def make_runtime(moto, moto_clients):
    def make(**overrides) -> EcsRegionRuntime:
        clock = FakeClock()
        settings = {"endpoint_url": moto, "desired_count": 2, "cache_nodes": 2, "poll_interval": 1, "wait_timeout": 30,
                        "sleep": clock.sleep, "clock": clock, "image": IMAGE}
        settings.update(overrides)
        return EcsRegionRuntime(moto_clients, **settings)

    return make


@pytest.fixture
def alb(aws):
    """The region's ALB as Terraform names it, in a VPC of two subnets."""
    ec2 = aws("ec2", TOKYO)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{i}.0/24", AvailabilityZone=f"{TOKYO}{z}")["Subnet"]
               ["SubnetId"] for i, z in enumerate("ac")]
    return aws("elbv2", TOKYO).create_load_balancer(Name="game-apne1-api", Subnets=subnets)["LoadBalancers"][0]


@pytest.fixture
def task_definition(aws):
    """The family Terraform registers."""
    return aws("ecs", TOKYO).register_task_definition(
        family="game-apne1-api", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="1024", memory="2048",
        containerDefinitions=[{"name": "api", "image": IMAGE, "essential": True,
                               "portMappings": [{"containerPort": 8000}]}])["taskDefinition"]


@pytest.fixture
def running(monkeypatch):
    """moto reports MOTO_ECS_SERVICE_RUNNING tasks running in every new service (0 by default): its ECS runs nothing."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")


class Health(BaseHTTPRequestHandler):
    status = 200
    seen_hosts: ClassVar[list[str]] = []

    def do_GET(self):
        Health.seen_hosts.append(self.headers.get("Host", ""))
        body = json.dumps({"status": "ok", "region": TOKYO, "database_role": "replica", "version": "1.4.2"}).encode()
        self.send_response(Health.status if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    Health.status, Health.seen_hosts = 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_adapter_satisfies_the_protocol(make_runtime):
    runtime: RegionRuntime = make_runtime()
    assert isinstance(runtime, EcsRegionRuntime)


def test_names_follow_the_terraform_module():
    runtime = EcsRegionRuntime(StubbedClients())
    assert [short_region(r) for r in ("ap-northeast-1", "eu-central-1", "us-east-1", "ap-southeast-2")] == [
        "apne1", "euc1", "use1", "apse2"]
    assert {kind: runtime.name(kind, TOKYO) for kind in ("cluster", "service", "family", "lb", "cache")} == {
        "cluster": "game-apne1", "service": "game-apne1-api", "family": "game-apne1-api", "lb": "game-apne1-api",
        "cache": "game-apne1-redis"}


# --- cache -------------------------------------------------------------------------------------------

def test_ensure_cache_creates_an_encrypted_group_once(make_runtime, aws):
    runtime = make_runtime()
    assert not runtime.cache_ready(TOKYO)
    out = runtime.ensure_cache(TOKYO)
    assert out["replication_group_id"] == "game-apne1-redis"
    assert out["status"] == "available"
    assert out["endpoint"].endswith(":6379")
    assert runtime.ensure_cache(TOKYO) == out  # found, not made again
    (group,) = aws("elasticache", TOKYO).describe_replication_groups()["ReplicationGroups"]
    assert group["TransitEncryptionEnabled"] is True and group["AtRestEncryptionEnabled"] is True
    assert runtime.cache_ready(TOKYO)


def test_remove_cache_of_an_absent_group_is_a_noop(make_runtime):
    make_runtime().remove_cache(TOKYO)


def test_remove_cache_deletes_and_waits_until_gone():
    """moto marks a deleted group "deleting" and keeps it forever: AWS's end of the story is scripted."""
    clients, clock = StubbedClients(), FakeClock()
    stub = clients.stub("elasticache", TOKYO)
    runtime = EcsRegionRuntime(clients, poll_interval=5, wait_timeout=60, sleep=clock.sleep, clock=clock)
    group = {"ReplicationGroupId": "game-apne1-redis", "Status": "available"}
    query = {"ReplicationGroupId": "game-apne1-redis"}
    stub.add_response("describe_replication_groups", {"ReplicationGroups": [group]}, query)
    stub.add_response("delete_replication_group", {"ReplicationGroup": {**group, "Status": "deleting"}}, query)
    stub.add_response("describe_replication_groups", {"ReplicationGroups": [{**group, "Status": "deleting"}]}, query)
    stub.add_client_error("describe_replication_groups", "ReplicationGroupNotFoundFault", http_status_code=404,
                          expected_params=query)
    runtime.remove_cache(TOKYO)
    assert clock.now == 10
    clients.assert_done()


def test_a_cache_stuck_deleting_is_reported(make_runtime, aws):
    runtime = make_runtime(wait_timeout=5)
    runtime.ensure_cache(TOKYO)
    with pytest.raises(ProviderError, match="game-apne1-redis in ap-northeast-1 still deleting after 5 s"):
        runtime.remove_cache(TOKYO)  # moto never finishes a deletion
    assert not runtime.cache_ready(TOKYO)


# --- API -------------------------------------------------------------------------------------------

def test_deploy_api_creates_cluster_and_service_and_is_idempotent(make_runtime, aws, alb, task_definition, running):
    runtime = make_runtime()
    assert runtime.api_endpoint(TOKYO) is None
    endpoint = runtime.deploy_api(TOKYO)
    assert endpoint == ApiEndpoint(TOKYO, alb["DNSName"], 443, f"https://{alb['DNSName']}")
    ecs = aws("ecs", TOKYO)
    (service,) = ecs.describe_services(cluster="game-apne1", services=["game-apne1-api"])["services"]
    assert service["taskDefinition"] == task_definition["taskDefinitionArn"]
    assert (service["desiredCount"], service["launchType"]) == (2, "FARGATE")
    assert runtime.deploy_api(TOKYO) == endpoint
    assert len(ecs.list_services(cluster="game-apne1")["serviceArns"]) == 1
    assert runtime.api_endpoint(TOKYO) == endpoint


def test_deploy_api_raises_a_service_scaled_below_the_floor(make_runtime, aws, alb, task_definition, running):
    runtime = make_runtime()
    runtime.deploy_api(TOKYO)
    ecs = aws("ecs", TOKYO)
    ecs.update_service(cluster="game-apne1", service="game-apne1-api", desiredCount=0)
    runtime.deploy_api(TOKYO)
    assert ecs.describe_services(cluster="game-apne1", services=["game-apne1-api"])["services"][0]["desiredCount"] == 2


def test_remove_api_then_deploy_again(make_runtime, aws, alb, task_definition, running):
    runtime = make_runtime()
    runtime.deploy_api(TOKYO)
    runtime.remove_api(TOKYO)
    assert runtime.api_endpoint(TOKYO) is None
    runtime.remove_api(TOKYO)  # a no-op once inactive
    assert runtime.deploy_api(TOKYO).host == alb["DNSName"]


def test_deploy_api_without_terraforms_task_definition_is_refused(make_runtime, alb):
    with pytest.raises(ProviderError, match="task definition family game-apne1-api") as caught:
        make_runtime().deploy_api(TOKYO)
    assert "Terraform" in caught.value.hint


def test_deploy_api_without_the_alb_is_refused(make_runtime, task_definition, running):
    with pytest.raises(ProviderError, match="load balancer game-apne1-api not found"):
        make_runtime().deploy_api(TOKYO)


def test_a_service_that_never_gets_its_tasks_times_out(make_runtime, alb, task_definition):
    # MOTO_ECS_SERVICE_RUNNING unset: moto reports 0 running tasks.
    with pytest.raises(ProviderError, match=r"not steady after 30 s: 0/2 tasks running"):
        make_runtime().deploy_api(TOKYO)


def test_a_failed_rollout_stops_the_wait_at_once():
    clients = StubbedClients()
    ecs = clients.stub("ecs", TOKYO)
    runtime = EcsRegionRuntime(clients, sleep=lambda s: None)
    service = {"serviceName": "game-apne1-api", "status": "ACTIVE", "desiredCount": 3, "runningCount": 0,
               "deployments": [{"status": "PRIMARY", "rolloutState": "FAILED",
                                "rolloutStateReason": "tasks failed to start"}]}
    ecs.add_response("describe_clusters", {"clusters": [{"clusterName": "game-apne1", "status": "ACTIVE"}]})
    ecs.add_response("describe_services", {"services": [service]})
    ecs.add_response("describe_services", {"services": [service]})
    with pytest.raises(ProviderError, match="deployment of game-apne1-api in ap-northeast-1 failed: tasks failed"):
        runtime.deploy_api(TOKYO)
    clients.assert_done()


# --- health ------------------------------------------------------------------------------------------

def test_api_health_ok_and_failing(make_runtime, health_server):
    runtime = make_runtime(health_base_url={TOKYO: health_server})
    result = runtime.api_health(TOKYO)
    assert result.ok and result.latency_ms is not None
    assert result.detail.startswith("HTTP 200 in ")
    assert "region=ap-northeast-1" in result.detail and "version=1.4.2" in result.detail
    Health.status = 503
    result = runtime.api_health(TOKYO, through_geography="apac")
    assert not result.ok and result.detail.startswith("HTTP 503") and "apac" in result.detail


def test_api_health_when_nothing_answers_or_nothing_is_deployed(make_runtime, health_server):
    port = int(health_server.rsplit(":", 1)[1])
    runtime = make_runtime(health_base_url=lambda region: "http://127.0.0.1:1" if region == TOKYO else None)
    result = runtime.api_health(TOKYO)
    assert not result.ok and "ConnectError" in result.detail
    result = runtime.api_health("eu-central-1")
    assert not result.ok and "not deployed" in result.detail
    assert port  # the server is up; it was simply not asked


def test_api_health_through_the_alb_names_the_api_host(make_runtime, health_server, monkeypatch):
    """Through the ALB the probe carries the API's public name (the certificate's) as Host and SNI."""
    runtime = make_runtime()
    host, port = health_server.removeprefix("http://").split(":")
    monkeypatch.setattr(runtime, "api_endpoint", lambda region: ApiEndpoint(region, host, int(port), health_server))
    assert runtime.api_health(TOKYO).ok
    assert Health.seen_hosts == ["api.game.example"]


# --- image -------------------------------------------------------------------------------------------

def test_image_available_reads_ecr(make_runtime, aws):
    ecr = aws("ecr", SOURCE)
    ecr.create_repository(repositoryName="game-api")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                           "digest": "sha256:" + "a" * 64},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                            "digest": "sha256:" + "b" * 64}]}
    ecr.put_image(repositoryName="game-api", imageManifest=json.dumps(manifest), imageTag="1.4.2")
    ok, detail = make_runtime().image_available()
    assert ok and detail.startswith("image game-api:1.4.2 in ECR (us-east-1)")
    ok, detail = make_runtime(image=IMAGE.replace("1.4.2", "9.9.9")).image_available()
    assert not ok and "game-api:9.9.9 not found" in detail
    ok, detail = make_runtime(image=IMAGE.replace("game-api", "nope")).image_available()
    assert not ok and "nope:1.4.2 not found" in detail
    assert make_runtime(image=None).image_available() == (
        False, "no API image configured (set TF_VAR_api_image, as the Terraform root reads it)")
    ok, detail = make_runtime(image="not an image").image_available()
    assert not ok and "not an ECR image reference" in detail


def test_parse_image():
    assert parse_image(IMAGE, "eu-central-1") == {"registry_id": "123456789012", "region": "us-east-1",
                                                 "repository": "game-api", "tag": "1.4.2", "digest": None}
    digest = "sha256:" + "c" * 64
    assert parse_image(f"game/api@{digest}", "eu-central-1")["digest"] == digest


# --- factories -----------------------------------------------------------------------------------------

def test_stand_up_providers_for_aws_and_lab(moto, moto_clients, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_VAR_api_image", IMAGE)
    monkeypatch.setenv("TF_VAR_api_min_tasks", "4")
    spec = type("Spec", (), {"source_region": SOURCE})()
    aws_env = type("Env", (), {"kind": "aws", "aws": type("A", (), {"endpoint_url": moto, "account_id": None,
                                                                    "profile": "p"})()})()
    made = stand_up_providers(spec, aws_env, tmp_path, clients=moto_clients)
    assert sorted(made) == ["dns", "infrastructure", "object_store", "runtime"]
    assert (made["runtime"].image, made["runtime"].desired_count) == (IMAGE, 4)
    assert made["infrastructure"].repo_root == tmp_path
    lab_env = type("Env", (), {"kind": "lab"})()
    lab = stand_up_providers(spec, lab_env, tmp_path, topology=type("T", (), {"moto_endpoint": moto})())
    assert sorted(lab) == ["dns", "object_store"]
    with pytest.raises(ProviderError, match="serves AWS environments"):
        from_spec(spec, lab_env, tmp_path)
