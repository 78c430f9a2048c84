"""Open the state store a URL names. Kept apart from protocol.py, which the backends import: the
Protocol knows no backend, and psycopg is loaded only when a team journal (PostgreSQL) is used."""

from __future__ import annotations

from migrate.engine.state.protocol import StateStore


def open_store(url: str) -> StateStore:
    """`sqlite:///path/to/file.db` (or a bare path) → SQLite; `postgresql://…` → PostgreSQL."""
    if url.startswith(("postgresql://", "postgres://")):
        from migrate.engine.state.postgres import PostgresStateStore  # psycopg only for a team journal

        return PostgresStateStore(url)
    from migrate.engine.state.sqlite import SqliteStateStore

    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    return SqliteStateStore(path)
