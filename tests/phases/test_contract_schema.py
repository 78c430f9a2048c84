"""contract-schema on a real lab: refused until expand-schema and its backfill are recorded, refused
while a region's app is v1 (naming the region), then the contract revisions applied to the lab
writer; rollback refused past the point of no return, naming the runbook; a crash at every point
through the shared harness. After each test the writer is restored out of band, the way the
runbook's last resort does it (Alembic downgrade), and the apps go back to v1."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from app import db as app_db
from migrate.engine import services
from migrate.lab import world
from migrate.providers.schema_source import branch_revisions
from tests.cli_helpers import envelope, migrate
from tests.phases import harness
from tests.phases.harness import PhaseUnderTest

PHASE = "contract-schema"
STEP_IDS = tuple(r.id for r in branch_revisions("contract"))
CONTRACT_HEAD = STEP_IDS[-1]
EXPAND_HEAD = branch_revisions("expand")[-1].id
SOURCE = "us-east-1"


def _writer(lab) -> psycopg.Connection:
    return psycopg.connect(lab.primary().dsn(), autocommit=True)


def _versions(lab) -> set[str]:
    with _writer(lab) as conn:
        return {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}


def _triggers(lab) -> set[str]:
    with _writer(lab) as conn:
        return {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'players'::regclass "
                                           "AND NOT tgisinternal")}


def assert_contracted(lab) -> None:
    """From the writer's catalogue: contract@head recorded, the sync trigger gone, the fence kept."""
    assert _versions(lab) == {CONTRACT_HEAD}
    assert _triggers(lab) == {"players_write_fence"}


def assert_expanded_only(lab) -> None:
    assert _versions(lab) == {EXPAND_HEAD}
    assert "players_handle_claims_sync" in _triggers(lab)


CONTRACT = PhaseUnderTest(PHASE, None, STEP_IDS, assert_contracted, assert_expanded_only,
                          inside_at={step: "@2" for step in STEP_IDS})  # @2: applied, not journaled


@pytest.fixture
def contract_lab(clean_lab):
    """The worker's lab at the baseline schema with v1 apps before and after: the restore is Alembic's
    own downgrade, out of band (the tool refuses to roll contract back)."""
    assert _versions(clean_lab) == {"0001_baseline"}
    yield clean_lab
    world.deploy_app_generation(clean_lab, SOURCE, 1)
    with _writer(clean_lab) as conn:  # players signed up here (ids from a home block) go with the test
        conn.execute("DELETE FROM players WHERE id >= %s", (1 << 40,))
    app_db.downgrade(clean_lab.primary().dsn(), "0001_baseline")
    assert _versions(clean_lab) == {"0001_baseline"}


def expand_in_process() -> None:
    with harness.session() as session:
        assert services.run_phase(session, "expand-schema", None).status in ("succeeded", "already-done")


def test_contract_is_refused_until_expand_and_its_backfill_are_recorded(contract_lab):
    world.deploy_app_generation(contract_lab, SOURCE, 2)
    refused = migrate("phase", "run", PHASE, "--yes")
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "expand-recorded" in said and "expand-schema is not-started" in said, said
    assert _versions(contract_lab) == {"0001_baseline"}  # nothing applied
    assert "step_started" not in [kind for kind, _ in harness.journal_kinds()]


def test_contract_refused_on_v1_then_applied_on_v2_and_never_rolled_back(contract_lab):
    expand_in_process()
    refused = migrate("phase", "run", PHASE, "--yes")
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"{SOURCE} runs app v1, which breaks at {CONTRACT_HEAD}" in said, said
    assert_expanded_only(contract_lab)

    world.deploy_app_generation(contract_lab, SOURCE, 2)
    apps = envelope(migrate("--output", "json", "status"))["data"]["apps"]
    assert {a["region"]: a.get("generation") for a in apps}[SOURCE] == 2
    with harness.session() as session:
        done = services.run_phase(session, PHASE, None)
        assert done.status == "succeeded" and all(c.ok for c in done.verify), done.to_json()
    assert_contracted(contract_lab)

    back = migrate("phase", "rollback", PHASE, "--yes")
    assert back.returncode != 0
    assert "point of no return" in back.stderr and "runbooks/contract-schema.md" in back.stderr, back.stderr
    assert_contracted(contract_lab)
    with harness.session() as session:
        assert services.run_phase(session, PHASE, None).status == "already-done"
    # nor through expand's rollback: downgrading e007 would take c001 (which depends on it) with it
    expand_back = migrate("phase", "rollback", "expand-schema", "--yes")
    assert expand_back.returncode != 0 and f"{CONTRACT_HEAD} (another branch) is applied" in expand_back.stderr, \
        expand_back.stderr
    assert_contracted(contract_lab)

    # the v2 app signs players up through the authority alone, over real HTTP
    created = httpx.post(f"{contract_lab.app_url(SOURCE)}/v1/players", json={"handle": "first_after_contract"},
                         timeout=10)
    assert created.status_code == 201, created.text
    with _writer(contract_lab) as conn:
        holder = conn.execute("SELECT player_id FROM handle_claims WHERE handle = 'first_after_contract'").fetchone()
    assert holder == (created.json()["id"],)


def test_a_crash_at_every_point_resumes_to_the_same_verified_end(contract_lab):
    expand_in_process()
    world.deploy_app_generation(contract_lab, SOURCE, 2)
    harness.crash_at_every_point_in_turn(CONTRACT, contract_lab)
