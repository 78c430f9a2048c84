"""The phases of the programme, found by name: the catalogue (migrate/names.py: name, regional,
order) says which phases exist; a phase is built when the `phases` package has its module, named
after it (`cutover` → `phases/cutover.py`), ending in `PHASE: Phase = …`. Adding a phase is adding
that one file. A phase in the catalogue without a module is planned: its sketch (phases/planned.py)
describes it and refuses to run.

The engine drives the phases but does not import them: they are loaded here by name, so the phases
may build on migrate.phasekit while nothing under migrate depends on them (import-linter keeps it so)."""

from __future__ import annotations

import difflib
import importlib
from functools import cache

from migrate.errors import MigrateError, UnknownPhase
from migrate.names import INCIDENT_CATALOGUE, INCIDENT_PHASES, PHASE_CATALOGUE, PHASES
from migrate.phasekit.model import Phase

PACKAGE = "phases"


def module_name(phase_name: str) -> str:
    """The module that builds `phase_name`."""
    return f"{PACKAGE}.{phase_name.replace('-', '_')}"


@cache
def _built() -> dict[str, Phase]:
    found: dict[str, Phase] = {}
    for entry in (*PHASE_CATALOGUE, *INCIDENT_CATALOGUE):
        name = module_name(entry.name)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not built yet
            raise  # the module exists and one of its imports is missing: an error, not "planned"
        phase = getattr(module, "PHASE", None)
        if phase is None or phase.name != entry.name or phase.regional != entry.regional:
            raise MigrateError(f"{name} does not export its phase as the catalogue describes it",
                               hint=f"end {name.replace('.', '/')}.py with `PHASE: Phase = …` whose name is "
                                    f"'{entry.name}' and regional is {entry.regional} (migrate/names.py)")
        found[entry.name] = phase
    return found


@cache
def _planned() -> dict[str, Phase]:
    return importlib.import_module(f"{PACKAGE}.planned").PLANNED


def built_names() -> list[str]:
    """The programme's phases that are built, in catalogue order."""
    return [name for name in _built() if name in PHASES]


def get_phase(name: str) -> Phase:
    """The phase called `name` (built, else its planned sketch); UnknownPhase listing the known names."""
    if name in _built():
        return _built()[name]
    if name in PHASES:
        return _planned()[name]
    known = (*PHASES, *INCIDENT_PHASES)
    close = difflib.get_close_matches(name, known, n=1)
    raise UnknownPhase(f"unknown phase '{name}'",
                       hint=(f"did you mean '{close[0]}'? " if close else "") + "known phases: " + ", ".join(known))


def is_incident(name: str) -> bool:
    """Whether `name` is an incident phase (DESIGN §6b): run on any region of the spec, never scheduled."""
    return name in INCIDENT_PHASES


def all_phases() -> list[Phase]:
    """Every phase in catalogue order."""
    return [get_phase(name) for name in PHASES]
