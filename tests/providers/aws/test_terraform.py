"""TerraformInfrastructure against a fake `terraform` executable first on PATH: a small script that records its
argv, working directory and the TF_VAR_* it received, and prints canned output (a plan summary, resource
completions, JSON for `output -json`). It is a test double for an external binary, nothing more."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from migrate.errors import Aborted, ProviderError
from migrate.providers.aws.terraform import TerraformInfrastructure, from_spec
from migrate.providers.protocols import Infrastructure

TOKYO = "ap-northeast-1"
SECRET = "s3cr3t-redis-token"

FAKE = textwrap.dedent('''\
    #!{python}
    import json, os, signal, sys, time
    args = sys.argv[1:]

    def interrupted(*_signal):  # installed before the call is recorded: a test that saw it can interrupt it
        open(os.environ["FAKE_TF_RECORD"], "a").write(json.dumps({{"interrupted": (args + ["", ""])[1]}}) + "\\n")
        print("Interrupt received. Gracefully shutting down...", file=sys.stderr)
        sys.exit(130)
    signal.signal(signal.SIGINT, interrupted)
    with open(os.environ["FAKE_TF_RECORD"], "a") as record:
        record.write(json.dumps({{"argv": args, "cwd": os.getcwd(),
                                 "tf_vars": sorted(k for k in os.environ if k.startswith("TF_VAR_")),
                                 "input": os.environ.get("TF_INPUT")}}) + "\\n")
    if args[:2] == ["version", "-json"]:
        print(json.dumps({{"terraform_version": os.environ.get("FAKE_TF_VERSION", "1.10.5")}}))
        sys.exit(0)
    chdir, command = args[0], args[1]
    assert chdir.startswith("-chdir="), args
    if os.environ.get("FAKE_TF_FAIL") == command:
        print("\\x1b[31m╷\\x1b[0m", file=sys.stderr)
        print("│ Error: creating ElastiCache Replication Group: auth token " + os.environ.get("TF_VAR_redis_auth_token", "")
              + " rejected", file=sys.stderr)
        print("╵", file=sys.stderr)
        sys.exit(1)
    if command == "init":
        print("Initializing the backend...")
        print("Terraform has been successfully initialized!")
    elif command == "plan":
        out = [a for a in args if a.startswith("-out=")][0][len("-out="):]
        open(os.path.join(chdir[len("-chdir="):], out), "w").write("plan with " + os.environ.get("TF_VAR_redis_auth_token", ""))
        print("  # aws_ecs_service.api will be created")
        print("Plan: 2 to add, 0 to change, 0 to destroy.")
    elif command == "apply":
        for _ in range(int(os.environ.get("FAKE_TF_SLOW", "0"))):
            time.sleep(0.1)
        print("module.region.aws_ecs_service.api: Creation complete after 2s [id=x]")
        print("module.region.aws_route53_record.api_weighted: Creation complete after 40s [id=y]")
        print("token in a log line: " + os.environ.get("TF_VAR_redis_auth_token", ""))
        print("Apply complete! Resources: 2 added, 0 changed, 0 destroyed.")
    elif command == "output":
        print(json.dumps({{
            "alb_dns_name": {{"sensitive": False, "type": "string", "value": "game-apne1-api-1.ap-northeast-1.elb.amazonaws.com"}},
            "health_check_id": {{"sensitive": False, "type": "string", "value": "hc-123"}},
            "redis_url": {{"sensitive": True, "type": "string", "value": "rediss://:" + os.environ.get("TF_VAR_redis_auth_token", "") + "@x"}},
        }}))
    elif command == "destroy":
        print("Destroy complete! Resources: 2 destroyed.")
    sys.exit(0)
''')


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "terraform" / "regions" / TOKYO).mkdir(parents=True)
    (root / "terraform" / "regions" / TOKYO / "main.tf").write_text("# root\n")
    return root


@pytest.fixture
def fake_terraform(tmp_path: Path, monkeypatch):
    """A fake terraform first on PATH; returns the list of recorded invocations (read lazily)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "terraform"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_TF_RECORD", str(record))
    monkeypatch.setenv("TF_VAR_redis_auth_token", SECRET)

    def calls() -> list[dict]:
        return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []

    return calls


def test_adapter_satisfies_the_protocol(repo):
    infra: Infrastructure = TerraformInfrastructure(repo)
    assert isinstance(infra, TerraformInfrastructure)


def test_commands_are_the_exact_terraform_commands(repo):
    infra = TerraformInfrastructure(repo)
    chdir = "-chdir=terraform/regions/ap-northeast-1"
    assert infra.commands(TOKYO, dry_run=True) == [
        f"terraform {chdir} init -input=false",
        f"terraform {chdir} plan -input=false -out=ap-northeast-1.tfplan"]
    assert infra.commands(TOKYO, dry_run=False)[2:] == [
        f"terraform {chdir} apply -input=false ap-northeast-1.tfplan",
        f"terraform {chdir} output -json"]


