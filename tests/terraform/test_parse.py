"""Every .tf file of the repository parses with python-hcl2 (the checks below build on that)."""

from __future__ import annotations

import shutil
import subprocess

import hcl2
import pytest

from tests.terraform.conftest import FIXTURES, REPO, TERRAFORM

TF_FILES = sorted(p for p in [*TERRAFORM.rglob("*.tf"), *FIXTURES.rglob("*.tf")] if ".terraform" not in p.parts)


def test_there_is_terraform_to_check():
    assert len([p for p in TF_FILES if TERRAFORM in p.parents]) >= 15


@pytest.mark.parametrize("path", TF_FILES, ids=[str(p.relative_to(REPO)) for p in TF_FILES])
def test_tf_file_parses(path):
    with path.open(encoding="utf-8") as handle:
        document = hcl2.load(handle)
    assert document, f"{path.relative_to(REPO)} parsed to nothing"


def test_terraform_fmt_is_clean():
    """Canonical formatting, when a terraform binary happens to be installed (CI may have none;
    `fmt` needs no providers and no network)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH")
    done = subprocess.run([terraform, "fmt", "-check", "-recursive", "-list=true", str(TERRAFORM)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"terraform fmt would rewrite:\n{done.stdout}{done.stderr}"
