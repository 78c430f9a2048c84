"""AwsHomeWriters: RDS on a real moto server, and botocore's Stubber where moto lacks the call or gets
it wrong; the SQL on real PostgreSQL 15 servers standing for Aurora's endpoints.

Gaps named:
- moto's RDS names endpoints no server answers: `address` maps them to the test's PostgreSQL servers
  (the origin's writer → a primary, Tokyo's reader → its streaming standby, Tokyo's writer after the
  detach → a database that plays the detached copy).
- moto's remove_from_global_cluster outside us-east-1 changes nothing, and its create_global_cluster
  does not find a source cluster outside us-east-1: the promotion is scripted with Stubber.
- Aurora's detach promotes the secondary's storage; nothing here can: the detached copy is a database
  that already writes, with the origin's fence sequences as the secondary replayed them."""

from __future__ import annotations

import inspect
import json

import psycopg
import pytest

from app.db import upgrade
from migrate.errors import ProviderError
from migrate.providers.aws.database_access import DatabaseAccess
from migrate.providers.aws.global_database import AwsGlobalDatabase
from migrate.providers.aws.home_writers import ORIGIN, AwsHomeWriters
from migrate.providers.home_fence import set_fenced
from migrate.providers.protocols import HomeWriters
from tests.app.conftest import replica_pair, seed  # noqa: F401 (replica_pair is a module fixture)

from .conftest import FRANKFURT, SOURCE, TOKYO, StubbedClients
from .test_global_database import PRIMARY_ARN, TOKYO_ARN, TOKYO_READER, _cluster, _global, no_checkpoint, no_progress

SECRET_ID = "game/aurora/migrate"
REGIONS = (SOURCE, TOKYO, FRANKFURT)
GROUP = "game-aurora-pg15"
TOKYO_WRITER = TOKYO_READER.replace("cluster-ro-", "cluster-")


def _port(dsn: str) -> int:
    return int(psycopg.conninfo.conninfo_to_dict(dsn)["port"])


def _access(clients) -> DatabaseAccess:
    return DatabaseAccess(clients, SOURCE, SECRET_ID, "game", lambda: ("origin.invalid", 5432), sslmode="disable")


@pytest.fixture
def secret(aws):
    aws("secretsmanager").create_secret(Name=SECRET_ID, SecretString=json.dumps(
        {"username": "postgres", "password": "unused-by-trust-auth"}))


@pytest.fixture
def world(make_db, primary, aws, secret, replica_pair):  # noqa: F811
    """The origin's global cluster with Tokyo's secondary (moto, logical replication in its parameter
    group), and the endpoints mapped to a real primary (origin) and its streaming standby (Tokyo's reader)."""
    origin_dsn, standby_dsn, _ = replica_pair
    rds = aws("rds", TOKYO)
    rds.create_db_cluster_parameter_group(DBClusterParameterGroupName=GROUP, DBParameterGroupFamily="aurora-postgresql15",
                                          Description="game")
    db = make_db(cluster_options={TOKYO: {"DBClusterParameterGroupName": GROUP}})
    db.reserve_replication(TOKYO)
    db.create_secondary(TOKYO, no_progress, no_checkpoint)
    cluster = db._cluster(TOKYO, "game-ap-northeast-1")
    ports = {cluster["ReaderEndpoint"]: _port(standby_dsn)}

    def address(host: str, _port_asked: int) -> tuple[str, int]:
        return "127.0.0.1", ports.get(host, _port(origin_dsn))  # anything else is the origin's writer
    writers = AwsHomeWriters(db, _access(db.clients), REGIONS, address=address, app_poll_seconds=0,
                             propagation_margin=0, sleep=lambda _s: None, catch_up_timeout=30)
    return writers, rds, origin_dsn, standby_dsn


def _set_logical_replication(rds) -> None:
    rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName=GROUP, Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])


def test_adapter_has_every_method_of_the_protocol_with_its_parameters():
    for name, method in vars(HomeWriters).items():
        if callable(method) and not name.startswith("_"):
            assert list(inspect.signature(getattr(AwsHomeWriters, name)).parameters) == \
                list(inspect.signature(method).parameters), name


def test_stage_refuses_a_secondary_without_logical_replication_then_checks_it_caught_up(world):
    writers, rds, _, _ = world
    with pytest.raises(ProviderError) as refused:
        writers.stage(TOKYO, no_progress, no_checkpoint)
    assert "rds.logical_replication is unset in game-aurora-pg15" in refused.value.one_line()
    assert "reboot" in refused.value.hint
    _set_logical_replication(rds)
    staged = writers.stage(TOKYO, no_progress, no_checkpoint)
    assert staged["reused"] and staged["caught_up_to"].startswith("marker:")
    assert writers.staged(TOKYO) and not writers.is_writer(TOKYO)
    assert writers.replay_lsn(TOKYO) is None  # Aurora reports none: the marker stands in


