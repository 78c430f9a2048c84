"""One module per phase, each ending in `PHASE: Phase = …`; the engine finds them by name
(migrate/engine/registry.py) from the catalogue in migrate/names.py. phases/planned.py sketches the
phases not built yet."""
