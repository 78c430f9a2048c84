"""HomeServing on AWS (migrate/providers/aws/home_serving.py): the home routing map in every region's SSM
parameter on a real moto server, a region whose SSM fails scripted with a Stubber, and the home's cache
state moved between two real Redis servers whose rediss-less URLs stand where Terraform keeps
ElastiCache's, with the players' homes read from a real PostgreSQL."""

from __future__ import annotations

import json

import psycopg
import pytest

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.home_serving import AwsHomeServing
from tests.app.conftest import RedisServer

from .conftest import SOURCE, TOKYO, FRANKFURT, StubbedClients
from .test_database_access import PASSWORD, password_pg  # noqa: F401 (a module fixture)

REGIONS = (SOURCE, TOKYO, FRANKFURT)


@pytest.fixture
def serving(moto, moto_clients):
    waited = []
    adapter = AwsHomeServing(REGIONS, moto_clients, sleep=waited.append)
    adapter.waited = waited
    return adapter


def maps(aws) -> dict[str, object]:
    return {r: json.loads(aws("ssm", r).get_parameter(Name=f"/game/{r}/api/home-routing")["Parameter"]["Value"])
            for r in REGIONS}


def test_serving_a_home_elsewhere_writes_every_regions_map_and_waits_for_the_tasks_to_poll_it(serving, aws):
    assert serving.serving(TOKYO) == TOKYO and serving.home_epoch(TOKYO) == 1  # nothing written yet: identity
    serving.serve(TOKYO, TOKYO)
    assert serving.waited == []  # already so: nothing written
    serving.serve(FRANKFURT, SOURCE)
    assert maps(aws) == {r: {FRANKFURT: SOURCE} for r in REGIONS}  # epoch 1: the bare form every app reads
    assert serving.waited == [pytest.approx(5.0 * 1.2 + 2.0)]
    assert serving.serving(FRANKFURT) == SOURCE


def test_a_take_over_bumps_the_epoch_once_and_a_resumed_run_gets_the_same_answer(serving, aws):
    assert serving.take_over(TOKYO, SOURCE, 1) == 2
    assert maps(aws)[SOURCE] == {TOKYO: {"region": SOURCE, "epoch": 2}}
    assert serving.take_over(TOKYO, SOURCE, 1) == 2  # the run resumed after its write
    serving.serve(TOKYO, TOKYO)  # the way back keeps the epoch: it never goes back
    assert serving.home_epoch(TOKYO) == 2 and serving.serving(TOKYO) == TOKYO


LOST = (("get_parameter", "InternalServerError", 500), ("put_parameter", "InternalServerError", 500))
WRITE_FAILS = (("get_parameter", "ParameterNotFound", 400), ("put_parameter", "InternalServerError", 500))


def failing_in(region: str, moto_clients, answers=LOST):
    """moto everywhere but `region`, whose SSM gives these (operation, error code, HTTP status) in turn."""
    stubs = StubbedClients()
    for operation, code, status in answers:
        stubs.stub("ssm", region).add_client_error(operation, code, http_status_code=status)
    return lambda service, r: stubs(service, r) if r == region else moto_clients(service, r)


def test_a_region_whose_ssm_fails_fails_a_change_and_the_next_run_finishes_every_copy(moto, moto_clients, aws,
                                                                                      serving):
    waits = []
    broken = AwsHomeServing(REGIONS, failing_in(FRANKFURT, moto_clients, WRITE_FAILS), sleep=waits.append)
    with pytest.raises(TransientProviderError, match=f"ssm PutParameter in {FRANKFURT} failed"):
        broken.serve(TOKYO, SOURCE)
    assert waits == []  # never reported as done
    assert maps_or_none(aws)[FRANKFURT] is None  # us-east-1 and Tokyo were written, Frankfurt not
    serving.serve(TOKYO, SOURCE)  # the next run compares every copy, not the first that answers
    assert maps(aws) == {r: {TOKYO: SOURCE} for r in REGIONS}


def test_a_take_over_goes_on_without_the_lost_regions_copy(moto, moto_clients, aws):
    lost = AwsHomeServing(REGIONS, failing_in(TOKYO, moto_clients), sleep=lambda _s: None)
    assert lost.take_over(TOKYO, SOURCE, 1) == 2  # Tokyo is the region that was lost
    assert maps_without(aws, TOKYO) == {r: {TOKYO: {"region": SOURCE, "epoch": 2}} for r in (SOURCE, FRANKFURT)}
    with pytest.raises(TransientProviderError):  # any other region's copy must be written
        AwsHomeServing(REGIONS, failing_in(FRANKFURT, moto_clients, WRITE_FAILS), sleep=lambda _s: None
                       ).take_over(TOKYO, SOURCE, 2)


def maps_without(aws, region: str) -> dict[str, object]:
    return {r: m for r, m in maps_or_none(aws).items() if r != region}


def maps_or_none(aws) -> dict[str, object]:
    out = {}
    for r in REGIONS:
        try:
            out[r] = json.loads(aws("ssm", r).get_parameter(Name=f"/game/{r}/api/home-routing")["Parameter"]["Value"])
        except aws("ssm", r).exceptions.ParameterNotFound:
            out[r] = None
    return out


