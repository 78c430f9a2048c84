"""A JSON object in a file that an operator (the migration tool) rewrites while the app runs.

The file is re-read when its mtime, size or inode changes (writers replace it atomically with
temp + rename); a missing or unreadable file keeps the last good value, so a botched write never
takes a region down."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("app")


class WatchedJson:
    """The latest good JSON object in `path` (empty until the file first parses)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._value: dict[str, Any] = {}
        self.loaded = False  # true once the file parsed at least once

    def get(self) -> dict[str, Any]:
        """The object; one stat() per call, a read only when the file changed."""
        if self.path is None:
            return self._value
        try:
            st = os.stat(self.path)
        except OSError:
            return self._value
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                value = json.loads(Path(self.path).read_text())
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable (%s); keeping the previous value", self.path, exc)
            else:
                self._value = value
                self.loaded = True
        return self._value
