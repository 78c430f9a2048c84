"""squawk over a schema phase's SQL: the real binary, findings with their rule and line, and an
exception accepted only with its reason written above it."""

from __future__ import annotations

from migrate.providers.sql_lint import lint_sql

TIMEOUTS = "SET lock_timeout = '2000ms';\nSET statement_timeout = '600s';\n"


def test_additive_sql_with_timeouts_is_clean():
    sql = TIMEOUTS + ("ALTER TABLE players ADD COLUMN IF NOT EXISTS guild_id bigint;\n"
                      "CREATE INDEX CONCURRENTLY IF NOT EXISTS players_guild ON players (guild_id);\n")
    assert lint_sql(sql) == []


def test_a_plain_create_index_is_found_with_its_rule_and_line():
    sql = TIMEOUTS + "\nCREATE INDEX IF NOT EXISTS players_level ON players (level);\n"
    findings = lint_sql(sql)
    assert [(f.rule, f.line) for f in findings] == [("require-concurrent-index-creation", 4)]
    assert "CREATE INDEX" in findings[0].statement and "line 4: require-concurrent-index-creation" in findings[0].one_line()


def test_a_not_null_column_without_a_default_is_found():
    sql = TIMEOUTS + "ALTER TABLE players ADD COLUMN IF NOT EXISTS guild_id bigint NOT NULL;\n"
    assert [f.rule for f in lint_sql(sql)] == ["adding-required-field"]


def test_an_exception_needs_its_reason_above_it():
    statement = "ALTER TABLE players ADD COLUMN IF NOT EXISTS streak int;\n"
    bare = TIMEOUTS + "-- squawk-ignore prefer-bigint-over-int\n" + statement
    assert [(f.rule, f.line) for f in lint_sql(bare)] == [("ignore-without-reason", 3)]
    reasoned = TIMEOUTS + "-- why: a daily streak stays far below 2**31\n-- squawk-ignore prefer-bigint-over-int\n" + statement
    assert lint_sql(reasoned) == []
