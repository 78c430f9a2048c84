"""app/watched.WatchedJson: a file the migration tool replaces while the app's threads read it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from app.watched import WatchedJson


def _replace(path: Path, value) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value if isinstance(value, str) else json.dumps(value))
    tmp.replace(path)


def test_a_reader_that_comes_while_another_reads_the_new_file_gets_the_new_value(tmp_path, monkeypatch):
    """The race the home epochs' history caught: the first reader of a changed file had already taken
    its new stamp when a second reader came, and the second was handed the old value (an epoch-1 write
    accepted after epoch 2 was written). Here the first reader is held inside its read of the file."""
    path = tmp_path / "home-routing.json"
    _replace(path, {"epoch": 1})
    watched = WatchedJson(path)
    assert watched.get() == {"epoch": 1}
    _replace(path, {"epoch": 2})

    inside, release = threading.Event(), threading.Event()
    real_read = Path.read_text

    def held_read(self, *args, **kwargs):
        if threading.current_thread().name == "first":
            inside.set()
            release.wait(30)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", held_read)
    seen: dict[str, dict] = {}
    first = threading.Thread(target=lambda: seen.__setitem__("first", watched.get()), name="first")
    second = threading.Thread(target=lambda: seen.__setitem__("second", watched.get()), name="second")
    first.start()
    assert inside.wait(30)
    second.start()
    second.join(0.5)  # the old code answered at once, with epoch 1; the fixed one waits for the first
    release.set()
    first.join(30)
    second.join(30)
    assert seen == {"first": {"epoch": 2}, "second": {"epoch": 2}}


def test_a_botched_write_keeps_the_last_good_value_until_a_good_one(tmp_path):
    path = tmp_path / "readers.json"
    _replace(path, {"ap-northeast-1": "replica"})
    watched = WatchedJson(path)
    assert watched.get() == {"ap-northeast-1": "replica"} and watched.loaded
    _replace(path, "{not json")
    assert watched.get() == {"ap-northeast-1": "replica"}
    _replace(path, ["a list"])
    assert watched.get() == {"ap-northeast-1": "replica"}
    _replace(path, {})
    assert watched.get() == {}
