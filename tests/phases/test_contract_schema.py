"""contract-schema on a real lab: refused until expand-schema and its backfill are recorded, refused
while a region's app is v1 (naming the region), then the contract revisions applied to the lab
writer; rollback refused past the point of no return, naming the runbook; a crash at every point
through the shared harness. With Tokyo cut over: refused until the cutover has soaked, then every
writer changed (Tokyo's home writer first) and Tokyo's writer rid of the other homes' stale rows, its
reverse stream carrying on. After each test the writer is restored out of band, the way the
runbook's last resort does it (Alembic downgrade), and the apps go back to v1."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest

from app import db as app_db
from migrate.engine import services
from migrate.lab import world
from migrate.providers.lab.runtime import LabRegionRuntime
from migrate.providers.schema_source import branch_revisions
from tests.cli_helpers import envelope, migrate
from tests.phases import harness
from tests.phases.harness import PhaseUnderTest

PHASE = "contract-schema"
REVISIONS = tuple(r.id for r in branch_revisions("contract"))
STEP_IDS = (*REVISIONS, "prune-foreign-rows", "watch-players")
CONTRACT_HEAD = REVISIONS[-1]
EXPAND_HEAD = branch_revisions("expand")[-1].id
# contract depends on the expand revision it undoes (e007), not on the later ones: both heads stay recorded
CONTRACTED_VERSIONS = {CONTRACT_HEAD, EXPAND_HEAD}
SOURCE = "us-east-1"
REGION = "ap-northeast-1"


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
    assert _versions(lab) == CONTRACTED_VERSIONS
    assert _triggers(lab) == {"players_write_fence"}


def assert_expanded_only(lab) -> None:
    assert _versions(lab) == {EXPAND_HEAD}
    assert "players_handle_claims_sync" in _triggers(lab)


CONTRACT = PhaseUnderTest(PHASE, None, STEP_IDS, assert_contracted, assert_expanded_only,
                          inside_at={step: "@2" for step in REVISIONS})  # @2: applied, not journaled


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


@pytest.fixture
def tokyo_cut_over(contract_lab):
    """Expanded, Tokyo's cache up and Tokyo cut over; afterwards the cutover rolled back (before the
    contract_lab fixture restores the origin's schema)."""
    expand_in_process()
    LabRegionRuntime(contract_lab).ensure_cache(REGION)
    with harness.session() as session:
        assert services.run_phase(session, "cutover", REGION).status == "succeeded"
    yield contract_lab
    with harness.session() as session:
        assert services.rollback_phase(session, "cutover", REGION).status == "rolled-back"


def _on(dsn: str, sql: str, *args):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def test_after_a_cutover_contract_changes_every_writer_and_prunes_the_home_writer_once_soaked(tokyo_cut_over):
    lab = tokyo_cut_over
    home, origin = lab.home_pg(REGION).dsn(), lab.primary().dsn()
    world.deploy_app_generation(lab, SOURCE, 2)
    refused = migrate("phase", "run", PHASE, "--yes")
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "cutovers-soaked" in said and f"{REGION} cut over" in said, said
    assert _on(home, "SELECT version_num FROM alembic_version") == [(EXPAND_HEAD,)]  # nothing applied

    with harness.session() as session:
        deadline = time.monotonic() + 120
        while not all(c.ok for c in services.preflight_only(session, PHASE, None)):
            assert time.monotonic() < deadline, "the cutover never soaked"
            time.sleep(1)
        done = services.run_phase(session, PHASE, None)
    assert done.status == "succeeded" and all(c.ok for c in done.verify), done.to_json()
    # the home writer first: what contract drops leaves the reverse stream's publisher before its subscriber
    assert [w["writer"] for w in done.outputs[CONTRACT_HEAD]["applied_on"]] == [
        f"{REGION}'s home writer", "the origin"]
    for dsn in (home, origin):
        assert {v for (v,) in _on(dsn, "SELECT version_num FROM alembic_version")} == CONTRACTED_VERSIONS
    assert_contracted(lab)
    pruned = done.outputs["prune-foreign-rows"]["pruned"][REGION]
    assert pruned["finished"] and pruned["deleted"] > 0
    assert _on(home, "SELECT count(*) FROM players WHERE home_region <> %s", REGION) == [(0,)]
    own = "SELECT count(*) FROM players WHERE home_region = %s"
    assert _on(home, own, REGION) == _on(origin, own, REGION)  # its own rows all kept; the origin keeps all
    # the reverse stream carries on: a write Tokyo's writer takes reaches the origin
    pid = _on(home, "SELECT min(id) FROM players WHERE home_region = %s", REGION)[0][0]
    _on(home, "UPDATE players SET coins = 424242, updated_at = now() WHERE id = %s RETURNING id", pid)
    deadline = time.monotonic() + 60
    while _on(origin, "SELECT coins FROM players WHERE id = %s", pid) != [(424242,)]:
        assert time.monotonic() < deadline, "the reverse stream stopped after the contract"
        time.sleep(0.2)
