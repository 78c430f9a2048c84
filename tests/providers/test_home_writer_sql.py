"""The forward stream (providers/home_writer_sql): a copy detached at a moment nobody chose, with no LSN
for it, is caught up by a logical stream whose slot was made before the detach, while the origin keeps
writing; then it takes its home over and the reverse stream brings that home's writes back, with nothing
looping. Real PostgreSQL 15: a primary (wal_level = logical) and a streaming standby whose promotion
stands for Aurora's detach."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from app.db import upgrade
from migrate.lab.pg import run_pg
from migrate.names import REGIONS
from migrate.providers import home_writer_sql as sql
from migrate.providers.home_fence import fenced_homes, set_fenced
from tests.app.conftest import AP, EU, US, seed, wait_for

from .conftest import PLAYERS, Writes, origin_and_secondary, rows_of

def _lsn(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return sql.current_lsn(conn)


def _forward_confirmed(origin: str, target: str) -> bool:
    with psycopg.connect(origin) as conn:
        return bool(sql.forward_confirmed(conn, AP, target))


def _reverse_confirmed(copy: str, target: str) -> bool:
    with psycopg.connect(copy) as conn:
        return bool(sql.confirmed(conn, AP, target))


def test_a_copy_detached_mid_stream_converges_takes_its_home_and_nothing_loops():
    with origin_and_secondary() as (origin_pg, secondary_pg):
        origin, copy = origin_pg.dsn("game"), secondary_pg.dsn("game")
        with Writes(origin, {US, AP, EU}, 1) as before:
            wait_for(lambda: before.done > 50, "writes before the slot")
            with psycopg.connect(origin, autocommit=True) as conn:
                sql.prepare_forward(conn, AP)
            wait_for(lambda: before.done > 150, "writes between the slot and the detach")
            run_pg(["pg_ctl", "promote", "-w", "-D", str(secondary_pg.datadir)], timeout=60)  # the detach
            with psycopg.connect(copy, autocommit=True) as conn:
                assert sql.drop_inherited_subscriptions(conn) == []
                for home in REGIONS:
                    set_fenced(conn, home, True)  # nothing takes a player's write before the hand-over
                sql.subscribe_forward(conn, AP, f"host=127.0.0.1 port={origin_pg.port} dbname=game user=postgres")
                conn.execute("CREATE TABLE applied (seq bigserial, home text)")
                conn.execute("CREATE FUNCTION log_applied() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "IF current_setting('session_replication_role') = 'replica' THEN "
                             "INSERT INTO public.applied (home) VALUES (CASE TG_OP WHEN 'DELETE' THEN OLD.home_region "
                             "ELSE NEW.home_region END); END IF; "
                             "RETURN NULL; END $$")
                conn.execute("CREATE TRIGGER log_applied AFTER INSERT OR UPDATE OR DELETE ON players "
                             "FOR EACH ROW EXECUTE FUNCTION log_applied()")
                conn.execute("ALTER TABLE players ENABLE ALWAYS TRIGGER log_applied")
            start = before.done
            wait_for(lambda: before.done > start + 150, "writes after the detach")

        with Writes(origin, {US, EU}, 2) as others:  # the other homes never stop at the origin
            # the cutover of Tokyo's home: fence, barrier, marker, catch-up
            with psycopg.connect(origin, autocommit=True) as conn:
                set_fenced(conn, AP, True)
                sql.barrier(conn, "test", "origin: barrier")
                marker = sql.current_lsn(conn)
            wait_for(lambda: _forward_confirmed(origin, marker), "the copy to apply the marker", timeout=60)
            assert rows_of(copy, {AP}) == rows_of(origin, {AP})  # the overlap replayed, the home converged
            with psycopg.connect(origin, autocommit=True) as o, psycopg.connect(copy, autocommit=True) as c:
                assert sql.forward_drops_home(o, AP) == f"(home_region <> '{AP}'::text)"
                assert sql.forward_drops_home(o, AP) == f"(home_region <> '{AP}'::text)"  # idempotent
                carried = sql.take_home_from_stream(o, c, AP)
                assert sql.take_home_from_stream(o, c, AP) == carried  # idempotent
                assert [r[0] for r in c.execute("SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = %s",
                                                (sql.REPLAY_TRIGGER,))] == ["handle_claims"]  # the overlap over
                newest = max(rows_of(origin, {AP}))  # the origin signed Tokyo players up after the detach
                assert c.execute("SELECT last_value FROM player_ids_ap_northeast_1").fetchone()[0] >= newest
                assert carried["player_ids_ap_northeast_1"] >= newest
                assert fenced_homes(c) == {US, EU}
                handed_over_at = c.execute("SELECT coalesce(max(seq), 0) FROM applied").fetchone()[0]
                sql.prepare_publication(c, AP)
                sql.subscribe(o, AP, f"host=127.0.0.1 port={secondary_pg.port} dbname=game user=postgres")
            with Writes(copy, {AP}, 3) as home_writes:  # Tokyo's players now write at the copy
                wait_for(lambda: home_writes.done > 200, "the home's writes at its new writer")
            assert home_writes.refused == 0
            wait_for(lambda: others.done > 300, "the other homes' writes at the origin")

        reverse_end, forward_end = _lsn(copy), None
        wait_for(lambda: _reverse_confirmed(copy, reverse_end), "the origin to apply the home's writes")
        forward_end = _lsn(origin)
        wait_for(lambda: _forward_confirmed(origin, forward_end), "the copy to apply the other homes' writes")
        assert rows_of(copy) == rows_of(origin)  # every player, every column, both ways
        assert before.done > 300 and others.done > 300
        with psycopg.connect(copy) as conn:
            echoed = conn.execute("SELECT count(*) FROM applied WHERE seq > %s AND home = %s",
                                  (handed_over_at, AP)).fetchone()[0]
            replayed = conn.execute("SELECT count(*) FROM applied WHERE seq > %s", (handed_over_at,)).fetchone()[0]
        assert echoed == 0 and replayed > 0  # the other homes kept coming; the home's own never came back

        with psycopg.connect(copy, autocommit=True) as c, psycopg.connect(origin, autocommit=True) as o:
            sql.drop_forward(c, o, AP)
            sql.drop_forward(c, o, AP)  # idempotent
            assert not sql.forward_prepared(o, AP)
            assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s", (sql.REPLAY_TRIGGER,)).fetchone()[0] == 0
            assert c.execute("SELECT count(*) FROM pg_subscription").fetchone()[0] == 0


@pytest.fixture
def replaying(pg_database) -> Iterator[psycopg.Connection]:
    """A database with the replay trigger, in a session that applies as a subscription's worker does."""
    upgrade(pg_database, "expand@head")
    seed(pg_database, PLAYERS)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        sql.install_replay(conn)
        sql.install_replay(conn)  # idempotent
        assert [r[0] for r in conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = %s",
                                           (sql.REPLAY_TRIGGER,))] == ["R", "R"]  # it fires in apply only
        conn.execute("SET session_replication_role = replica")
        yield conn