def test_the_marker_is_seen_on_the_standby_only_once_it_replayed_it(world):
    writers, _, origin_dsn, standby_dsn = world
    marker = writers.marker_lsn()
    later = int(writers.marker_lsn().removeprefix("marker:"))
    assert later > int(marker.removeprefix("marker:"))  # each one new, never lower
    writers.wait_replayed(TOKYO, f"marker:{later}", 30, no_checkpoint)
    with psycopg.connect(standby_dsn) as conn:
        assert conn.execute("SELECT last_value FROM game_cutover_marker").fetchone()[0] >= later
    with pytest.raises(ProviderError, match="not a catch-up marker"):
        writers.wait_replayed(TOKYO, "0/3000060", 1, no_checkpoint)


def test_fences_and_the_barrier_go_through_the_secrets_credentials_to_the_origin(world):
    writers, _, origin_dsn, standby_dsn = world
    try:
        writers.set_fence(ORIGIN, TOKYO, True)
        assert writers.fenced(ORIGIN) == {TOKYO}
        with psycopg.connect(origin_dsn, autocommit=True) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE players SET coins = coins + 1 WHERE home_region = %s", (TOKYO,))
        assert writers.barrier(ORIGIN, TOKYO)["transactions_ended"] == 0
        writers.wait_replayed(TOKYO, writers.marker_lsn(), 30, no_checkpoint)
        assert writers.fenced(TOKYO) == {TOKYO}  # the secondary replays the origin's fence (read on its reader)
        with pytest.raises(ProviderError, match="still a secondary of game-global"):
            writers.set_fence(TOKYO, TOKYO, False)  # it has no writer before the detach
    finally:
        writers.set_fence(ORIGIN, TOKYO, False)
    assert writers.fenced(ORIGIN) == set()


def test_the_writers_map_is_written_to_every_region_and_a_half_written_one_is_finished(world, aws):
    writers, _, _, _ = world
    writers.warm_writes(TOKYO, True)  # a secondary has no writer endpoint yet: nothing to warm
    assert all(not aws("ssm", r).describe_parameters()["Parameters"] for r in REGIONS)
    writers.route_writes(TOKYO, False)  # idempotent on an empty map
    assert writers.writes_routed(TOKYO) == {r: False for r in REGIONS}
    with pytest.raises(ProviderError, match="still a secondary"):
        writers.route_writes(TOKYO, True)  # never routed to a database that is not a writer
    # a run that died after writing one region's copy: the next finishes the others
    aws("ssm", SOURCE).put_parameter(Name="/game/us-east-1/api/home-writers", Type="String",
                                     Value=json.dumps({TOKYO: "host=x port=5432"}))
    assert writers.writes_routed(TOKYO) == {SOURCE: True, TOKYO: False, FRANKFURT: False}
    writers.route_writes(TOKYO, False)
    assert writers.writes_routed(TOKYO) == {r: False for r in REGIONS}
    aws("ssm", FRANKFURT).put_parameter(Name="/game/eu-central-1/api/home-writers", Type="String", Value="[1]",
                                        Overwrite=True)
    with pytest.raises(ProviderError, match="eu-central-1/api/home-writers in eu-central-1 is not a JSON object"):
        writers.route_writes(TOKYO, False)


def test_a_region_outside_the_spec_or_the_origins_is_refused_in_one_line(world):
    writers = world[0]
    for region in ("us-east-1", "sa-east-1"):
        with pytest.raises(ProviderError) as refused:
            writers.stage(region, no_progress, no_checkpoint)
        assert "not a region a cutover can give a writer" in refused.value.one_line()


