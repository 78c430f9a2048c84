"""The bake-and-gate loop on fakes (no lab): a pass is journaled and returned, a failure puts things back
at once and fails the step, an inconclusive gate holds for a human and bakes again on resume, and a
revert that fails says so. Bakes are a fraction of a second long: the loop's shape, not its timing."""

from __future__ import annotations

import pytest

from migrate.errors import ProviderError, VerifyFailed
from migrate.phasekit import bake as bake_module
from migrate.phasekit.bake import Bake, bake_and_gate
from migrate.phasekit.gates import GeographyLatency, Measurements, RegionErrors, Thresholds

T = Thresholds(error_rate_max=0.01, p95_ms_max={"apac": 250}, replication_lag_seconds_max=5, min_samples=10)


def measured(p95: float | None, samples: int = 100, errors: int = 0) -> Measurements:
    return Measurements(regions=(RegionErrors("ap-northeast-1", samples, errors),),
                        geographies=(GeographyLatency("apac", samples if p95 is not None else 0, p95),),
                        replication_lag_seconds=0.1, lag_region="ap-northeast-1")


class Window:
    """A metrics window whose measurements the test chooses."""

    def __init__(self, world: "World") -> None:
        self.world, self.closed = world, False

    def sample(self) -> None:
        self.world.samples += 1

    def measurements(self) -> Measurements:
        return self.world.next_measurement()

    def close(self) -> None:
        self.closed = True


class World:
    def __init__(self, *measurements: Measurements) -> None:
        self.queue, self.samples, self.windows, self.reverts = list(measurements), 0, [], []

    def next_measurement(self) -> Measurements:
        return self.queue.pop(0) if len(self.queue) > 1 else self.queue[0]

    def open_window(self) -> Window:
        self.windows.append(Window(self))
        return self.windows[-1]

    def revert(self) -> str:
        self.reverts.append(True)
        return "back to 25 %"


class Ctx:
    """The StepContext surface the loop uses."""

    def __init__(self, resume_after_hold: list[Measurements] | None = None, world: World | None = None) -> None:
        self.gates, self.holds, self.checkpoints = [], [], 0
        self._resume_with, self._world = resume_after_hold, world

    def record_gate(self, record: dict) -> None:
        self.gates.append(record)

    def progress(self, done, total, text) -> None:
        pass

    def checkpoint(self) -> None:
        self.checkpoints += 1

    def hold_for_human(self, why: str) -> None:
        self.holds.append(why)
        if self._resume_with is not None:  # the operator resumes once the data is there
            self._world.queue = list(self._resume_with)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(bake_module, "TICK_SECONDS", 0.001)


def a_bake(world: World, **overrides) -> Bake:
    values = dict(label="50 %", index=0, count=2, bake_seconds=0.05, settle_seconds=0.01, poll_seconds=0.02,
                  thresholds=T, open_window=world.open_window, revert=world.revert,
                  rollback_command="migrate phase rollback shift-traffic --region ap-northeast-1",
                  journal_extra=lambda: {"routing": {"weights": {"ap-northeast-1": 50}}})
    values.update(overrides)
    return Bake(**values)


def test_a_healthy_bake_passes_is_journaled_with_what_it_measured_and_closes_its_windows():
    world, ctx = World(measured(120.0)), Ctx()
    result = bake_and_gate(ctx, a_bake(world))
    assert result.passed and world.reverts == []
    assert [(g["at"], g["verdict"], g["action"]) for g in ctx.gates] == [("50 %", "pass", "continue")]
    assert ctx.gates[0]["routing"] == {"weights": {"ap-northeast-1": 50}}
    assert ctx.checkpoints > 0 and world.samples > 0  # operator requests are honoured during the bake
    assert len(world.windows) == 2 and all(w.closed for w in world.windows)  # settling, then the gate


def test_a_failure_while_settling_reverts_at_once_and_fails_the_step():
    world, ctx = World(measured(900.0)), Ctx()
    with pytest.raises(VerifyFailed, match="gate failed at 50 %") as failed:
        bake_and_gate(ctx, a_bake(world))
    assert world.reverts == [True]
    assert ctx.gates[-1]["action"] == "reverted: back to 25 %" and ctx.gates[-1]["window"] == "settling"
    assert "migrate phase rollback shift-traffic" in failed.value.hint


def test_inconclusive_holds_for_a_human_and_bakes_again_on_resume():
    world = World(measured(None))
    ctx = Ctx(resume_after_hold=[measured(100.0)], world=world)
    assert bake_and_gate(ctx, a_bake(world)).passed
    assert len(ctx.holds) == 1 and "inconclusive at 50 %" in ctx.holds[0]
    assert [g["action"] for g in ctx.gates] == ["held for a human", "continue"]
    assert world.reverts == []  # no data is never a failure


def test_a_revert_that_fails_is_journaled_and_names_the_rollback():
    world, ctx = World(measured(900.0)), Ctx()

    def broken_revert() -> str:
        raise ProviderError("Route 53 throttled", where="aws")

    with pytest.raises(ProviderError, match="putting things back failed") as failed:
        bake_and_gate(ctx, a_bake(world, revert=broken_revert))
    assert ctx.gates[-1]["action"].startswith("revert FAILED")
    assert "migrate phase rollback shift-traffic --region ap-northeast-1" in failed.value.hint
