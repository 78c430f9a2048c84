"""Shared fixtures. Real PostgreSQL servers are started from the machine's PostgreSQL 15 binaries in
throwaway folders (as the postgres user when we are root); nothing reuses the machine's own server."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from migrate.lab.pg import PgCluster, free_port

# Each pytest-xdist worker runs its own labs (clusters, Redis, apps, moto, WAN proxy, journals) in its
# own temp folders; its own port range keeps them from ever meeting, in this process and in every
# `migrate` subprocess a test starts (they inherit the variable).
# Longest modules first: `make test` hands whole modules to its workers (--dist loadfile) in collection
# order (--no-loadscope-reorder: xdist would otherwise order them by how many tests each holds, which sends
# the phase modules, a few long lab tests each, to the end, where one runs alone while the others idle).
LONGEST_FIRST = ("tests/phases/", "tests/app/", "tests/lab/")


def pytest_collection_modifyitems(config, items) -> None:
    """Stable, by directory: a module's tests stay together (its module-scoped fixtures are made once)."""
    def rank(item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONGEST_FIRST))
    items.sort(key=rank)


WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
PORTS_PER_WORKER = 1500
os.environ["MIGRATE_PORT_RANGE"] = f"{20000 + WORKER * PORTS_PER_WORKER}-{20000 + (WORKER + 1) * PORTS_PER_WORKER}"
# A test that names no journal or lab of its own still never shares the checkout's (or another
# worker's): the defaults point into this worker's own folder.
_WORKER_HOME = Path(tempfile.mkdtemp(prefix=f"migrate-test-gw{WORKER}-"))
os.environ["MIGRATE_STATE"] = str(_WORKER_HOME / "state.db")
os.environ["MIGRATE_LAB_DIR"] = str(_WORKER_HOME / "no-lab")


def reachable_tmpdir(prefix: str) -> Path:
    """A temp folder the postgres user can traverse (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def a_pg_server(prefix: str = "migrate-test-pg-", *, passwords: bool = False):
    """A real PostgreSQL server in a throwaway folder (TCP logins need a password when `passwords`);
    stopped and removed at the end."""
    root = reachable_tmpdir(prefix)
    cluster = PgCluster(root / "pg", free_port())
    cluster.init()
    if passwords:
        cluster.require_passwords()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server for the whole test session."""
    with a_pg_server() as cluster:
        yield cluster


@pytest.fixture
def pg_database(pg_server):
    """A fresh, empty database on the session's server; its libpq URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn(name)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "migration.toml"
LAB_PLAYERS = 3000


@contextlib.contextmanager
def a_lab():
    """A real lab (us-east-1 PostgreSQL seeded with a few thousand players, Redis, the app, moto, the
    WAN proxy) in its own folder; its topology. Removed, every process with it, at the end."""
    from migrate.lab.topology import LabTopology
    from migrate.lab.world import lab_down, lab_up
    from migrate.providers.factory import route_lab_api

    root = reachable_tmpdir("migrate-test-lab-")
    lab_dir = root / "lab"
    try:
        lab_up(lab_dir, LAB_PLAYERS, route_api=route_lab_api)
        yield LabTopology.load(lab_dir)
    finally:
        lab_down(lab_dir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def lab():
    """The worker's lab for the whole session. Tests that attach secondaries leave it as they found it."""
    with a_lab() as topology:
        yield topology


def small_spec(topology) -> Path:
    """migration.toml with verify chunks small enough that the test lab's few thousand players span
    several chunks (so a crash between chunks and the chunk-by-chunk resume are exercised), written
    beside the lab."""
    text = SPEC.read_text()
    small = text.replace("verify_chunk_rows = 50000", "verify_chunk_rows = 1000", 1)
    assert small != text, "migration.toml no longer has the lab's verify_chunk_rows line"
    path = topology.lab_dir.parent / "migration.toml"
    path.write_text(small)
    return path


def reset_targets(topology) -> None:
    """Remove everything the phases may have made in the target regions (real adapter calls)."""
    from migrate.lab.topology import GEOGRAPHIES, REGIONS, SOURCE_REGION
    from migrate.providers.aws.runtime import stand_up_providers
    from migrate.providers.lab.global_database import LabGlobalDatabase
    from migrate.providers.lab.runtime import LabInfrastructure, LabRegionRuntime
    from migrate.providers.protocols import ApiEndpoint
    from migrate.spec import load_spec

    spec = load_spec(SPEC)
    aws_side = stand_up_providers(spec, spec.environment("lab"), REPO, topology=topology)
    gdb, runtime = LabGlobalDatabase(topology), LabRegionRuntime(topology)
    # shift-traffic: every geography pool's latency records out, us-east-1's weighted record (back) at 100;
    # targets' records go below
    source_api = ApiEndpoint(SOURCE_REGION, "127.0.0.1", topology.app_ports[SOURCE_REGION],
                             topology.app_url(SOURCE_REGION))
    dns = aws_side["dns"]
    for geography in GEOGRAPHIES:
        dns.pool(geography).use_weighted_routing({SOURCE_REGION: 100}, {SOURCE_REGION: source_api})
    for region in REGIONS:
        if region == SOURCE_REGION:
            continue
        gdb.route_reads_to_writer(region)
        gdb.delete_secondary(region)
        gdb.release_replication(region)
        for geography in GEOGRAPHIES:
            dns.pool(geography).delete_weighted(region)
        dns.delete_health_check(region)
        runtime.remove_api(region)
        aws_side["object_store"].remove_replication(SOURCE_REGION, region)
        aws_side["object_store"].delete_bucket(region)
        runtime.remove_cache(region)
        LabInfrastructure(topology).destroy(region, lambda: None)


def point_at(mp: pytest.MonkeyPatch, lab, state: Path, spec: Path) -> None:
    """Point the engine and every `migrate` the test starts at this lab, this journal and this spec."""
    mp.setenv("MIGRATE_LAB_DIR", str(lab.lab_dir))
    mp.setenv("MIGRATE_STATE", str(state))
    mp.setenv("MIGRATE_SPEC", str(spec))


@pytest.fixture(scope="session")
def lab_spec(lab):
    """The small-chunk spec beside the session lab (small_spec)."""
    return small_spec(lab)


@pytest.fixture
def clean_lab(lab, lab_spec, tmp_path, monkeypatch):
    """The session lab with no secondary attached, a fresh journal, and env vars pointing at them."""
    reset_targets(lab)
    state = tmp_path / "state.db"
    point_at(monkeypatch, lab, state, lab_spec)
    yield lab
    reset_targets(lab)