def test_shard_secondaries_are_made_in_every_other_region_and_in_the_region_for_the_origins_shard(world, aws):
    writers, rds, _, _ = world
    # moto's create_global_cluster does not find a source cluster outside us-east-1 (gap above): the shard's
    # global cluster is made empty here; promote's own call is checked in the Stubber test below
    rds.create_global_cluster(GlobalClusterIdentifier="game-home-ap-northeast-1", Engine="aurora-postgresql",
                              EngineVersion="15.4")
    ticks = []
    out = writers.add_shard_secondaries(TOKYO, lambda done, total: ticks.append((done, total)), no_checkpoint)
    assert out["secondaries"] == ["game-home-ap-northeast-1-in-us-east-1 in us-east-1",
                                  "game-home-ap-northeast-1-in-eu-central-1 in eu-central-1",
                                  "game-home-us-east-1-in-ap-northeast-1 in ap-northeast-1"]
    assert ticks[-1] == (3, 3)
    made = aws("rds", FRANKFURT).describe_db_clusters(DBClusterIdentifier="game-home-ap-northeast-1-in-eu-central-1")
    assert made["DBClusters"][0]["GlobalClusterIdentifier"] == "game-home-ap-northeast-1"
    assert writers.add_shard_secondaries(TOKYO, no_progress, no_checkpoint) == out  # idempotent
    writers.remove_shard_secondaries(TOKYO)
    writers.remove_shard_secondaries(TOKYO)  # idempotent
    for region, name in (("us-east-1", "game-home-ap-northeast-1-in-us-east-1"),
                         ("ap-northeast-1", "game-home-us-east-1-in-ap-northeast-1")):
        assert not [c for c in aws("rds", region).describe_db_clusters()["DBClusters"]
                    if c["DBClusterIdentifier"] == name]


# --- promotion, with Stubber (moto lacks it) ---------------------------------------------------------------

@pytest.fixture
def detached_copy(pg_database):
    """The detached secondary's writer: a database at expand@head that writes, fenced for Tokyo as the
    origin was when the secondary last replayed it."""
    upgrade(pg_database, "expand@head")
    seed(pg_database)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        set_fenced(conn, TOKYO, True)
    return pg_database


def test_promote_detaches_in_the_region_hands_the_home_over_and_makes_the_shards_global_cluster(
        detached_copy, moto, moto_clients, aws, secret):
    clients = StubbedClients()
    db = AwsGlobalDatabase(global_cluster_id="game-global", primary_cluster_id="game-us-east-1", source_region=SOURCE,
                           client_factory=clients, poll_interval=0, wait_timeout=5, sleep=lambda _s: None)
    access = DatabaseAccess(moto_clients, SOURCE, SECRET_ID, psycopg.conninfo.conninfo_to_dict(detached_copy)["dbname"],
                            lambda: ("origin.invalid", 5432), sslmode="disable")
    writers = AwsHomeWriters(db, access, REGIONS, address=lambda host, port: ("127.0.0.1", _port(detached_copy)),
                             sleep=lambda _s: None)
    tokyo, source = clients.stub("rds", TOKYO), clients.stub("rds", SOURCE)
    secondary = _cluster()
    writer = {**_cluster(), "DBClusterMembers": [{"DBInstanceIdentifier": "game-ap-northeast-1-reader-1",
                                                  "IsClusterWriter": True}]}
    by_id = {"DBClusterIdentifier": "game-ap-northeast-1"}
    tokyo.add_response("describe_db_clusters", {"DBClusters": [secondary]}, by_id)
    source.add_response("describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN))  # still a member: detach
    tokyo.add_response("remove_from_global_cluster", {"GlobalCluster": _global(PRIMARY_ARN)["GlobalClusters"][0]},
                       {"GlobalClusterIdentifier": "game-global", "DbClusterIdentifier": TOKYO_ARN})
    tokyo.add_response("describe_db_clusters", {"DBClusters": [secondary]}, by_id)  # first poll: still detaching
    source.add_response("describe_global_clusters", _global(PRIMARY_ARN, TOKYO_ARN))
    tokyo.add_response("describe_db_clusters", {"DBClusters": [writer]}, by_id)  # then a standalone writer
    source.add_response("describe_global_clusters", _global(PRIMARY_ARN))
    tokyo.add_response("describe_db_clusters", {"DBClusters": [writer]}, by_id)
    source.add_response("describe_global_clusters", _global(PRIMARY_ARN))  # its writer endpoint, detached
    tokyo.add_response("create_global_cluster", {"GlobalCluster": {"GlobalClusterIdentifier": "game-home-ap-northeast-1"}},
                       {"GlobalClusterIdentifier": "game-home-ap-northeast-1", "SourceDBClusterIdentifier": TOKYO_ARN})
    out = writers.promote(TOKYO)
    clients.assert_done()
    assert out["detached"] and out["shard_global_cluster"] == "game-home-ap-northeast-1"
    with psycopg.connect(detached_copy, autocommit=True) as conn:
        fenced = {home for home, on in conn.execute(
            "SELECT home, game_home_fenced(home) FROM unnest(%s::text[]) AS home", (list(REGIONS),)) if on}
        assert fenced == {SOURCE, FRANKFURT}  # its own home handed over, the others fenced
        conn.execute("UPDATE players SET coins = 7 WHERE home_region = %s", (TOKYO,))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE players SET coins = 7 WHERE home_region = %s", (SOURCE,))
