"""cutover's preflight checks that differ by environment, on stand-ins of the two abilities they ask
(the adapters behind them are tested on moto and real PostgreSQL in tests/providers/aws/test_home_writers.py):
on AWS the region's secondary becomes its writer, so its lag is held to the budget before anything runs,
and logical decoding must be in force where the cutover decodes."""

from __future__ import annotations

from types import SimpleNamespace

from migrate.phasekit.model import Target
from migrate.providers.bundle import Providers
from migrate.providers.protocols import ReplicationLag
from migrate.spec import load_spec
from phases.cutover import PHASE
from tests.conftest import SPEC

TOKYO = "ap-northeast-1"


class Writers:
    def __init__(self, staged: bool = False, decoding: tuple[bool, str] = (True, "on")) -> None:
        self._staged, self._decoding = staged, decoding

    def staged(self, region: str) -> bool:
        return self._staged

    def logical_decoding_ready(self, region: str) -> tuple[bool, str]:
        return self._decoding


class Database:
    def __init__(self, lag: ReplicationLag) -> None:
        self.lag = lag

    def replication_lag(self, region: str) -> ReplicationLag:
        return self.lag


def _results(kind: str, writers: Writers, lag_seconds: float | None = 0.4) -> dict:
    spec = load_spec(SPEC)
    timings = spec.environment("lab").timings
    env = SimpleNamespace(kind=kind, name=kind, timings=timings)
    lag = ReplicationLag(TOKYO, "streaming", None, lag_seconds)
    target = Target(spec, env, "cutover", TOKYO, None,
                    Providers(global_database=Database(lag), home_writers=writers))
    wanted = {"secondary-within-budget", "logical-decoding"}
    return {check.id: check.run(target) for check in PHASE.preflight(target) if check.id in wanted}


def test_on_aws_a_secondary_lagging_past_the_budget_is_refused_before_anything_runs():
    budget = load_spec(SPEC).environment("lab").timings.lag_budget_seconds
    late = _results("aws", Writers(), lag_seconds=budget * 4)["secondary-within-budget"]
    assert late.ok is False and f"lag {budget * 4} s" in late.detail
    assert _results("aws", Writers(), lag_seconds=budget / 2)["secondary-within-budget"].ok is True
    assert _results("aws", Writers(), lag_seconds=None)["secondary-within-budget"].ok is False  # unknown never passes


def test_a_copy_already_staged_is_not_held_to_its_old_secondarys_lag():
    result = _results("aws", Writers(staged=True), lag_seconds=None)["secondary-within-budget"]
    assert result.ok is True and "detached already" in result.detail


def test_the_lab_stages_its_own_copy_so_no_secondary_lag_applies():
    assert _results("lab", Writers(), lag_seconds=None)["secondary-within-budget"].ok is True


def test_logical_decoding_missing_where_the_cutover_decodes_is_refused_with_the_reason():
    result = _results("aws", Writers(decoding=(False, "us-east-1: rds.logical_replication is unset in default")))
    assert result["logical-decoding"].ok is False
    assert result["logical-decoding"].detail == "us-east-1: rds.logical_replication is unset in default"
    assert "reboot" in result["logical-decoding"].remediation
