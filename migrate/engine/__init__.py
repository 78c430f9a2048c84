"""The orchestrator engine: spec → plan → runner, with the journal and lock behind one Protocol."""
