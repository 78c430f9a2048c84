"""In-memory stand-ins for unit tests of the engine only (never for integration tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from migrate.engine import journal
from migrate.engine.controls import RunControls
from migrate.phasekit.model import Check, CheckResult, Target
from migrate.engine.reporting import SilentReporter
from migrate.engine.runner import Runner
from migrate.errors import ProviderError, TransientProviderError

ENV = SimpleNamespace(name="unit", kind="lab", lock_ttl_seconds=5.0, heartbeat_seconds=1.0)
SPEC = SimpleNamespace(source_region="us-east-1")


@dataclass
class World:
    """What the fake steps change: a set of things that exist, and a log of calls."""

    present: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    fail_next: dict[str, Exception] = field(default_factory=dict)  # step id → error raised once
    hook: dict[str, object] = field(default_factory=dict)  # step id → callable(ctx) run inside apply


@dataclass(frozen=True)
class FakeStep:
    id: str
    world: World = field(compare=False)
    title: str = "fake step"

    def describe(self, target):
        return [f"create {self.id}"]

    def describe_undo(self, target):
        return [f"remove {self.id}"]

    def apply(self, ctx):
        self.world.calls.append(f"apply:{self.id}")
        if self.id in self.world.hook:
            self.world.hook[self.id](ctx)
        if self.id in self.world.fail_next:
            raise self.world.fail_next.pop(self.id)
        self.world.present.add(self.id)
        return {"made": self.id}

    def verify(self, ctx):
        from migrate.errors import VerifyFailed

        if self.id not in self.world.present:
            raise VerifyFailed(f"{self.id} missing")

    def undo(self, ctx):
        self.world.calls.append(f"undo:{self.id}")
        self.world.present.discard(self.id)


class FakePhase:
    name = "attach-secondary"
    summary = "fake"
    built = True
    regional = True
    runbook = "runbooks/fake.md"

    def __init__(self, world: World, ids=("a", "b", "c"), point_of_no_return=None, preflight_ok=True):
        self.world, self.ids, self.point_of_no_return = world, ids, point_of_no_return
        self.preflight_ok = preflight_ok

    def preflight(self, target):
        return [Check("ready", "world ready", "make it ready",
                      lambda t: CheckResult("ready", self.preflight_ok, "ok" if self.preflight_ok else "not ready", "fix it"))]

    def steps(self, target):
        return [FakeStep(i, self.world) for i in self.ids]

    def verify(self, target):
        return [Check("all-present", "all present", "re-run",
                      lambda t: CheckResult("all-present", set(self.ids) <= self.world.present, "present"))]

    def rollback_summary(self, target):
        return ["remove all"]


def make_runner(store, phase, *, run_id="run-1", region="ap-northeast-1", reporter=None) -> Runner:
    """A runner on a fresh fold of the store's journal, without a lock (unit tests)."""
    state = journal.fold(store.events(ENV.name))
    target = Target(SPEC, ENV, phase.name, region, state.phase(phase.name, region), providers_source=None)
    reporter = reporter or SilentReporter()
    controls = RunControls(store, ENV.name, None, run_id, ENV.lock_ttl_seconds, ENV.heartbeat_seconds, reporter)
    return Runner(store, phase, target, controls, reporter, actor="tester@unit", retry_attempts=3)


__all__ = ["World", "FakePhase", "make_runner", "ENV", "ProviderError", "TransientProviderError"]
