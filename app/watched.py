"""A JSON object that an operator (the migration tool) rewrites while the app runs: in a file
(WatchedJson) or in an SSM parameter (WatchedParameter, for a fleet of tasks).

The file is re-read when its mtime, size or inode changes (writers replace it atomically with
temp + rename); a missing or unreadable file keeps the last good value, so a botched write never
takes a region down. The parameter is polled in the background with the same rule."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
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
        # FastAPI runs sync dependencies on a thread pool: a request that sees the new stamp while another
        # is still reading the file must wait for the new value, not take the old one (an epoch-1 write
        # was accepted after epoch 2 was written, in tests/app/test_home_epochs.py)
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        """The object; one stat() per call, a read only when the file changed."""
        if self.path is None:
            return self._value
        try:
            st = os.stat(self.path)
        except OSError:
            return self._value
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                try:
                    value = json.loads(Path(self.path).read_text())
                    if not isinstance(value, dict):
                        raise ValueError("not a JSON object")
                except (OSError, ValueError) as exc:
                    log.warning("%s: unreadable (%s); keeping the previous value", self.path, exc)
                else:
                    self._value = value
                    self.loaded = True
                self._stamp = stamp  # only now: a reader that sees this stamp gets this file's value
            return self._value


class WatchedParameter:
    """The latest good JSON object in an SSM parameter (String) that the migration tool rewrites while
    the app runs: the WatchedJson of a fleet, where every task must read one switch.

    `run()` polls it in the background (GetParameter every `interval` seconds, jittered so that a
    fleet's tasks spread their calls over the account's GetParameter throughput); an error or a bad
    value is logged and keeps the last good value, so an SSM outage never changes what the app does."""

    def __init__(self, name: str, region: str, interval: float = 5.0, client: Any = None) -> None:
        self.name = name
        self.region = region
        self.interval = interval
        self.where = f"ssm:{region}:{name}"
        self._client = client  # a boto3 SSM client (tests); None: made on first use
        self._text: str | None = None  # the value last parsed
        self._value: dict[str, Any] = {}
        self._error: str | None = None
        self.loaded = False  # true once the parameter parsed at least once

    def get(self) -> dict[str, Any]:
        """The object as last read; never blocks (the poll runs elsewhere)."""
        return self._value

    def refresh(self) -> None:
        """Read the parameter once (blocking); a new object only when its value changed; never raises."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            text = self._ssm().get_parameter(Name=self.name)["Parameter"]["Value"]
            if text != self._text:
                value = json.loads(text)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                self._value, self._text, self.loaded = value, text, True
            self._report(None)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            # Not written yet: nothing to mirror. Deleted later: keep the last value, like a missing file.
            self._report(None if code == "ParameterNotFound" else str(exc))
        except (BotoCoreError, ValueError, KeyError) as exc:
            self._report(f"{type(exc).__name__}: {exc}")

    async def run(self) -> None:
        """Poll until cancelled (the app's lifespan)."""
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a bug here must not end the polling for the life of the task
                log.exception("%s: polling failed", self.where)
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))

    def _ssm(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Short timeouts: a hung call must not hold the poll much longer than its interval.
            self._client = boto3.client("ssm", region_name=self.region, config=Config(
                connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}))
        return self._client

    @property
    def error(self) -> str | None:
        """Why the last read failed (the value in use is then the last good one); None when it succeeded."""
        return self._error

    def _report(self, error: str | None) -> None:
        """Log a failure once when it starts and once when it ends, not on every poll."""
        if error != self._error:
            if error:
                log.warning("%s: unreadable (%s); keeping the previous value", self.where, error)
            elif self._error:
                log.info("%s: readable again", self.where)
            self._error = error