def test_reads_go_on_when_the_source_region_does_not_answer(moto, moto_clients, serving):
    serving.serve(TOKYO, SOURCE)
    reader = AwsHomeServing(REGIONS, failing_in(SOURCE, moto_clients, LOST[:1]), sleep=lambda _s: None)
    assert reader.serving(TOKYO) == SOURCE  # from Tokyo's copy


@pytest.mark.parametrize("garbage, why", [("{not json", "is not JSON"), ('["a list"]', "is not a JSON object")])
def test_a_map_that_is_not_a_json_object_is_refused_in_one_line_naming_it(serving, aws, garbage, why):
    aws("ssm", SOURCE).put_parameter(Name=f"/game/{SOURCE}/api/home-routing", Value=garbage, Type="String")
    with pytest.raises(ProviderError) as refused:
        serving.serving(TOKYO)
    assert f"/game/{SOURCE}/api/home-routing in {SOURCE} {why}" in refused.value.message
    assert "\n" not in refused.value.message
    with pytest.raises(ProviderError, match="not a region of the spec"):
        serving.serve(TOKYO, "sa-east-1")


def test_the_homes_cache_state_moves_between_the_regions_caches(moto, moto_clients, aws, pg_database, tmp_path):
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE players (id bigint PRIMARY KEY, home_region text NOT NULL)")
        conn.execute("INSERT INTO players VALUES (1, %s), (2, %s), (3, %s)", (TOKYO, TOKYO, SOURCE))
    caches = {SOURCE: RedisServer(tmp_path), TOKYO: RedisServer(tmp_path)}
    try:
        for region, cache in caches.items():
            aws("ssm", region).put_parameter(Name=f"/game/{region}/api/redis-url", Value=cache.url,
                                             Type="SecureString")
        source = caches[SOURCE].client()
        src = f"game:{SOURCE}:"
        source.zadd(src + "leaderboard", {f"{1:020d}": 900, f"{2:020d}": 800, f"{3:020d}": 700})  # app/leaderboard
        source.hset(src + "mm:ticket:t1", mapping={"player_id": 2, "status": "waiting", "mode": "duel"})
        source.rpush(src + "mm:queue:duel", "t1")
        source.set(src + "mm:player:2", "t1")
        adapter = AwsHomeServing(REGIONS, moto_clients, origin_dsn=lambda: pg_database, sleep=lambda _s: None)

        assert adapter.state_counts(TOKYO, SOURCE) == {"entries": 2, "waiting_tickets": 1}
        moved = adapter.move_state(TOKYO, SOURCE, TOKYO)
        assert (moved["entries"], moved["tickets"]) == (2, 1)
        assert adapter.state_counts(TOKYO, SOURCE) == {"entries": 0, "waiting_tickets": 0}
        assert adapter.state_counts(TOKYO, TOKYO) == {"entries": 2, "waiting_tickets": 1}
        target = caches[TOKYO].client()
        assert target.zrange(f"game:{TOKYO}:leaderboard", 0, -1, withscores=True) == [(f"{2:020d}".encode(), 800.0),
                                                                                     (f"{1:020d}".encode(), 900.0)]
        assert target.lrange(f"game:{TOKYO}:mm:queue:duel", 0, -1) == [b"t1"]  # its place, its id
        assert source.zrange(src + "leaderboard", 0, -1) == [f"{3:020d}".encode()]  # us-east-1's own player stays
        assert adapter.move_state(TOKYO, SOURCE, TOKYO)["entries"] == 0  # again: nothing left to move
    finally:
        for cache in caches.values():
            cache.stop()


def test_moving_state_without_the_origins_credentials_is_refused_in_one_line(moto, moto_clients, aws, tmp_path):
    cache = RedisServer(tmp_path)
    try:
        aws("ssm", SOURCE).put_parameter(Name=f"/game/{SOURCE}/api/redis-url", Value=cache.url, Type="SecureString")
        cache.client().zadd(f"game:{SOURCE}:leaderboard", {f"{1:020d}": 5})
        adapter = AwsHomeServing(REGIONS, moto_clients, sleep=lambda _s: None)
        with pytest.raises(ProviderError, match="names no database_secret_id"):
            adapter.state_counts(TOKYO, SOURCE)
        with pytest.raises(ProviderError, match=f"{FRANKFURT} has no cache URL"):
            adapter.state_counts(TOKYO, FRANKFURT)
    finally:
        cache.stop()


def test_the_origins_players_are_read_with_the_secrets_password(moto_clients, password_pg):
    """Which of a home's players the origin holds is read with DatabaseAccess's password: its DSN carries none."""
    dsn = f"host=127.0.0.1 port={password_pg.port} dbname=game user=migrator"
    with psycopg.connect(dsn, password=PASSWORD, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS players (id bigint PRIMARY KEY, home_region text)")
        conn.execute("INSERT INTO players VALUES (1, %s), (2, %s), (3, %s) ON CONFLICT DO NOTHING", (TOKYO, TOKYO, SOURCE))
    adapter = AwsHomeServing(REGIONS, moto_clients, origin_dsn=lambda: dsn, origin_password=lambda: PASSWORD,
                             sleep=lambda _s: None)
    assert adapter._homed(TOKYO, [1, 2, 3]) == {1, 2}
    without = AwsHomeServing(REGIONS, moto_clients, origin_dsn=lambda: dsn, sleep=lambda _s: None)
    with pytest.raises(ProviderError, match="password"):
        without._homed(TOKYO, [1])
