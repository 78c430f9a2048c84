"""The schema phases' database access on AWS: credentials from Secrets Manager (a real moto server),
used against a real PostgreSQL that demands a password the way Aurora does, and never shown.

Gap named: moto's RDS gives clusters endpoint names no server answers, so the writer's address is
handed to DatabaseAccess here directly (in production AwsGlobalDatabase.writer_address asks RDS)."""

from __future__ import annotations

import json

import psycopg
import pytest

from migrate.errors import ProviderError, TransientProviderError
from migrate.providers.aws.database_access import DatabaseAccess
from migrate.providers.aws.database_secret import read_database_secret
from tests.conftest import a_pg_server

from .conftest import SOURCE

SECRET_ID = "game/aurora/migrate"
PASSWORD = "s3cret-Correct-Horse"


@pytest.fixture(scope="module")
def password_pg():
    """A PostgreSQL that refuses TCP connections without a password; role `migrator` has one."""
    with a_pg_server("migrate-test-pw-", passwords=True) as cluster:
        local = f"host={cluster.datadir} port={cluster.port} user=postgres dbname=postgres"
        with psycopg.connect(local, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE migrator LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            conn.execute("CREATE DATABASE game OWNER migrator")
        yield cluster


def put_secret(aws, value) -> None:
    aws("secretsmanager").create_secret(Name=SECRET_ID, SecretString=value if isinstance(value, str)
                                        else json.dumps(value))


def access(moto_clients, cluster) -> DatabaseAccess:
    return DatabaseAccess(moto_clients, SOURCE, SECRET_ID, "game", lambda: ("127.0.0.1", cluster.port),
                          sslmode="disable")  # the test server has no TLS; Aurora's endpoints get "require"


def test_the_secret_is_read_and_its_password_never_shown(aws, moto_clients):
    put_secret(aws, {"username": "migrator", "password": PASSWORD, "host": "stale.example", "port": 5432})
    creds = read_database_secret(moto_clients, SOURCE, SECRET_ID)
    assert (creds.username, creds.password) == ("migrator", PASSWORD)
    assert PASSWORD not in repr(creds)


@pytest.mark.parametrize("value,says", [
    ("not json", "is not JSON"), ({"username": "migrator"}, "lacks a username or a password"),
    ({"password": PASSWORD}, "lacks a username or a password"), (["migrator", PASSWORD], "lacks a username")])
def test_a_malformed_secret_is_one_line_naming_the_secret_never_its_value(aws, moto_clients, value, says):
    put_secret(aws, value)
    with pytest.raises(ProviderError) as refused:
        read_database_secret(moto_clients, SOURCE, SECRET_ID)
    assert says in refused.value.one_line() and SECRET_ID in refused.value.one_line()
    assert PASSWORD not in refused.value.one_line() + str(refused.value.hint)


def test_a_missing_secret_is_a_provider_error(aws, moto_clients):
    with pytest.raises(ProviderError, match="ResourceNotFoundException|can't find"):
        read_database_secret(moto_clients, SOURCE, SECRET_ID)


def test_the_schema_store_runs_the_apps_migrations_with_the_secrets_credentials(aws, moto_clients, password_pg):
    put_secret(aws, {"username": "migrator", "password": PASSWORD})
    store = access(moto_clients, password_pg).schema_store()
    assert PASSWORD not in store._writer_dsn()  # the DSN names the writer; the password goes separately
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(store._writer_dsn()).close()  # the server really demands it
    assert store.applied() == set()
    store.upgrade("0001_baseline")  # Alembic in a subprocess: PGPASSWORD in its environment, not its argv
    store.upgrade("expand@head")
    assert store.applied() == {"e008_fence_sequences"}
    assert store.handle_claims_missing() == 0
    store.downgrade("0001_baseline")
    assert store.applied() == {"0001_baseline"}


def test_a_wrong_password_fails_in_one_line_without_showing_it(aws, moto_clients, password_pg):
    put_secret(aws, {"username": "migrator", "password": "wrong-" + PASSWORD})
    store = access(moto_clients, password_pg).schema_store()
    with pytest.raises(ProviderError) as refused:
        store.applied()
    assert not isinstance(refused.value, TransientProviderError)  # refused credentials are not retried
    assert "password authentication failed" in refused.value.one_line()
    assert PASSWORD not in refused.value.one_line()
    with pytest.raises(ProviderError) as refused_upgrade:
        store.upgrade("0001_baseline")
    assert PASSWORD not in refused_upgrade.value.one_line()
