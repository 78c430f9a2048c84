"""Operator controls and the lease heartbeat, as seen from inside a running phase.

`migrate pause|resume|abort` append operator_request events addressed to the lock holder's run id;
the running process reads them at its next checkpoint (steps call checkpoint() at least every
second or so), so a request is honoured within the poll interval."""

from __future__ import annotations

import threading
import time
from typing import Callable

from migrate.engine import journal
from migrate.engine.reporting import Reporter
from migrate.engine.state.protocol import Lock, StateStore
from migrate.errors import Aborted, LockLost, MigrateError

POLL_SECONDS = 0.5


class RunControls:
    """Keeps the lease alive in a background thread and applies operator requests at checkpoints."""

    def __init__(self, store: StateStore, env: str, lock: Lock | None, run_id: str,
                 ttl_seconds: float, heartbeat_seconds: float, reporter: Reporter) -> None:
        self.store, self.env, self.lock, self.run_id = store, env, lock, run_id
        self.ttl, self.heartbeat_every, self.reporter = ttl_seconds, heartbeat_seconds, reporter
        self._seen_serial = store.last_serial(env)
        self._last_poll = 0.0
        self._lost: MigrateError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.honour_abort = True  # off during rollback: an abort must never interrupt the undo
        # Set by the runner: journals that the run really paused/resumed, so other terminals see it.
        self.announce: Callable[[str, dict], None] = lambda kind, data: None

    def __enter__(self) -> "RunControls":
        if self.lock is not None:
            self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            try:
                self.lock = self.store.heartbeat(self.lock.lock_id, self.ttl)
            except LockLost as exc:
                self._lost = exc
                return
            except MigrateError:
                continue  # a passing store hiccup; the lease still has time left

    def _pending_actions(self) -> list[str]:
        events = self.store.events(self.env, after=self._seen_serial)
        if events:
            self._seen_serial = events[-1].serial
        return journal.operator_requests(events, self.run_id)

    def checkpoint(self, force_poll: bool = False) -> None:
        """Raise LockLost or Aborted when due; block while paused (until resume or abort)."""
        if self._lost is not None:
            raise self._lost
        now = time.monotonic()
        if not force_poll and now - self._last_poll < POLL_SECONDS:
            return
        self._last_poll = now
        paused = False
        for action in self._pending_actions():
            if action == "abort" and self.honour_abort:
                raise Aborted("aborted by operator request", details={"run_id": self.run_id})
            paused = action == "pause" or (paused and action != "resume")
        if paused:
            self._hold("operator request")

    def hold_for_human(self, reason: str) -> None:
        """Pause now (e.g. an inconclusive gate) until an operator resumes or aborts; journaled."""
        self._pending_actions()  # requests made before the hold do not count as its answer
        self._hold(reason)

    def _hold(self, reason: str) -> None:
        self.announce("run_paused", {"reason": reason})
        self.reporter.note(f"paused ({reason}); waiting for `migrate resume` or `migrate abort`")
        while True:
            time.sleep(POLL_SECONDS)
            if self._lost is not None:
                raise self._lost
            for action in self._pending_actions():
                if action == "abort" and self.honour_abort:
                    raise Aborted("aborted by operator request while paused",
                                  details={"run_id": self.run_id})
                if action == "resume":
                    self.announce("run_resumed", {})
                    self.reporter.note("resumed by operator request")
                    return
