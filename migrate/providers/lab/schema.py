"""SchemaStore in the lab: the shared PostgreSQL schema store (migrate/providers/pg_schema.py) against
the lab writer (trust authentication: no password), and against every region's promoted home writer."""

from __future__ import annotations

import psycopg

from migrate.lab.topology import HOME_WRITER_REGIONS, LabTopology
from migrate.providers.pg_schema import PgSchemaStore


def promoted_home_writers(topology: LabTopology) -> dict:
    """region → its home writer's DSN getter, for every home writer that runs out of recovery."""
    found = {}
    for region in HOME_WRITER_REGIONS:
        home = topology.home_pg(region)
        if not (home.exists() and home.is_running()):
            continue
        try:
            with psycopg.connect(home.dsn(), autocommit=True, connect_timeout=3) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    continue  # a staged standby: it replays the origin's DDL
        except psycopg.Error:
            continue
        found[region] = lambda home=home: home.dsn()
    return found


def LabSchema(topology: LabTopology) -> PgSchemaStore:  # noqa: N802 — reads like the other adapters' classes
    """The lab writer's schema; its DSN is read at each call (the writer moves at cutover)."""
    return PgSchemaStore(lambda: topology.primary().dsn(), where="lab schema",
                         homes=lambda: promoted_home_writers(topology))
