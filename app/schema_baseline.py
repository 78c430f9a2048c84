"""The players table as the live game has it before the migration: the one definition used by the
Alembic baseline revision and by the lab's seeder (which creates it before Alembic first runs).
Frozen: schema changes are new revisions on the expand/contract branches, never edits here."""

PLAYERS_DDL = """
CREATE TABLE IF NOT EXISTS players (
    id          bigint PRIMARY KEY,
    handle      text   NOT NULL UNIQUE,
    home_region text   NOT NULL,
    level       int,
    xp          bigint,
    coins       bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    profile     jsonb  NOT NULL DEFAULT '{}'::jsonb
)
"""
