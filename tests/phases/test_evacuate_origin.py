"""evacuate-region's take-home when the lost region holds the origin (us-east-1), on fakes of the two
abilities it asks for (no lab: the lab does not emulate Aurora's failover; the AWS adapter's calls are
pinned with Stubber in tests/providers/aws/test_global_database.py): the nearest region with a
secondary becomes the writer, a resumed run does not fail over twice, the way back is a switchover, and
an origin that still answers or a lab without the ability is skipped, saying so."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from migrate.errors import ProviderError
from migrate.phasekit.model import Target
from migrate.providers.bundle import Providers
from migrate.spec import load_spec
from phases.evacuate_region import TakeHome
from tests.conftest import SPEC

ORIGIN = "us-east-1"


class Ctx:
    def __init__(self, target: Target) -> None:
        self.target, self._saved, self.checkpoints = target, {}, 0

    def checkpoint(self) -> None:
        self.checkpoints += 1

    def progress(self, done, total, note="") -> None:
        pass

    def save(self, **values) -> None:
        self._saved.update(values)

    @property
    def saved(self) -> dict:
        return dict(self._saved)


class Database:
    """The global database as take-home reads it: is the writer reachable, which regions hold a secondary."""

    def __init__(self, reachable: bool, secondaries: set[str]) -> None:
        self.reachable, self.secondaries = reachable, secondaries

    def primary_facts(self):
        return SimpleNamespace(reachable=self.reachable, detail="writer answers" if self.reachable else
                               "could not connect to the writer endpoint")

    def secondary_facts(self, region: str):
        return SimpleNamespace(exists=region in self.secondaries)


class Failover:
    def __init__(self) -> None:
        self.writer, self.calls = ORIGIN, []

    def origin_region(self) -> str:
        return self.writer

    def fail_over_origin(self, to_region, progress, checkpoint) -> dict:
        self.calls.append(("failover", to_region))
        self.writer = to_region
        return {"writer_region": to_region, "data_loss_allowed": True}

    def switch_over_origin(self, to_region, progress, checkpoint) -> dict:
        self.calls.append(("switchover", to_region))
        self.writer = to_region
        return {"writer_region": to_region, "data_loss_allowed": False}


def ctx_for(database: Database, failover: Failover | None, kind: str = "aws") -> Ctx:
    spec = load_spec(SPEC)
    env = SimpleNamespace(kind=kind, name=kind, timings=spec.environment("lab").timings)
    providers = Providers(global_database=database, origin_failover=failover)
    return Ctx(Target(spec, env, "evacuate-region", ORIGIN, None, providers))


def test_a_lost_origin_fails_over_to_the_nearest_region_with_a_secondary_once_and_switches_back():
    failover = Failover()
    ctx = ctx_for(Database(reachable=False, secondaries={"eu-central-1", "ap-northeast-1"}), failover)
    out = TakeHome().apply(ctx)
    assert out["taken"] and out["origin"]["writer_region"] == "eu-central-1" and out["origin"]["data_loss_allowed"]
    TakeHome().verify(ctx)
    TakeHome().apply(ctx)  # resumed after a crash: asks AWS again to confirm, the same target
    assert failover.calls == [("failover", "eu-central-1"), ("failover", "eu-central-1")]
    TakeHome().undo(ctx)
    assert failover.calls[-1] == ("switchover", ORIGIN) and failover.writer == ORIGIN


def test_the_failover_goes_to_the_next_region_when_the_nearest_has_no_secondary():
    failover = Failover()
    TakeHome().apply(ctx_for(Database(reachable=False, secondaries={"ap-northeast-1"}), failover))
    assert failover.calls == [("failover", "ap-northeast-1")]


def test_an_origin_that_answers_is_not_failed_over():
    failover = Failover()
    out = TakeHome().apply(ctx_for(Database(reachable=True, secondaries={"eu-central-1"}), failover))
    assert "skipped" in out and "answers" in out["skipped"] and failover.calls == []


def test_no_secondary_anywhere_is_explained_and_changes_nothing():
    failover = Failover()
    with pytest.raises(ProviderError, match="no other region holds a secondary"):
        TakeHome().apply(ctx_for(Database(reachable=False, secondaries=set()), failover))
    assert failover.calls == []


def test_the_lab_says_it_cannot_move_the_origin():
    out = TakeHome().apply(ctx_for(Database(reachable=False, secondaries={"eu-central-1"}), None, kind="lab"))
    assert "cannot move it" in out["skipped"] and "Losing us-east-1" in out["skipped"]
