"""Alembic environment for the game schema. Configured from Python by app.db.alembic_config(): the
DSN arrives in `config.attributes["dsn"]` (any libpq form), so there is no alembic.ini and no URL
translation. Each revision runs in its own transaction, so a failure leaves the earlier ones applied."""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

config = context.config


DEFAULT_LOCK_TIMEOUT_MS = 2000  # a blocked DDL gives up (and is retried) instead of queueing players
DEFAULT_STATEMENT_TIMEOUT_S = 1800  # an index build over 1M players takes seconds; a stuck one ends


def _timeouts() -> list[str]:
    """The session settings every run starts with, online and in the offline SQL (squawk reads those)."""
    lock_ms = int(config.attributes.get("lock_timeout_ms") or DEFAULT_LOCK_TIMEOUT_MS)
    statement_s = int(config.attributes.get("statement_timeout_s") or DEFAULT_STATEMENT_TIMEOUT_S)
    return [f"SET lock_timeout = '{lock_ms}ms'", f"SET statement_timeout = '{statement_s}s'"]


def run_offline() -> None:
    """Emit SQL instead of running it (`upgrade --sql`)."""
    context.configure(dialect_name="postgresql", literal_binds=True, transaction_per_migration=True)
    for statement in _timeouts():
        context.execute(statement)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    dsn = config.attributes.get("dsn")
    if not dsn:
        raise RuntimeError("no DSN: build the config with app.db.alembic_config(dsn)")
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn),
                           poolclass=NullPool)
    with engine.connect() as connection:
        # Session-wide, so they cover every revision's DDL: a blocked ALTER gives up instead of
        # queueing every player's query behind its lock.
        for statement in _timeouts():
            connection.exec_driver_sql(statement)
        connection.commit()
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
