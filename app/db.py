"""The schema, owned by Alembic, driven from Python (no alembic.ini needed).

Revisions live in three folders under app/migrations/: versions/ (the baseline), expand/ (branch
label `expand`: additive changes, safe while old app versions run) and contract/ (branch label
`contract`: removals, each `depends_on` the expand revision it completes). The orchestrator runs
`upgrade(dsn, "expand@head")` and, only after the backfill is recorded, `upgrade(dsn, "contract@head")`
— Alembic would silently apply missing expand revisions first (DESIGN §9).

    python -m app.db upgrade DSN [TARGET] [--lock-timeout-ms N]    python -m app.db downgrade DSN TARGET
    python -m app.db current DSN
    python -m app.db heads                   python -m app.db sql [START[,START…]:]TARGET   (offline SQL, for squawk)
    python -m app.db branch {expand|contract}   (its revisions, root to head, as JSON)
    python -m app.db revision {expand|contract} MESSAGE
    python -m app.db serve     (any of the above, one per line on stdin as a JSON list; a JSON reply each)"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TextIO

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_DIRS = {"baseline": MIGRATIONS / "versions", "expand": MIGRATIONS / "expand",
                "contract": MIGRATIONS / "contract"}
BASELINE = "0001_baseline"
EXTRA_ENV = "GAME_MIGRATIONS_EXTRA"  # one more folder of revisions (tests only)


def alembic_config(dsn: str | None = None, *, lock_timeout_ms: int | None = None,
                   output: io.StringIO | None = None) -> Config:
    """An Alembic Config for app/migrations; `dsn` is any libpq DSN (key=value or URL)."""
    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    locations = [str(p) for p in VERSION_DIRS.values()]
    extra = os.environ.get(EXTRA_ENV)
    if extra:  # tests add a revision (e.g. one squawk must reject) without touching the shipped folders
        locations.append(extra)
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
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
    """The SQL `upgrade [start:]target` would run (offline mode), e.g. for `squawk`. `start` may name
    several revisions, comma-separated: a database on two branches (expand@head and the contract root)
    is at both, and a contract revision that depends on expand must not be shown expand's SQL again."""
    out = io.StringIO()
    starts = tuple(s for s in (start or "").split(",") if s)
    if len(starts) <= 1:
        command.upgrade(alembic_config(output=out), f"{start}:{target}" if start else target, sql=True)
        return out.getvalue()
    # `alembic upgrade A:B --sql` takes one start; Alembic's EnvironmentContext takes several.
    config = alembic_config(output=out)
    script = ScriptDirectory.from_config(config)
    with EnvironmentContext(config, script, fn=lambda rev, context: script._upgrade_revs(target, rev),
                            as_sql=True, starting_rev=starts, destination_rev=target):
        script.run_env()
    return out.getvalue()


def branch_revisions(branch: str) -> list[dict[str, str]]:
    """The revisions of `branch` ("expand" or "contract") from its root to its head, each with its id,
    the revision it revises, the revisions of other branches it depends on and its first docstring line."""
    script = ScriptDirectory.from_config(alembic_config())
    found, revision = [], script.get_revision(f"{branch}@head")
    while revision is not None:  # down the chain from the head to the branch's root, which revises the baseline
        found.append(revision)
        if revision.down_revision == BASELINE:
            break
        revision = script.get_revision(revision.down_revision)
    found.reverse()
    return [{"id": r.revision, "revises": r.down_revision if isinstance(r.down_revision, str) else "",
             "depends_on": list(r.dependencies or ()) if not isinstance(r.dependencies, str) else [r.dependencies],
             "title": (r.doc or "").strip().splitlines()[0] if r.doc else r.revision} for r in found]


def new_revision(branch: str, message: str) -> str:
    """Create an empty revision on the `expand` or `contract` branch; its file path."""
    if branch not in ("expand", "contract"):
        raise ValueError("branch must be 'expand' or 'contract'")
    script = command.revision(alembic_config(), message, head=f"{branch}@head",
                              version_path=str(VERSION_DIRS[branch]))
    return str(script.path) if script is not None and not isinstance(script, list) else ""


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.db", description="the game's schema (Alembic)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("upgrade", "downgrade"):
        command_parser = commands.add_parser(name)
        command_parser.add_argument("dsn")
        command_parser.add_argument("target", nargs="?" if name == "upgrade" else None,
                                    default="heads" if name == "upgrade" else None)
        command_parser.add_argument("--lock-timeout-ms", type=int, default=None)
    commands.add_parser("current").add_argument("dsn")
    commands.add_parser("heads")
    commands.add_parser("sql").add_argument("range", help="[START:]TARGET")
    commands.add_parser("branch").add_argument("name", choices=("expand", "contract"))
    revision_parser = commands.add_parser("revision")
    revision_parser.add_argument("branch", choices=("expand", "contract"))
    revision_parser.add_argument("message")
    commands.add_parser("serve")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "upgrade":
        upgrade(args.dsn, args.target, lock_timeout_ms=args.lock_timeout_ms)
    elif args.command == "downgrade":
        downgrade(args.dsn, args.target, lock_timeout_ms=args.lock_timeout_ms)
    elif args.command == "current":
        print(" ".join(sorted(current(args.dsn))))
    elif args.command == "heads":
        print(" ".join(sorted(heads())))
    elif args.command == "sql":
        start, _, target = args.range.rpartition(":")
        print(upgrade_sql(target, start or None))
    elif args.command == "branch":
        print(json.dumps(branch_revisions(args.name)))
    elif args.command == "serve":
        return serve()
    else:
        print(new_revision(args.branch, args.message))
    return 0


def serve(requests: TextIO | None = None) -> int:
    """`serve`: run commands read one per line (a JSON list of arguments, as after `python -m app.db`) and
    answer each with one line of JSON: {"code", "stdout", "stderr"}, as the command's own process would
    have exited and printed. Ends at the end of input. A tool that runs many revisions one at a time
    (each its own resumable step) pays for importing Alembic, about half a second of CPU, once.

    Replies go out on a copy of the original stdout; fd 1 itself is pointed at stderr, so nothing a
    library prints outside the command's captured output can corrupt a reply."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in (requests or sys.stdin):
        if not line.strip():
            continue
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                args = json.loads(line)
                if not isinstance(args, list) or not all(isinstance(a, str) for a in args) or args[:1] == ["serve"]:
                    raise ValueError(f"a request is a JSON list of arguments (not serve), got {line.strip()[:80]!r}")
                code = main(args)
            except SystemExit as exc:  # argparse's refusals, as the command line would exit
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # noqa: BLE001 - reported as the command's own process would: traceback, exit 1
                traceback.print_exc()
                code = 1
        replies.write(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
