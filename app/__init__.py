"""The reference game backend: one ASGI service (FastAPI) that every region runs.

Sessions, player profiles, leaderboards, matchmaking, asset URLs, health and metrics, configured only
from environment variables (see app/README.md). `app.main.create_app(settings)` builds an instance;
`app.db.upgrade(dsn)` owns the schema (Alembic, with `expand` and `contract` branches)."""
