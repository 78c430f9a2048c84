"""Sign-up (app generation 2): a new player homed where the request landed, an id from that home's
block, a handle unique across every region — raced from two regions through the WAN links and
checked over the recorded history. Generation 1 (the game as it runs) keeps working against the same
expanded database, and its renames stay visible to the handle authority."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from app.ids import allocator_region
from migrate.lab.checkers.handles import SignUpAttempt, check_handles
from migrate.lab.wan import LinkSpec, WanProxyThread
from tests.app.conftest import AP, EU, US, login

pytestmark = pytest.mark.lab


def authority(dsn: str) -> tuple[dict[str, int], dict[int, str]]:
    """(handle → player id) from handle_claims and (id → handle) from players: the final state."""
    with psycopg.connect(dsn) as conn:
        claims = dict(conn.execute("SELECT handle, player_id FROM handle_claims").fetchall())
        players = {pid: handle for handle, pid in conn.execute("SELECT handle, id FROM players").fetchall()}
    return claims, players


def test_generation_1_has_no_sign_up_and_says_so_in_health(make_client):
    v1 = make_client(US, app_generation=1)
    assert v1.post("/v1/players", json={"handle": "newcomer"}).status_code in (404, 405)
    assert v1.get("/health").json()["app"] == {"generation": 1, "requires": "0001_baseline",
                                               "breaks_at": "c001_drop_handle_claims_sync"}


def test_a_sign_up_is_homed_where_it_landed_with_an_id_from_that_homes_block(make_client, db):
    tokyo = make_client(AP, app_generation=2)
    assert tokyo.get("/health").json()["app"]["generation"] == 2
    created = tokyo.post("/v1/players", json={"handle": "sakura", "profile": {"avatar": "fox"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["home_region"] == AP and allocator_region(body["id"]) == AP
    assert body["level"] == 1 and body["profile"] == {"avatar": "fox"}
    assert created.headers["Location"] == f"/v1/players/{body['id']}"
    read = tokyo.get(f"/v1/players/{body['id']}", headers={"X-Min-LSN": body["lsn"]})
    assert read.status_code == 200 and read.json()["handle"] == "sakura"
    assert authority(db)[0]["sakura"] == body["id"]
    frankfurt = make_client(EU, app_generation=2).post("/v1/players", json={"handle": "lena"}).json()
    assert allocator_region(frankfurt["id"]) == EU and frankfurt["id"] != body["id"]


@pytest.mark.parametrize("body,field", [
    ('{"handle": ""}', "handle"), ('{"handle": "ab"}', "handle"), ('{"handle": "' + "x" * 33 + '"}', "handle"),
    ('{"handle": "no spaces"}', "handle"), ('{"handle": "Admin"}', "handle"), ('{"handle": "root"}', "handle"),
    ("{}", "handle"), ('{"handle": "fine_name", "coins": 1000000}', "coins"),
    # sent as raw text: a JSON client would refuse to encode NaN, the app must refuse to store it
    ('{"handle": "fine_name", "profile": {"a": NaN}}', "profile")])
def test_bad_sign_ups_are_a_clear_4xx_and_write_nothing(make_client, db, body, field):
    app = make_client(US, app_generation=2)
    before = authority(db)
    response = app.post("/v1/players", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [field]
    assert authority(db) == before


def test_a_taken_handle_is_409_whoever_holds_it(make_client, db):
    app = make_client(US, app_generation=2)
    taken = app.post("/v1/players", json={"handle": "player1"})  # a player from before the migration
    assert taken.status_code == 409 and taken.json()["error"] == "handle_taken"
    assert app.post("/v1/players", json={"handle": "zed"}).status_code == 201
    again = make_client(AP, app_generation=2).post("/v1/players", json={"handle": "zed"})
    assert again.status_code == 409


def test_a_generation_1_rename_moves_the_claim_so_v1_and_v2_agree_on_one_database(make_client, db):
    v1, v2 = make_client(US, app_generation=1), make_client(US, app_generation=2)
    renamed = v1.patch("/v1/players/1", json={"handle": "renamed_by_v1"}, headers=login(v1, 1))
    assert renamed.status_code == 200, renamed.text
    claims, _ = authority(db)
    assert claims["renamed_by_v1"] == 1 and claims.get("player1") != 1  # released the old, claimed the new
    assert v2.post("/v1/players", json={"handle": "renamed_by_v1"}).status_code == 409
    freed = v2.post("/v1/players", json={"handle": "player1"})
    assert freed.status_code == 201  # the old name is free again
    # v1 reads the player v2 created; v1 cannot take a name v2 signed up
    assert v1.get(f"/v1/players/{freed.json()['id']}").json()["handle"] == "player1"
    clash = v1.patch("/v1/players/2", json={"handle": "player1"}, headers=login(v1, 2))
    assert clash.status_code == 409


ROUNDS = 12


def test_two_regions_racing_for_one_handle_through_the_wan_exactly_one_wins_each_time(make_client, db, pg_server):
    dbname = db.rsplit("/", 1)[1]
    links = [LinkSpec(name=f"{region}->us-east-1:pg", listen_port=0, target_host="127.0.0.1",
                      target_port=pg_server.port, rtt_ms=rtt) for region, rtt in ((AP, 145), (EU, 90))]
    with WanProxyThread(links) as wan:
        apps = {region: make_client(region, app_generation=2,
                                    writer_dsn=pg_server.dsn(dbname, port=wan.port(f"{region}->us-east-1:pg")))
                for region in (AP, EU)}
        history: list[SignUpAttempt] = []
        lock = threading.Lock()

        def attempt(region: str, handle: str, barrier: threading.Barrier) -> None:
            barrier.wait()
            started = time.monotonic()
            try:
                response = apps[region].post("/v1/players", json={"handle": handle})
                status, pid = response.status_code, response.json().get("id")
            except Exception:  # recorded as no answer: the checker objects to it
                status, pid = None, None
            with lock:
                history.append(SignUpAttempt(region, handle, started, time.monotonic(), status, pid))

        for n in range(ROUNDS):
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=attempt, args=(region, f"race_{n}", barrier)) for region in apps]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    claims, players = authority(db)
    assert check_handles(history, claims, players) == []
    winners = [a for a in history if a.status == 201]
    assert len(winners) == ROUNDS  # exactly one per round: the checker also proves no round had two
    print("\nsign-up race winners by region:", {r: sum(a.region == r for a in winners) for r in (AP, EU)})


@pytest.fixture
def contracted_db(db) -> str:
    """`db` after expand's backfill and contract: the authority holds every handle, the sync trigger is gone."""
    from app.db import upgrade

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO handle_claims (handle, player_id, home_region) "
                     "SELECT handle, id, home_region FROM players ON CONFLICT DO NOTHING")
    upgrade(db, "contract@head")
    return db


def test_after_contract_v2_claims_and_moves_handles_itself(make_client, contracted_db):
    v2 = make_client(US, app_generation=2)
    created = v2.post("/v1/players", json={"handle": "after_contract"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    assert authority(contracted_db)[0]["after_contract"] == pid
    renamed = v2.patch(f"/v1/players/{pid}", json={"handle": "moved_on"}, headers=login(v2, pid))
    assert renamed.status_code == 200, renamed.text
    claims, players = authority(contracted_db)
    assert claims["moved_on"] == pid and "after_contract" not in claims  # released the old, claimed the new
    assert claims == {handle: player for player, handle in players.items()}  # the authority agrees with players
    taken = v2.patch(f"/v1/players/{pid}", json={"handle": "player1"}, headers=login(v2, pid))
    assert taken.status_code == 409
    same = v2.patch(f"/v1/players/{pid}", json={"handle": "moved_on", "level": 5}, headers=login(v2, pid))
    assert same.status_code == 200 and same.json()["level"] == 5  # a rename to its own name is no rename
    assert authority(contracted_db)[0] == claims
