"""The aws environment, rehearsed against a moto server: plans show the exact terraform commands,
and a dry run without terraform on PATH fails its preflight saying so."""

from __future__ import annotations

import os
import shutil

import pytest
from moto.server import ThreadedMotoServer

from tests.cli_helpers import envelope, migrate
from tests.conftest import SPEC


@pytest.fixture(scope="module")
def aws_spec(tmp_path_factory):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    text = SPEC.read_text()
    text = text.replace('# endpoint_url = "http://127.0.0.1:5000"', f'endpoint_url = "http://{host}:{port}"', 1)
    text = text.replace('account_id = "000000000000"', 'account_id = "123456789012"', 1)
    assert f"{host}:{port}" in text
    path = tmp_path_factory.mktemp("aws") / "migration.toml"
    path.write_text(text)
    yield path
    server.stop()


@pytest.fixture
def aws_env(tmp_path):
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "MIGRATE_STATE": str(tmp_path / "aws-state.db")}
    for key in ("AWS_PROFILE",):
        os.environ.pop(key, None)
    return env


def test_the_aws_plan_of_stand_up_region_shows_the_terraform_commands(aws_spec, aws_env):
    proc = migrate("--env", "aws", "plan", "--phase", "stand-up-region", "--region", "ap-northeast-1",
                   spec=aws_spec, env=aws_env)
    assert proc.returncode == 2, proc.stderr
    root = "-chdir=terraform/regions/ap-northeast-1"
    assert f"terraform {root} init -input=false" in proc.stdout
    assert f"terraform {root} plan -input=false -out=ap-northeast-1.tfplan" in proc.stdout
    assert f"terraform {root} apply -input=false ap-northeast-1.tfplan" in proc.stdout
    assert "terraform -chdir=terraform/regions/ap-northeast-1 destroy" in proc.stdout  # the rollback


def test_a_dry_run_without_terraform_on_path_fails_preflight_naming_it(aws_spec, aws_env, tmp_path):
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    env = {**aws_env, "PATH": str(bare_path)}
    assert shutil.which("terraform", path=str(bare_path)) is None
    proc = migrate("--env", "aws", "--output", "json", "phase", "run", "stand-up-region", "--region",
                   "ap-northeast-1", "--dry-run", spec=aws_spec, env=env)
    assert proc.returncode == 1
    doc = envelope(proc)
    foundation = next(c for c in doc["data"]["preflight"] if c["check"] == "foundation-ready")
    assert foundation["ok"] is False and "terraform not found on PATH" in foundation["detail"]
    assert doc["data"]["rehearsal"] == {}  # nothing was run


def test_a_shadow_traffic_dry_run_has_an_adapter_on_aws(aws_spec, aws_env):
    proc = migrate("--env", "aws", "--output", "json", "phase", "run", "shadow-traffic", "--region",
                   "ap-northeast-1", "--dry-run", spec=aws_spec, env=aws_env)
    assert "no adapter" not in proc.stdout + proc.stderr
    checks = {c["check"]: c for c in envelope(proc)["data"]["preflight"]}
    assert checks["shadow-adapter"]["ok"] is True
    # Nothing mirrors yet (no switch parameter in SSM): the source is free; the regions are not stood up.
    assert checks["source-can-mirror"]["ok"] is True and "mirror is free" in checks["source-can-mirror"]["detail"]
    assert checks["region-api-healthy"]["ok"] is False
    assert "ssm:PutParameter us-east-1's shadow switch" in proc.stdout  # the plan says what the step does


def test_an_expand_schema_dry_run_on_aws_reads_the_secret_and_names_what_is_missing(aws_spec, aws_env):
    """The secret is read from Secrets Manager (moto); the writer is asked of RDS, where moto holds no
    cluster here: the preflight fails in one line naming it, and no password is printed."""
    import boto3

    from tests.cli_helpers import migrate as run

    endpoint = next(line.split('"')[1] for line in aws_spec.read_text().splitlines()
                    if line.startswith("endpoint_url"))
    boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint,
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_secret(
        Name="game/aurora/migrate", SecretString='{"username": "migrator", "password": "never-shown-42"}')
    proc = run("--env", "aws", "--output", "json", "phase", "run", "expand-schema", "--dry-run",
               spec=aws_spec, env=aws_env)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "never-shown-42" not in said
    lint = next(c for c in envelope(proc)["data"]["preflight"] if c["check"] == "squawk-lint")
    assert lint["ok"] is not True and "game-us-east-1" in lint["detail"], lint


def test_without_a_database_secret_the_schema_phases_refuse_in_one_line(aws_spec, aws_env, tmp_path):
    spec = tmp_path / "no-secret.toml"
    spec.write_text(aws_spec.read_text().replace('database_secret_id = "game/aurora/migrate"', "", 1))
    proc = migrate("--env", "aws", "phase", "run", "contract-schema", "--dry-run", spec=spec, env=aws_env)
    assert proc.returncode != 0
    assert "names no database credentials" in proc.stdout + proc.stderr
