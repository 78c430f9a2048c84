"""The write fence as the expand schema carries it (e008): a sequence per home, `game_fence_<home>`,
1 = that home's rows are refused on this database (SQLSTATE 25006), 0 = written. One reading and
writing of it for every adapter (the lab's PostgreSQL and Aurora alike: it is plain SQL).

setval() is not transactional and a sequence is read outside MVCC: the next row any transaction
writes sees the change, even one whose snapshot is older, so there is no reload to wait for. The
setting `game.fenced_homes` is read too: the lab's staged standby is fenced for the other homes that
way (a standby cannot run setval())."""

from __future__ import annotations

import psycopg

from migrate.names import REGIONS


def sequence_name(home: str) -> str:
    return "game_fence_" + home.replace("-", "_")


def fenced_homes(conn: psycopg.Connection) -> set[str]:
    """The homes whose writes this database refuses now (sequence or setting)."""
    rows = conn.execute("SELECT home, game_home_fenced(home) FROM unnest(%s::text[]) AS home",
                        (list(REGIONS),)).fetchall()
    return {home for home, fenced in rows if fenced}


def set_fenced(conn: psycopg.Connection, home: str, on: bool) -> None:
    """Fence (or unfence) `home` on this database; the next row written anywhere in it sees it. Idempotent."""
    conn.execute("SELECT setval(%s, %s)", (sequence_name(home), int(on)))
