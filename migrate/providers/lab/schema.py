"""SchemaStore in the lab: the shared PostgreSQL schema store (migrate/providers/pg_schema.py) against
the lab writer (trust authentication: no password)."""

from __future__ import annotations

from migrate.lab.topology import LabTopology
from migrate.providers.pg_schema import PgSchemaStore


def LabSchema(topology: LabTopology) -> PgSchemaStore:  # noqa: N802 — reads like the other adapters' classes
    """The lab writer's schema; its DSN is read at each call (the writer moves at cutover)."""
    return PgSchemaStore(lambda: topology.primary().dsn(), where="lab schema")
