"""The schema, owned by Alembic, driven from Python (no alembic.ini needed).

Revisions live in three folders under app/migrations/: versions/ (the baseline), expand/ (branch
label `expand`: additive changes, safe while old app versions run) and contract/ (branch label
`contract`: removals, each `depends_on` the expand revision it completes). The orchestrator runs
`upgrade(dsn, "expand@head")` and, only after the backfill is recorded, `upgrade(dsn, "contract@head")`
— Alembic would silently apply missing expand revisions first (DESIGN §9).

    python -m app.db upgrade DSN [TARGET]    python -m app.db current DSN
    python -m app.db heads                   python -m app.db sql [START:]TARGET   (offline SQL, for squawk)
    python -m app.db revision {expand|contract} MESSAGE"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_DIRS = {"baseline": MIGRATIONS / "versions", "expand": MIGRATIONS / "expand",
                "contract": MIGRATIONS / "contract"}
BASELINE = "0001_baseline"


def alembic_config(dsn: str | None = None, *, lock_timeout_ms: int | None = None,
                   output: io.StringIO | None = None) -> Config:
    """An Alembic Config for app/migrations; `dsn` is any libpq DSN (key=value or URL)."""
    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in VERSION_DIRS.values()))
    cfg.attributes["dsn"] = dsn
    cfg.attributes["lock_timeout_ms"] = lock_timeout_ms
    return cfg


def upgrade(dsn: str, target: str = "heads", *, lock_timeout_ms: int | None = None) -> None:
    """Apply revisions up to `target` ("heads", "expand@head", "contract@head", a revision id).
    `lock_timeout_ms` bounds every lock wait, so DDL never queues behind live traffic for long."""
    command.upgrade(alembic_config(dsn, lock_timeout_ms=lock_timeout_ms), target)


def downgrade(dsn: str, target: str, *, lock_timeout_ms: int | None = None) -> None:
    """Undo revisions down to `target` (e.g. "expand@-1"); the baseline itself refuses."""
    command.downgrade(alembic_config(dsn, lock_timeout_ms=lock_timeout_ms), target)


def current(dsn: str) -> set[str]:
    """Revision ids the database is at (empty when Alembic never ran there)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]
        if not exists:
            return set()
        return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}


def heads() -> set[str]:
    """Head revision ids of every branch in app/migrations."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def upgrade_sql(target: str, start: str | None = None) -> str:
    """The SQL `upgrade [start:]target` would run (offline mode), e.g. for `squawk`."""
    out = io.StringIO()
    command.upgrade(alembic_config(output=out), f"{start}:{target}" if start else target, sql=True)
    return out.getvalue()


def new_revision(branch: str, message: str) -> str:
    """Create an empty revision on the `expand` or `contract` branch; its file path."""
    if branch not in ("expand", "contract"):
        raise ValueError("branch must be 'expand' or 'contract'")
    script = command.revision(alembic_config(), message, head=f"{branch}@head",
                              version_path=str(VERSION_DIRS[branch]))
    return str(script.path) if script is not None and not isinstance(script, list) else ""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["upgrade"] and len(args) in (2, 3):
        upgrade(args[1], *(args[2:] or ["heads"]))
    elif args[:1] == ["current"] and len(args) == 2:
        print(" ".join(sorted(current(args[1]))))
    elif args[:1] == ["heads"] and len(args) == 1:
        print(" ".join(sorted(heads())))
    elif args[:1] == ["sql"] and len(args) == 2:
        start, _, target = args[1].rpartition(":")
        print(upgrade_sql(target, start or None))
    elif args[:1] == ["revision"] and len(args) == 3:
        print(new_revision(args[1], args[2]))
    else:
        print(__doc__.split("\n\n")[-1], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
