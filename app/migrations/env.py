"""Alembic environment for the game schema. Configured from Python by app.db.alembic_config(): the
DSN arrives in `config.attributes["dsn"]` (any libpq form), so there is no alembic.ini and no URL
translation. Each revision runs in its own transaction, so a failure leaves the earlier ones applied."""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

config = context.config


def run_offline() -> None:
    """Emit SQL instead of running it (`upgrade --sql`)."""
    context.configure(dialect_name="postgresql", literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    dsn = config.attributes.get("dsn")
    if not dsn:
        raise RuntimeError("no DSN: build the config with app.db.alembic_config(dsn)")
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn),
                           poolclass=NullPool)
    with engine.connect() as connection:
        lock_timeout_ms = config.attributes.get("lock_timeout_ms")
        if lock_timeout_ms:
            # Session-wide, so it covers every revision's DDL: a blocked ALTER gives up instead of
            # queueing every player's query behind its lock.
            connection.exec_driver_sql(f"SET lock_timeout = {int(lock_timeout_ms)}")
            connection.commit()
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
