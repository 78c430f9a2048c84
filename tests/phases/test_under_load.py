"""Phases run while players play: a load run spanning stand-up-region and attach-secondary loses no
acknowledged write (every one is found in the database at the end)."""

from __future__ import annotations

from migrate.lab.load.runner import start_load
from tests.cli_helpers import migrate

REGION = "ap-northeast-1"


def test_no_acknowledged_write_is_lost_while_a_region_is_stood_up_and_attached(clean_lab):
    load = start_load(clean_lab, duration_s=600, rate=25, seed=7)
    try:
        migrate("phase", "run", "stand-up-region", "--region", REGION, "--yes", check=0)
        migrate("phase", "run", "attach-secondary", "--region", REGION, "--yes", check=0)
    finally:
        load.stop()
    report = load.wait(timeout=120).to_json()
    ledger = report["ledger"]
    print("load during stand-up + attach:", {k: ledger[k] for k in ("acknowledged", "found", "lost", "unknown")},
          "errors:", report["errors_by_kind"])
    assert ledger["acknowledged"] > 0
    assert ledger["lost"] == 0, ledger["examples"]
    assert ledger["found"] + ledger["unknown"] == ledger["checked"]
    # every geography was served throughout (the source region kept all the weight)
    for geo in ("apac", "na", "eu"):
        assert report["per_geography"][geo]["all"]["ok"] > 0
