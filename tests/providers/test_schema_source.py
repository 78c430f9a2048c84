"""The app's revision listing (migrate/providers/schema_source.py) is kept under a digest of the files it
is made from: the same files give the kept listing without running Alembic again, a changed or added
revision gives another digest, so a kept listing is never stale."""

from __future__ import annotations

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
