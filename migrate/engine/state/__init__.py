"""Journal and lock storage. `open_store(url)` picks the backend from the URL scheme."""

from migrate.engine.state.protocol import Event, Lock, StateStore, open_store

__all__ = ["Event", "Lock", "StateStore", "open_store"]
