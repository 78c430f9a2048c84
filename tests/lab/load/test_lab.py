"""End to end through the real lab (session `lab` fixture: PostgreSQL, Redis, the app, moto, the WAN
proxy): players resolve the API name from moto, cross their geography's WAN links, and every
acknowledged write is found at the end. No timing thresholds: only comparisons within one run."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hdrh.log import HistogramLogReader

from migrate.lab.load import SCHEMA, run_load
from migrate.lab.player_logs import new_histogram

pytestmark = [pytest.mark.lab, pytest.mark.latency_gated]  # apac vs na latency ratios


def test_a_short_run_loses_nothing_and_apac_pays_for_the_pacific(lab):
    report = run_load(lab, 5, 20, seed=11)
    doc = json.loads(json.dumps(report.to_json()))
    ledger = doc["ledger"]

    assert doc["schema"] == SCHEMA
    assert ledger["acknowledged"] > 0 and ledger["found"] > 0
    assert ledger["lost"] == 0, ledger["examples"]
    assert ledger["by_kind"]["profile"]["found"] > 0 and ledger["by_kind"]["score"]["found"] > 0
    assert doc["requests"]["failed"] == 0, doc["errors_by_kind"]
    assert doc["read_your_writes"]["stale"] == 0, doc["read_your_writes"]["examples"]

    # The "before" world: one weighted record, everyone is served by us-east-1 ...
    assert {g: set(regions) for g, regions in doc["routing"].items()} == {
        "apac": {"us-east-1"}, "na": {"us-east-1"}, "eu": {"us-east-1"}}
    # ... so APAC players pay the ≈170 ms round trip and NA players ≈25 ms (same run, same machine).
    per_geo = doc["per_geography"]
    apac, na, eu = (per_geo[g]["all"] for g in ("apac", "na", "eu"))
    assert apac["count"] > na["count"] > 0 and eu["count"] > 0  # the 60/25/15 mix
    assert apac["p95_ms"] > na["p95_ms"]
    assert apac["p50_ms"] > 2 * na["p50_ms"]
    assert apac["p50_ms"] > eu["p50_ms"] > na["p50_ms"]  # EU → us-east-1 is 110 ms: between the two

    # The run left its players' latency in standard HdrHistogram interval logs for the lab's gates: per
    # geography, every successful request is in them, every failed one in the errors log (none here)
    for geography, cells in per_geo.items():
        path = Path(doc["config"]["interval_logs"].replace("<geography>", geography))
        reader, total, intervals = HistogramLogReader(str(path), new_histogram()), new_histogram(), 0
        while reader.add_next_interval_histogram(total) is not None:
            intervals += 1
        reader.close()
        assert intervals >= 1 and total.get_total_count() == cells["all"]["ok"]
        assert not path.with_name(path.name.replace(".hlog", "-errors.hlog")).exists()


def _start_cli(lab, lab_spec, out: Path, duration: int) -> tuple[subprocess.Popen, "queue.Queue[str]"]:
    env = {**os.environ, "MIGRATE_LAB_DIR": str(lab.lab_dir), "MIGRATE_SPEC": str(lab_spec)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrate", "lab", "load", "--duration", str(duration), "--rate", "10",
         "--out", str(out), "--seed", "3"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def test_the_cli_runs_without_a_tty_and_sigterm_still_checks_the_ledger_and_writes_the_report(lab, lab_spec, tmp_path):
    out = tmp_path / "load.json"
    proc, lines = _start_cli(lab, lab_spec, out, duration=300)
    seen = []
    try:
        while True:  # wait until the load is running (the CLI says so on stderr)
            line = lines.get(timeout=60)
            seen.append(line)
            assert line, f"the CLI ended before the load started: {''.join(seen)}"
            if line.startswith("load started"):
                break
        threading.Event().wait(2)  # let some requests happen
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(seen) + stdout
    doc = json.loads(out.read_text())
    assert doc["schema"] == SCHEMA
    assert doc["stopped_early"] == "SIGTERM"
    assert doc["elapsed_s"] < doc["config"]["duration_s"]
    assert doc["ledger"]["lost"] == 0
    assert doc["requests"]["finished"] > 0
    assert doc["command"].startswith("migrate lab load --duration 300")
    assert "apac" in stdout and "ledger:" in stdout  # the table went to stdout


def test_the_cli_json_envelope_carries_the_report(lab, lab_spec, tmp_path):
    out = tmp_path / "load.json"
    env = {**os.environ, "MIGRATE_LAB_DIR": str(lab.lab_dir), "MIGRATE_SPEC": str(lab_spec)}
    done = subprocess.run([sys.executable, "-m", "migrate", "--output", "json", "lab", "load", "--duration", "2",
                           "--rate", "10", "--out", str(out)], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    envelope = json.loads(done.stdout)
    assert envelope["ok"] is True and envelope["command"] == "lab load"
    assert envelope["data"]["schema"] == SCHEMA
    assert json.loads(out.read_text())["config"]["run_id"] == envelope["data"]["config"]["run_id"]
