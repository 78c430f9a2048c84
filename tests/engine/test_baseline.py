"""`migrate baseline`: each geography's p95 as players measured it, journaled, and what every later gate
holds the programme to; refused, journaling nothing, when a geography has too few requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.engine import journal, services
from migrate.errors import PreflightFailed, UsageError
from migrate.phasekit.gates import thresholds_for
from migrate.phasekit.model import Providers
from migrate.providers.traffic import GeographyLatency

SPEC = Path(__file__).resolve().parents[2] / "migration.toml"


class PlayersSaw:
    """Traffic metrics that answer the players' latency the test sets (the rest is never asked)."""

    def __init__(self, figures: dict[str, tuple[int, float | None]]) -> None:
        self.figures, self.asked = figures, []

    def players_latency(self, geographies, start, end):
        self.asked.append((geographies, end - start))
        return [GeographyLatency(g, *self.figures[g], "players (test)") for g in geographies]


def session_with(tmp_path, metrics):
    return services.open_session(SPEC, "lab", state_url=f"sqlite:///{tmp_path / 'state.db'}",
                                 providers_factory=lambda: Providers(traffic_metrics=metrics))


def test_a_baseline_is_journaled_and_lowers_every_later_gate_to_it(tmp_path):
    metrics = PlayersSaw({"apac": (600, 213.4), "na": (250, 44.4), "eu": (150, 129.6)})
    session = session_with(tmp_path, metrics)
    try:
        event = services.record_baseline(session, 20)
        assert event.kind == journal.BASELINE and metrics.asked == [(("apac", "na", "eu"), pytest.approx(20))]
        assert event.data["p95_ms"] == {"apac": 213.4, "na": 44.4, "eu": 129.6}
        state = services.current_state(session)
        target = type("T", (), {"spec": session.spec, "journal": state})()
        held = thresholds_for(target)
        slack = session.spec.gates.baseline_slack_ms
        assert held.ceiling("na") == pytest.approx(44.4 + slack)
        assert held.ceiling("apac") == pytest.approx(213.4 + slack)
    finally:
        session.close()


def test_too_few_requests_in_a_geography_refuses_the_baseline_and_journals_nothing(tmp_path):
    session = session_with(tmp_path, PlayersSaw({"apac": (600, 213.4), "na": (3, 44.4), "eu": (0, None)}))
    try:
        with pytest.raises(PreflightFailed) as refused:
            services.record_baseline(session, 20)
        assert "na 3 requests, eu 0 requests" in refused.value.message
        with pytest.raises(UsageError):
            services.record_baseline(session, 0)
        assert services.current_state(session).baseline is None
        assert [e for e in services.history(session, 0) if e.kind == journal.BASELINE] == []
    finally:
        session.close()
