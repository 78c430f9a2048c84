"""What every database accepted, recorded where it happened, for the one-writer checker
(migrate/lab/checkers/writers.py). Lab instrumentation, installed by tests and benchmarks, never by
the game's migrations.

An AFTER ROW trigger on players appends (the server's port, the player, its home, the time) to
`lab_write_log` in the same transaction as the write: a write the fence refused logs nothing, and
a row applied by the reverse stream logs nothing either (logical replication's apply runs with
session_replication_role = replica, which skips ordinary triggers) — so each database's log holds
exactly the writes it accepted as a writer. A home writer staged from the origin starts with a copy
of the origin's log; entries are told apart by the port of the server that wrote them.

The cutover's journal gives the rest of the history: when the origin stopped taking the home's
writes (the barrier after its fence), when the new writer could first take any (just before
promotion), when the new writer stopped on a rollback (its barrier) and when the origin took them
back. One clock: the lab's machine (PostgreSQL's clock_timestamp() and the tool's time.time())."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import psycopg

from migrate.lab.checkers.writers import Accepted, Became, Event, Fence
from migrate.names import REGIONS

INSTALL = """
CREATE TABLE IF NOT EXISTS lab_write_log (
    seq bigserial, server_port int NOT NULL, player_id bigint NOT NULL, home text NOT NULL,
    op text NOT NULL, at double precision NOT NULL);
CREATE OR REPLACE FUNCTION lab_log_write() RETURNS trigger LANGUAGE plpgsql AS $log$
BEGIN
    INSERT INTO lab_write_log (server_port, player_id, home, op, at)
    VALUES (inet_server_port(), CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
            CASE WHEN TG_OP = 'DELETE' THEN OLD.home_region ELSE NEW.home_region END, TG_OP,
            extract(epoch FROM clock_timestamp()));
    RETURN NULL;
END
$log$;
DROP TRIGGER IF EXISTS players_lab_write_log ON players;
CREATE TRIGGER players_lab_write_log AFTER INSERT OR UPDATE OR DELETE ON players
    FOR EACH ROW EXECUTE FUNCTION lab_log_write();
"""
UNINSTALL = """
DROP TRIGGER IF EXISTS players_lab_write_log ON players;
DROP FUNCTION IF EXISTS lab_log_write();
DROP TABLE IF EXISTS lab_write_log;
"""


def install(dsn: str) -> None:
    """Start logging every write `dsn`'s database accepts (idempotent)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(INSTALL)


def uninstall(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(UNINSTALL)


@dataclass(frozen=True)
class LoggedWrite:
    server_port: int
    seq: int
    player_id: int
    home: str
    at: float


def read(dsn: str) -> list[LoggedWrite]:
    """Every entry of `dsn`'s log (its own and any copied from the database it was staged from)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('lab_write_log')").fetchone()[0] is None:
            return []
        rows = conn.execute("SELECT server_port, seq, player_id, home, at FROM lab_write_log").fetchall()
    return [LoggedWrite(*row) for row in rows]


def history(origin_port: int, home_ports: dict[str, int], logs: Iterable[LoggedWrite],
            cutover_events: Iterable[Any], started_at: float) -> list[Event]:
    """The checker's history: the origin a writer from `started_at`, fences and promotions from the
    cutover journal events (kind, step, data, at), every logged write once (deduplicated: a staged copy
    carries its source's log). Events of evacuate-region count too: when it takes a lost writer's home,
    that writer is gone from then on (a write it accepts afterwards is a violation) and the origin's
    fence comes off (`origin_writable_from`). A region's successive home writers share a name and a
    port: the lost one's log must be read before the way back removes it."""
    names = {origin_port: "origin", **{port: f"{region} home writer" for region, port in home_ports.items()}}
    out: list[Event] = [Became("origin", "primary", started_at)]
    for region in home_ports:  # staged fenced for every other home, before it could ever write
        out += [Fence(f"{region} home writer", other, True, started_at) for other in REGIONS if other != region]
    for event in cutover_events:
        region, data, at = event.region, event.data or {}, event.at.timestamp()
        writer = f"{region} home writer"
        if event.kind == "step_succeeded" and event.step == "fence-origin":
            out.append(Fence("origin", region, True, data["outputs"]["writable_until"]))
        elif event.kind == "step_succeeded" and event.step == "promote":
            out.append(Became(writer, "primary", data["outputs"]["promoting_from"]))
        elif event.kind == "step_progress" and "new_writer_writable_until" in data:
            out.append(Fence(writer, region, True, data["new_writer_writable_until"]))
        elif event.kind == "step_progress" and "origin_writable_from" in data:
            out.append(Fence("origin", region, False, data["origin_writable_from"]))
        elif event.kind == "undo_succeeded" and event.step == "promote":
            out.append(Became(writer, "gone", at))
        if event.kind == "step_progress" and data.get("taken") and not data.get("origin_region"):
            out.append(Became(writer, "gone", at))  # evacuate-region took its home: lost from here on
    seen = set()
    for entry in logs:
        key = (entry.server_port, entry.seq, entry.player_id, entry.at)  # a region's writers share a port
        if key in seen or entry.server_port not in names:
            continue
        seen.add(key)
        out.append(Accepted(names[entry.server_port], entry.player_id, entry.home, entry.at))
    return out
