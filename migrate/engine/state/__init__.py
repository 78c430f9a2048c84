"""Journal and lock storage. `open_store(url)` picks the backend from the URL scheme."""

from migrate.engine.state.opener import open_store
from migrate.engine.state.protocol import Event, Lock, StateStore

__all__ = ["Event", "Lock", "StateStore", "open_store"]
