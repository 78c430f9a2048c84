"""cutover on a real lab: Tokyo's home writer staged from the us-east-1 origin through the WAN link,
the origin fenced for Tokyo's home with the barrier, the marker replayed, the writer promoted, the
reverse stream created, every region's apps routed. Read from the real processes, not the journal.

The lifecycle through the shared harness; a Tokyo-homed player's write lands on the new writer and
reaches the origin by the reverse stream; after a rollback the origin takes that home's writes again
and holds every write the new writer took; the home's leaderboard entries and tickets move to Tokyo's
Redis and back. Crashes: test_cutover_crashes.py; aborts: test_cutover_abort.py."""

from __future__ import annotations

import threading
import time

import httpx
import psycopg
import pytest
import redis

from app.match_claims import APPLY, CLAIM
from migrate.engine import services
from migrate.lab.topology import SOURCE_REGION
from migrate.providers.home_cache import prefix
from migrate.providers.lab.home_serving import LabHomeServing
from migrate.providers.lab.home_writers import LabHomeWriters
from tests.phases import harness
from tests.phases.cutover_world import CUTOVER, REGION, expanded_lab  # noqa: F401 (a fixture)


def tokyo_player(lab) -> int:
    with psycopg.connect(lab.primary().dsn()) as conn:
        return conn.execute("SELECT min(id) FROM players WHERE home_region = %s", (REGION,)).fetchone()[0]


def coins(dsn: str, player: int) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT coins FROM players WHERE id = %s", (player,)).fetchone()[0]


def test_cutover_verify_rollback_cutover_verify(expanded_lab):
    harness.lifecycle(CUTOVER, expanded_lab)


def test_the_new_writer_takes_the_homes_writes_the_origin_keeps_a_copy_and_gets_them_back(expanded_lab):
    lab, hw = expanded_lab, LabHomeWriters(expanded_lab)
    player = tokyo_player(lab)
    with harness.session() as session:
        assert services.run_phase(session, "cutover", REGION).status == "succeeded"
    home = lab.home_pg(REGION).dsn()
    with psycopg.connect(lab.primary().dsn(), autocommit=True) as origin:  # the origin refuses the home
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            origin.execute("UPDATE players SET coins = 1 WHERE id = %s", (player,))
    with psycopg.connect(home, autocommit=True) as writer:
        writer.execute("UPDATE players SET coins = 4242 WHERE id = %s", (player,))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # and the new writer refuses the others
            writer.execute("UPDATE players SET coins = 1 WHERE id = "
                           "(SELECT min(id) FROM players WHERE home_region = 'us-east-1')")
    hw.drain_reverse_stream(REGION, 60, lambda: None)
    assert coins(lab.primary().dsn(), player) == 4242  # the origin's copy, by the reverse stream
    with psycopg.connect(home, autocommit=True) as writer:
        writer.execute("UPDATE players SET coins = 4343 WHERE id = %s", (player,))
    with harness.session() as session:
        assert services.rollback_phase(session, "cutover", REGION).status == "rolled-back"
    assert coins(lab.primary().dsn(), player) == 4343  # drained before routing back: nothing lost
    with psycopg.connect(lab.primary().dsn(), autocommit=True) as origin:
        origin.execute("UPDATE players SET coins = 1 WHERE id = %s", (player,))  # the origin owns it again


def player_of(lab, home: str) -> int:
    with psycopg.connect(lab.primary().dsn()) as conn:
        return conn.execute("SELECT max(id) FROM players WHERE home_region = %s", (home,)).fetchone()[0]


