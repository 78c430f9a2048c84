"""Lab adapters: provider Protocols implemented on the local lab's processes (DESIGN §3, §6)."""

from migrate.providers.lab.global_database import LabGlobalDatabase

__all__ = ["LabGlobalDatabase"]