def test_a_reapplied_insert_replaces_the_row_it_meets(replaying):
    replaying.execute("INSERT INTO players (id, handle, home_region, level, xp, coins) VALUES (61, 'player61', %s, 9, 9, 9)",
                      (AP,))
    assert replaying.execute("SELECT level, coins FROM players WHERE id = 61").fetchone() == (9, 9)


def test_a_reapplied_claim_replaces_the_claim_it_meets(replaying):
    replaying.execute("INSERT INTO handle_claims (handle, player_id, home_region) VALUES ('x', 61, %s)", (AP,))
    replaying.execute("INSERT INTO handle_claims (handle, player_id, home_region) VALUES ('x', 62, %s)", (AP,))
    assert replaying.execute("SELECT player_id FROM handle_claims WHERE handle = 'x'").fetchone() == (62,)


def test_a_handle_another_row_holds_for_now_moves_that_row_aside(replaying):
    replaying.execute("UPDATE players SET handle = 'player62' WHERE id = 61")
    rows = dict(replaying.execute("SELECT id, handle FROM players WHERE id IN (61, 62)").fetchall())
    assert rows == {61: "player62", 62: "~replay:62"}  # a later change in the stream gives 62 its own
    replaying.execute("SET session_replication_role = origin")
    with pytest.raises(psycopg.errors.UniqueViolation):  # a player's own write never moves anyone aside
        replaying.execute("UPDATE players SET handle = 'player63' WHERE id = 64")
