"""Histograms, the versioned JSON report and the table renderer."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from migrate.lab.load.report import ALL, SCHEMA, LoadReport, Metrics, error_class, render

SUMMARY_KEYS = {"count", "ok", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "hdr"}


def sample_metrics() -> Metrics:
    m = Metrics()
    for i in range(100):
        m.record("apac", "profile_read", 170.0 + i / 10, region="us-east-1")
        m.record("na", "profile_read", 25.0 + i / 10, region="us-east-1")
    m.record("apac", "score_submit", 180.0, region="us-east-1")
    m.record("apac", "score_submit", 0.5, "connection_refused", region="ap-northeast-1")
    m.record("eu", "login", 5000.0, "timeout", region="us-east-1")
    m.record("na", "profile_write", 30.0, "http_503_database_read_only", region="us-east-1")
    return m


def sample_report(m: Metrics) -> LoadReport:
    return LoadReport(
        command="migrate lab load --duration 5 --rate 20", machine={"cpus": 2}, config={"rate": 20.0, "duration_s": 5},
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:05+00:00", elapsed_s=5.0,
        stopped_early=None, requests={"scheduled": 100, "started": 100, "dropped": 0, "in_flight_at_end": 0,
                                      "finished": m.finished(), "failed": m.failed()},
        achieved_rate=20.0, http_rate=m.finished() / 5, per_geography=m.per_geography(),
        errors_by_kind=dict(m.errors_by_kind), errors_by_class=dict(m.errors_by_class), recovered={"wrong_region": 2},
        routing={g: dict(c) for g, c in m.routed.items()}, read_your_writes={"checked": 3, "stale": 0, "examples": []},
        ledger={"acknowledged": 4, "checked": 3, "found": 2, "lost": 1, "unknown": 0, "unacknowledged": 1,
                "examples": [{"kind": "score", "player_id": 7}]},
        resolver={"record_reads": 1})


def test_cells_per_geography_and_request_type_with_an_all_row():
    per_geo = sample_metrics().per_geography()
    assert list(per_geo) == ["apac", "na", "eu"]
    assert list(per_geo["apac"]) == [ALL, "profile_read", "score_submit"]
    for rows in per_geo.values():
        for summary in rows.values():
            assert set(summary) == SUMMARY_KEYS
    apac = per_geo["apac"]
    assert apac[ALL]["count"] == 102 and apac[ALL]["errors"] == 1 and apac[ALL]["ok"] == 101
    score = apac["score_submit"]
    assert (score["count"], score["errors"]) == (2, 1)
    assert score["p50_ms"] == pytest.approx(180.0, rel=1e-3) and score["max_ms"] == pytest.approx(180.0, rel=1e-3)
    # percentiles are over successes only: the instant refusal does not pull APAC's latency down
    assert apac[ALL]["p50_ms"] > per_geo["na"][ALL]["p95_ms"]
    assert 170.0 <= apac["profile_read"]["p50_ms"] <= apac["profile_read"]["p95_ms"] <= apac["profile_read"]["p99_ms"]
    assert per_geo["eu"]["login"]["p95_ms"] is None and per_geo["eu"]["login"]["errors"] == 1


def test_errors_by_kind_and_class():
    m = sample_metrics()
    assert dict(m.errors_by_kind) == {"connection_refused": 1, "timeout": 1, "http_503_database_read_only": 1}
    assert dict(m.errors_by_class) == {"connection": 1, "timeout": 1, "5xx": 1}
    assert [error_class(k) for k in ("http_409_wrong_region", "dns_failure", "transport_X")] == ["4xx", "dns", "other"]
    assert m.routed["apac"] == {"us-east-1": 101, "ap-northeast-1": 1}


def test_json_report_is_versioned_and_serialisable():
    doc = json.loads(json.dumps(sample_report(sample_metrics()).to_json()))
    assert doc["schema"] == SCHEMA == "migrate.load/v1"
    for key in ("command", "machine", "config", "per_geography", "errors_by_kind", "ledger", "achieved_rate"):
        assert key in doc
    assert set(doc["ledger"]) >= {"acknowledged", "found", "lost", "unknown", "examples"}
    assert set(doc["per_geography"]["apac"]["all"]) >= {"count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms"}


def test_histograms_travel_in_the_report_and_decode():
    from hdrh.histogram import HdrHistogram

    summary = sample_metrics().per_geography()["na"]["profile_read"]
    h = HdrHistogram.decode(summary["hdr"])
    assert h.get_total_count() == 100
    assert abs(h.get_value_at_percentile(95) / 1000 - summary["p95_ms"]) < 0.1


def test_table_shows_every_geography_errors_and_the_ledger_verdict():
    console = Console(record=True, width=140)
    render(sample_report(sample_metrics()), console)
    text = console.export_text()
    for fragment in ("apac", "na", "eu", "profile_read", "p95", "connection_refused", "1 LOST",
                     "routed: apac → us-east-1 101, ap-northeast-1 1", "wrong_region 2"):
        assert fragment in text
