"""Helpers for the providers' tests on real PostgreSQL: a primary with logical decoding and its streaming
standby (whose promotion stands for Aurora's detach), and players' writes in a thread."""

from __future__ import annotations

import contextlib
import random
import shutil
import threading
import time
from collections.abc import Iterator

import psycopg

from app.db import upgrade
from migrate.lab.pg import PgCluster, primary_and_standby
from tests.app.conftest import AP, EU, US, seed
from tests.conftest import reachable_tmpdir

PLAYERS = {**{i: US for i in range(1, 61)}, **{i: AP for i in range(61, 121)}, **{i: EU for i in range(121, 181)}}


@contextlib.contextmanager
def origin_and_secondary() -> Iterator[tuple[PgCluster, PgCluster]]:
    """A primary at expand@head, seeded, logical decoding on, and its streaming standby."""
    def prepare(origin: PgCluster) -> None:
        with psycopg.connect(origin.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE game")
        upgrade(origin.dsn("game"), "expand@head")
        seed(origin.dsn("game"), PLAYERS)

    root = reachable_tmpdir("migrate-test-forward-")
    try:
        with primary_and_standby(root, {"wal_level": "logical"}, prepare) as pair:
            yield pair
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Writes:
    """Players' writes on one database for `homes`, in a thread: coins, handle swaps inside a home (three
    UPDATEs in one transaction), sign-ups from the home's id sequence, deletions. A fenced home's write
    is refused, as the app's would be, and counted."""

    def __init__(self, dsn: str, homes: set[str], seed_: int) -> None:
        self.dsn, self.homes, self.rng = dsn, homes, random.Random(seed_)
        self.done, self.refused = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Writes:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error

    def _one(self, conn: psycopg.Connection) -> None:
        home = self.rng.choice(sorted(self.homes))
        ids = [r[0] for r in conn.execute("SELECT id FROM players WHERE home_region = %s ORDER BY id", (home,))]
        kind = self.rng.random()
        with conn.transaction():
            if kind < 0.5 or len(ids) < 3:
                conn.execute("UPDATE players SET coins = coins + 1, updated_at = now() WHERE id = %s",
                             (self.rng.choice(ids),))
            elif kind < 0.75:
                a, b = self.rng.sample(ids, 2)
                ha, hb = (conn.execute("SELECT handle FROM players WHERE id = %s", (p,)).fetchone()[0] for p in (a, b))
                conn.execute("UPDATE players SET handle = %s WHERE id = %s", (f"swap-{a}-{b}-{self.done}", a))
                conn.execute("UPDATE players SET handle = %s WHERE id = %s", (ha, b))
                conn.execute("UPDATE players SET handle = %s WHERE id = %s", (hb, a))
            elif kind < 0.92:
                conn.execute(f"INSERT INTO players (id, handle, home_region, level, xp, coins) VALUES "
                             f"(nextval('player_ids_{home.replace('-', '_')}'), 'new-' || "
                             f"currval('player_ids_{home.replace('-', '_')}'), %s, 1, 0, 0)", (home,))
            else:
                conn.execute("DELETE FROM players WHERE id = %s", (self.rng.choice(ids),))

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self._stop.is_set():
                    try:
                        self._one(conn)
                        self.done += 1
                    except psycopg.errors.ReadOnlySqlTransaction:
                        self.refused += 1
                    time.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 — re-raised in the test's thread on exit
            self.error = exc


def rows_of(dsn: str, homes: set[str] | None = None) -> dict[int, tuple]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, handle, home_region, level, xp, coins, updated_at, profile FROM players "
                            "WHERE %s::text[] IS NULL OR home_region = ANY(%s)",
                            (sorted(homes) if homes else None, sorted(homes) if homes else None)).fetchall()
    return {row[0]: row for row in rows}
