"""The app's revision listing (migrate/providers/schema_source.py) is kept under a digest of the files it
is made from: the same files give the kept listing without running Alembic again, a changed or added
revision gives another digest, so a kept listing is never stale."""

from __future__ import annotations

import json

from migrate.providers import schema_source
from migrate.providers.schema_source import _branch, _kept_listing


def test_the_listing_is_kept_per_exact_set_of_files_and_read_back_without_running_alembic(tmp_path, monkeypatch):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "e900_note.py").write_text('"""a revision being written"""\n')
    first = _kept_listing("expand", str(extra))
    assert first is not None and first == _kept_listing("expand", str(extra))  # the same files, the same place
    assert first != _kept_listing("contract", str(extra))  # per branch
    (extra / "e900_note.py").write_text('"""a revision being written, edited"""\n')
    assert _kept_listing("expand", str(extra)) != first  # an edited revision is a new listing

    _branch.cache_clear()
    listed = _branch("expand", "")  # made once (or kept by an earlier run) …
    assert listed and listed[0].id.startswith("e0")
    _branch.cache_clear()
    monkeypatch.setattr(schema_source, "app_db", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran alembic")))
    assert _branch("expand", "") == listed  # … then read back, not listed again
    _branch.cache_clear()


def test_one_app_db_process_answers_every_command_as_its_own_process_would(pg_database, tmp_path, monkeypatch):
    server = schema_source._SERVER
    server.stop()
    assert schema_source.app_db("current", pg_database).returncode == 0
    first = server._proc
    upgraded = schema_source.app_db("upgrade", pg_database, "0001_baseline")
    assert upgraded.returncode == 0, upgraded.stderr
    assert schema_source.app_db("current", pg_database).stdout.split() == ["0001_baseline"]
    assert server._proc is first  # one process for all three

    refused = schema_source.app_db("downgrade", pg_database, "base")  # the baseline refuses to be undone
    assert refused.returncode == 1 and "Traceback" in refused.stderr and refused.stdout == ""
    assert server._proc is None  # a failed command ends the process: Alembic may be left half set up
    assert schema_source.app_db("current", pg_database).stdout.split() == ["0001_baseline"]
    second = server._proc
    assert second is not first and first.poll() is not None  # the old one ended, not left behind

    monkeypatch.setenv(schema_source.EXTRA_ENV, str(tmp_path))  # app.db reads it at each command: a new process
    assert schema_source.app_db("heads").returncode == 0
    assert server._proc is not second and second.poll() is not None
    server.stop()


def test_the_app_db_server_answers_garbage_with_a_failure_and_goes_on():
    import subprocess
    import sys

    lines = "\n".join(['["heads"]', "not json", '{"a": 1}', '["serve"]', '["no-such-command"]', '["heads"]']) + "\n"
    proc = subprocess.run([sys.executable, "-m", "app.db", "serve"], input=lines, capture_output=True, text=True,
                          timeout=60)
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0
    assert [r["code"] for r in replies] == [0, 1, 1, 1, 2, 0]
    assert replies[0]["stdout"] == replies[-1]["stdout"] != ""
    assert "JSON list of arguments" in replies[2]["stderr"] and "JSON list of arguments" in replies[3]["stderr"]
