"""A moto server on loopback for the whole session (DESIGN §7), reset before every test, and helpers to
build the adapter against it or against Stubber-wrapped clients for what moto lacks."""

from __future__ import annotations

import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from migrate.providers.aws.clients import AwsClients
from migrate.providers.aws.global_database import AwsGlobalDatabase
from migrate.providers.protocols import ApiEndpoint

SOURCE = "us-east-1"
TOKYO = "ap-northeast-1"
FRANKFURT = "eu-central-1"
LAB_PORTS = {SOURCE: 18001, TOKYO: 18002, FRANKFURT: 18003}  # app ports the lab-style records point at


def lab_endpoint(region: str, port: int | None = None) -> ApiEndpoint:
    """A region's API as the lab exposes it (127.0.0.1:<app port>)."""
    port = port or LAB_PORTS[region]
    return ApiEndpoint(region=region, host="127.0.0.1", port=port, url=f"http://127.0.0.1:{port}")
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": SOURCE,
}


@pytest.fixture(scope="session")
def moto_url():
    """URL of one ThreadedMotoServer on 127.0.0.1 (a free port) with fake credentials in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAKE_CREDENTIALS.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def moto(moto_url):
    """The session's moto server, emptied: every test starts from no AWS resources."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return moto_url


@pytest.fixture(scope="session")
def moto_clients(moto_url):
    """Clients against moto, made once per session (creating boto3 clients is the slow part)."""
    return AwsClients(endpoint_url=moto_url)


@pytest.fixture
def aws(moto, moto_clients):
    """client(service, region="us-east-1"): a boto3 client for test setup and assertions against moto."""

    def client(service: str, region: str = SOURCE):
        return moto_clients(service, region)

    return client


@pytest.fixture
def primary(aws):
    """The source world: an Aurora PostgreSQL 15.4 cluster in us-east-1 with its writer instance."""
    rds = aws("rds")
    cluster = rds.create_db_cluster(DBClusterIdentifier="game-us-east-1", Engine="aurora-postgresql",
                                    EngineVersion="15.4", MasterUsername="game",
                                    MasterUserPassword="not-a-secret-1")["DBCluster"]
    rds.create_db_instance(DBInstanceIdentifier="game-us-east-1-writer", DBClusterIdentifier="game-us-east-1",
                           Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    return cluster


@pytest.fixture
def make_db(moto, moto_clients):
    """Build the adapter against moto (shared clients unless overridden); waits poll without sleeping."""

    def make(**overrides) -> AwsGlobalDatabase:
        settings = dict(global_cluster_id="game-global", primary_cluster_id="game-us-east-1",
                        source_region=SOURCE, secondary_cluster_id="game-{region}",
                        db_instance_class="db.r6g.large", client_factory=moto_clients,
                        poll_interval=0, wait_timeout=30, sleep=lambda _s: None)
        settings.update(overrides)
        return AwsGlobalDatabase(**settings)

    return make


class StubbedClients:
    """A client factory whose clients never reach a network: each (service, region) is wrapped in a Stubber."""

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str], object] = {}
        self.stubbers: dict[tuple[str, str], Stubber] = {}

    def __call__(self, service: str, region: str):
        key = (service, region)
        if key not in self.clients:
            client = boto3.client(service, region_name=region, aws_access_key_id="testing",
                                  aws_secret_access_key="testing",
                                  config=Config(retries={"max_attempts": 1}))
            stubber = Stubber(client)
            stubber.activate()
            self.clients[key], self.stubbers[key] = client, stubber
        return self.clients[key]

    def stub(self, service: str, region: str) -> Stubber:
        self(service, region)
        return self.stubbers[(service, region)]

    def assert_done(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def stubbed():
    """(factory, adapter) with every AWS answer scripted by the test."""
    clients = StubbedClients()
    db = AwsGlobalDatabase(global_cluster_id="game-global", primary_cluster_id="game-us-east-1",
                           source_region=SOURCE, client_factory=clients, poll_interval=0, wait_timeout=5,
                           sleep=lambda _s: None)
    yield clients, db
    clients.assert_done()


@pytest.fixture
def zone(aws):
    """The public zone game.example. in moto, as the lab creates it."""
    answer = aws("route53").create_hosted_zone(Name="game.example.", CallerReference="lab-zone-game-example",
                                               HostedZoneConfig={"Comment": "test", "PrivateZone": False})
    return answer["HostedZone"]["Id"]
