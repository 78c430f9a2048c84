"""The phase registry: the catalogue says which phases exist, a module per phase makes it built."""

from __future__ import annotations

import sys
import types

import pytest

from migrate.engine import registry
from migrate.errors import MigrateError, PhaseNotBuilt, UnknownPhase
from migrate.names import PHASES


@pytest.fixture
def fresh_registry():
    registry._built.cache_clear()
    yield registry
    registry._built.cache_clear()


def test_built_is_derived_from_the_modules_and_every_catalogue_phase_is_known(fresh_registry):
    assert fresh_registry.built_names() == list(PHASES)  # every phase of the catalogue has its module
    assert [p.name for p in fresh_registry.all_phases()] == list(PHASES)


def test_a_catalogue_phase_without_a_module_is_planned_and_refuses_to_run(fresh_registry, monkeypatch):
    from phases.planned import PlannedPhase

    monkeypatch.setitem(sys.modules, "phases.cutover", None)  # as if phases/cutover.py were not written yet
    sketch = PlannedPhase("cutover", "sketch", True, (("fence", "fence writes", "unfence"),), ("approval",),
                          ("switch back",))
    monkeypatch.setattr(fresh_registry, "_planned", lambda: {"cutover": sketch})
    fresh_registry._built.cache_clear()
    assert "cutover" not in fresh_registry.built_names()
    cutover = fresh_registry.get_phase("cutover")
    assert cutover is sketch and not cutover.built
    with pytest.raises(PhaseNotBuilt, match="not built yet") as refused:
        raise cutover.not_built_error(fresh_registry.built_names())
    assert "shift-traffic" in refused.value.hint


def test_a_new_module_is_a_built_phase_and_one_that_contradicts_the_catalogue_is_refused(fresh_registry, monkeypatch):
    module = types.ModuleType("phases.cutover")
    module.PHASE = types.SimpleNamespace(name="cutover", regional=True, built=True)
    monkeypatch.setitem(sys.modules, "phases.cutover", module)
    fresh_registry._built.cache_clear()  # the registry looks once per process
    assert fresh_registry.get_phase("cutover") is module.PHASE
    fresh_registry._built.cache_clear()
    module.PHASE = types.SimpleNamespace(name="cutover", regional=False, built=True)
    with pytest.raises(MigrateError, match="does not export its phase as the catalogue describes it"):
        fresh_registry.get_phase("cutover")


def test_an_unknown_name_gets_did_you_mean():
    with pytest.raises(UnknownPhase) as unknown:
        registry.get_phase("atach-secondary")
    assert unknown.value.hint.startswith("did you mean 'attach-secondary'?")
