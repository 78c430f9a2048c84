"""The phase catalogue: one module per built phase, and the sketch of each phase not built yet."""

from __future__ import annotations

from migrate.engine.model import Phase
from migrate.errors import UnknownPhase
from phases.attach_secondary import AttachSecondary
from phases.planned import PLANNED
from phases.shadow_traffic import ShadowTraffic
from phases.shift_traffic import ShiftTraffic
from phases.stand_up_region import StandUpRegion

PHASE_ORDER = ("stand-up-region", "attach-secondary", "shadow-traffic", "shift-traffic",
               "expand-schema", "cutover", "contract-schema")

_BUILT: dict[str, Phase] = {p.name: p for p in (StandUpRegion(), AttachSecondary(), ShadowTraffic(), ShiftTraffic())}


def get_phase(name: str) -> Phase:
    """The phase called `name` (built or planned); UnknownPhase listing the known names otherwise."""
    if name in _BUILT:
        return _BUILT[name]
    if name in PLANNED:
        return PLANNED[name]
    import difflib

    close = difflib.get_close_matches(name, PHASE_ORDER, n=1)
    raise UnknownPhase(f"unknown phase '{name}'",
                       hint=(f"did you mean '{close[0]}'? " if close else "")
                       + "known phases: " + ", ".join(PHASE_ORDER))


def all_phases() -> list[Phase]:
    """Every phase in catalogue order."""
    return [get_phase(name) for name in PHASE_ORDER]