def test_preflight_fails_clearly_without_terraform_on_path(repo, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    checks = TerraformInfrastructure(repo).preflight(TOKYO)
    name, ok, detail = checks[0]
    assert (name, ok) == ("terraform-installed", False)
    assert detail.startswith("terraform not found on PATH: install Terraform >= 1.10")
    with pytest.raises(ProviderError, match="terraform not found on PATH"):
        TerraformInfrastructure(repo).apply(TOKYO, lambda d, t: None, lambda: None)


def test_preflight_reports_version_and_root(repo, fake_terraform, monkeypatch):
    infra = TerraformInfrastructure(repo)
    assert infra.preflight(TOKYO) == [
        ("terraform-installed", True, f"terraform 1.10.5 at {repo.parent / 'bin' / 'terraform'}"),
        ("terraform-root", True, "terraform/regions/ap-northeast-1 present")]
    monkeypatch.setenv("FAKE_TF_VERSION", "1.9.8")
    (_name, ok, detail), (_, root_ok, root_detail) = infra.preflight("eu-central-1")
    assert not ok and "older than 1.10.0" in detail
    assert not root_ok and "terraform/regions/eu-central-1/main.tf" in root_detail


def test_apply_runs_init_plan_apply_then_reads_outputs(repo, fake_terraform):
    lines: list[str] = []
    progress: list[tuple[int, int | None]] = []
    checkpoints = []
    infra = TerraformInfrastructure(repo, on_line=lines.append, poll_interval=0.05)

    outputs = infra.apply(TOKYO, lambda done, total: progress.append((done, total)), lambda: checkpoints.append(1))

    calls = fake_terraform()
    chdir = "-chdir=terraform/regions/ap-northeast-1"
    assert [c["argv"] for c in calls] == [
        [chdir, "init", "-input=false"],
        [chdir, "plan", "-input=false", "-out=ap-northeast-1.tfplan"],
        [chdir, "apply", "-input=false", "ap-northeast-1.tfplan"],
        [chdir, "output", "-json"]]
    assert {c["cwd"] for c in calls} == {str(repo)}
    assert all(c["tf_vars"] == ["TF_VAR_redis_auth_token"] and c["input"] == "0" for c in calls)
    # Outputs without the sensitive one; the saved plan (it holds variable values) is gone.
    assert outputs == {"alb_dns_name": "game-apne1-api-1.ap-northeast-1.elb.amazonaws.com", "health_check_id": "hc-123"}
    assert not (repo / "terraform/regions/ap-northeast-1/ap-northeast-1.tfplan").exists()
    # Progress counts the plan's resources as apply completes them.
    assert (1, 2) in progress and progress[-1] == (2, 2)
    assert len(checkpoints) >= 4  # between commands at least
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in lines
    assert "token in a log line: <redacted>" in lines
    assert not any(SECRET in line for line in lines)


def test_a_failed_command_is_one_provider_error_without_secrets(repo, fake_terraform, monkeypatch):
    monkeypatch.setenv("FAKE_TF_FAIL", "plan")
    with pytest.raises(ProviderError) as caught:
        TerraformInfrastructure(repo, poll_interval=0.05).apply(TOKYO, lambda d, t: None, lambda: None)
    error = caught.value
    assert "plan -input=false" in error.message and "failed (exit 1)" in error.message
    assert "Error: creating ElastiCache Replication Group: auth token <redacted> rejected" in error.message
    assert SECRET not in error.message and SECRET not in json.dumps(error.details)
    assert "\n" not in error.message
    assert [c["argv"][1] for c in fake_terraform()] == ["init", "plan"]  # apply never ran


def test_abort_at_a_checkpoint_interrupts_terraform(repo, fake_terraform, monkeypatch):
    monkeypatch.setenv("FAKE_TF_SLOW", "100")  # apply takes 10 s unless interrupted
    state = {"in_apply": False}

    def checkpoint():
        calls = fake_terraform()
        if calls and calls[-1].get("argv", [None, None])[1] == "apply":
            if state["in_apply"]:
                raise Aborted("operator asked for abort")
            state["in_apply"] = True

    with pytest.raises(Aborted):
        TerraformInfrastructure(repo, poll_interval=0.1, stop_grace_seconds=10).apply(
            TOKYO, lambda d, t: None, checkpoint)
    # the fake writes this only when an interrupt reaches it mid-apply: the abort stopped terraform, it
    # did not wait for it (no wall-clock bound here: this machine is shared and its load varies)
    assert {"interrupted": "apply"} in fake_terraform()


def test_destroy_runs_init_then_destroy(repo, fake_terraform):
    TerraformInfrastructure(repo, poll_interval=0.05).destroy(TOKYO, lambda: None)
    assert [c["argv"][1:] for c in fake_terraform()] == [
        ["init", "-input=false"], ["destroy", "-input=false", "-auto-approve"]]


def test_a_missing_root_is_refused(repo, fake_terraform):
    with pytest.raises(ProviderError, match="no Terraform root for eu-central-1"):
        TerraformInfrastructure(repo).destroy("eu-central-1", lambda: None)


def test_from_spec_passes_the_profile(repo):
    env = type("Env", (), {"kind": "aws", "aws": type("A", (), {"profile": "game-migrate", "endpoint_url": None})()})()
    infra = from_spec(None, env, repo)
    assert infra.repo_root == repo
    assert infra._child_env()["AWS_PROFILE"] == "game-migrate"