def play_at_us_east_1(lab, player: int, score: int, mode: str) -> str:
    """The player logs in at us-east-1's app, submits a score and queues for a match; the ticket id."""
    with httpx.Client(base_url=lab.app_url(SOURCE_REGION), timeout=10) as api:
        token = api.post("/v1/login", json={"player_id": player}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert api.post("/v1/scores", json={"score": score}, headers=auth).status_code == 200
        ticket = api.post("/v1/matchmaking/tickets", json={"mode": mode}, headers=auth)
        assert ticket.status_code in (200, 201), ticket.text
        return ticket.json()["ticket_id"]


def cache(lab, region: str) -> redis.Redis:
    return redis.Redis.from_url(lab.redis_url(region))


def test_rehome_moves_the_homes_board_entries_and_waiting_tickets_and_rollback_moves_them_back(expanded_lab):
    lab = expanded_lab
    tokyo, na = player_of(lab, REGION), player_of(lab, SOURCE_REGION)
    tokyo_ticket = play_at_us_east_1(lab, tokyo, 777, "rehome-test")
    play_at_us_east_1(lab, na, 555, "rehome-other")  # another queue: the two would match each other
    east, home = cache(lab, SOURCE_REGION), cache(lab, REGION)
    board = "leaderboard"
    before = east.zscore(prefix(SOURCE_REGION) + board, f"{tokyo:020d}")

    with harness.session() as session:
        assert services.run_phase(session, "cutover", REGION).status == "succeeded"
    # Tokyo's Redis holds its player's best, unchanged, and the ticket, still waiting in its queue;
    # us-east-1 keeps only the players it homes
    assert home.zscore(prefix(REGION) + board, f"{tokyo:020d}") == before
    assert east.zscore(prefix(SOURCE_REGION) + board, f"{tokyo:020d}") is None
    assert east.zscore(prefix(SOURCE_REGION) + board, f"{na:020d}") is not None
    assert home.hget(f"{prefix(REGION)}mm:ticket:{tokyo_ticket}", "status") == b"waiting"
    assert tokyo_ticket.encode() in home.lrange(prefix(REGION) + "mm:queue:rehome-test", 0, -1)
    assert not east.exists(f"{prefix(SOURCE_REGION)}mm:ticket:{tokyo_ticket}")
    assert tokyo_ticket.encode() not in east.lrange(prefix(SOURCE_REGION) + "mm:queue:rehome-test", 0, -1)
    with httpx.Client(base_url=lab.app_url(SOURCE_REGION), timeout=10) as api:  # us-east-1 sends them on
        token = api.post("/v1/login", json={"player_id": tokyo}).json()["token"]
        refused = api.post("/v1/scores", json={"score": 1}, headers={"Authorization": f"Bearer {token}"})
        assert (refused.status_code, refused.json()["serving_region"]) == (409, REGION)

    with harness.session() as session:
        assert services.rollback_phase(session, "cutover", REGION).status == "rolled-back"
    assert east.zscore(prefix(SOURCE_REGION) + board, f"{tokyo:020d}") == before
    assert home.zscore(prefix(REGION) + board, f"{tokyo:020d}") is None
    assert east.hget(f"{prefix(SOURCE_REGION)}mm:ticket:{tokyo_ticket}", "status") == b"waiting"
    assert LabHomeServing(lab).state_counts(REGION, REGION) == {"entries": 0, "waiting_tickets": 0}


def test_rehome_leaves_a_ticket_claimed_by_a_cross_region_match_until_its_claim_settles(expanded_lab):
    """A claimed ticket's owner is who settles its claim (app/match_claims.py): the move waits for the
    coordinator's decision (here: aborted, one second later) and then moves the ticket, waiting again."""
    lab = expanded_lab
    tokyo = player_of(lab, REGION)
    ticket = play_at_us_east_1(lab, tokyo, 778, "claimed-test")
    east, src = cache(lab, SOURCE_REGION), prefix(SOURCE_REGION)
    claim = "c-eu-central-1-0123456789ab"
    now = time.time()
    assert east.register_script(CLAIM)(args=[src, claim, "eu-central-1", f"{now + 600:.3f}", f"{now:.3f}", ticket])[0] == 1
    settle = threading.Timer(1.0, lambda: east.register_script(APPLY)(args=[src, claim, "aborted", f"{time.time():.3f}",
                                                                            300, ticket]))
    settle.start()
    serving = LabHomeServing(lab)
    try:
        moved = serving.move_state(REGION, SOURCE_REGION, REGION)
        assert moved["tickets"] == 1 and moved["passes"] > 1
        assert cache(lab, REGION).hget(f"{prefix(REGION)}mm:ticket:{ticket}", "status") == b"waiting"
        assert not east.exists(f"{src}mm:ticket:{ticket}")
    finally:
        settle.join()
        serving.move_state(REGION, REGION, SOURCE_REGION)  # as the module's other tests expect it
