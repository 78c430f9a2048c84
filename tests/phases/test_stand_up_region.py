"""stand-up-region on a real lab: real Redis and app processes, Route 53 and S3 on a real moto
server, health through the real WAN proxy. Lifecycle and a crash at every step boundary and inside
every step, each resumed to the same verified end state."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from migrate.engine import services
from migrate.lab import aws_world
from phases.stand_up_region import StandUpRegion
from tests.cli_helpers import migrate
from tests.phases import harness
from tests.phases.harness import PhaseUnderTest
from tests.conftest import SPEC

REGION = "ap-northeast-1"
HOME = {"ap-northeast-1": "apac", "eu-central-1": "eu"}  # the geography each region's pool serves
STEP_IDS = [s.id for s in StandUpRegion().steps(None)]


def open_session():
    return services.open_session(Path(os.environ.get("MIGRATE_SPEC", SPEC)), "lab")


def weighted_records(lab) -> dict[str, dict]:
    clients = aws_world.lab_aws_clients(lab)
    records = aws_world.api_records(clients, aws_world.zone_id(lab))
    return {r["SetIdentifier"]: r for r in records if "Weight" in r}


def assert_stood_up(lab, region=REGION):
    """Read from the processes and moto, not from the journal."""
    # the API answers through the players' link from its own geography (APAC for Tokyo)
    response = httpx.get(f"{lab.player_url('apac', region)}/health", timeout=10)
    assert response.status_code == 200 and response.json()["region"] == region
    records = weighted_records(lab)
    geo = HOME[region]
    assert records[f"{region}-{geo}-weighted"]["Weight"] == 0  # in its own geography's pool only
    assert records[f"{region}-{geo}-weighted"].get("HealthCheckId")
    assert not [i for i in records if i.startswith(region) and not i.startswith(f"{region}-{geo}-")]
    assert records[f"us-east-1-{geo}-weighted"]["Weight"] == 100  # the source keeps every player
    s3 = aws_world.lab_aws_clients(lab).s3
    rules = s3.get_bucket_replication(Bucket="game-assets-us-east-1")["ReplicationConfiguration"]["Rules"]
    assert any(r["Destination"]["Bucket"].endswith(f"game-assets-{region}") for r in rules)
    session = open_session()
    try:
        row = next(r for r in services.status(session, with_replication=False).phases
                   if r["phase"] == "stand-up-region" and r["region"] == region)
        assert row["status"] == "succeeded"
    finally:
        session.close()


def assert_nothing_left(lab, region=REGION):
    assert not [i for i in weighted_records(lab) if i.startswith(region)]
    assert all(weighted_records(lab)[f"us-east-1-{g}-weighted"]["Weight"] == 100 for g in ("apac", "eu", "na"))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{lab.app_url(region)}/health", timeout=2)
    s3 = aws_world.lab_aws_clients(lab).s3
    assert f"game-assets-{region}" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert aws_world.find_health_check(aws_world.lab_aws_clients(lab), region) is None
    assert not (lab.lab_dir / "regions" / region).exists()


# Before and after only the first and the last step: every other step's inside point stands after its
# action (applied, not journaled), the state "after" would repeat.
STAND_UP = PhaseUnderTest("stand-up-region", REGION, tuple(STEP_IDS), assert_stood_up, assert_nothing_left,
                          undo_inside=("geography-routing",),  # the lab's infra destroy has no checkpoint
                          boundaries=(STEP_IDS[0], "dns-weight-0"))


def test_stand_up_verify_rollback_stand_up_verify(clean_lab):
    harness.lifecycle(STAND_UP, clean_lab)


def test_the_region_reads_from_its_local_replica_once_attached(clean_lab):
    migrate("phase", "run", "stand-up-region", "--region", REGION, "--yes", check=0)
    before = httpx.get(f"{clean_lab.app_url(REGION)}/health", timeout=10).json()
    assert before["role"] == "writer"  # reading through the WAN from us-east-1's writer
    migrate("phase", "run", "attach-secondary", "--region", REGION, "--yes", check=0)
    after = httpx.get(f"{clean_lab.app_url(REGION)}/health", timeout=10).json()
    assert after["role"] == "replica"
    migrate("phase", "rollback", "attach-secondary", "--region", REGION, check=0)
    back = httpx.get(f"{clean_lab.app_url(REGION)}/health", timeout=10).json()
    assert back["role"] == "writer"


def test_a_crash_at_every_point_resumes_to_the_same_verified_end(clean_lab):
    harness.crash_at_every_point_in_turn(STAND_UP, clean_lab)


def test_a_crash_at_every_undo_point_rolls_back_again_to_nothing(clean_lab):
    harness.crash_at_every_undo_point_in_turn(STAND_UP, clean_lab)
