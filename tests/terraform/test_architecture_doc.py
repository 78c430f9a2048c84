"""runbooks/architecture.md stays consistent with the module: every Terraform address it names
exists in terraform/modules/region, and it has the before and after diagrams."""

from __future__ import annotations

import re

from tests.terraform.conftest import MODULE, REPO, refcheck

DOC = REPO / "runbooks" / "architecture.md"


def test_every_resource_address_in_the_doc_exists_in_the_module():
    module = refcheck.load_module(MODULE)
    named = set(re.findall(r"\b(aws_[a-z0-9_]+)\.([a-z0-9_]+)", DOC.read_text(encoding="utf-8")))
    assert named, "the doc names no resources"
    missing = sorted(f"{t}.{n}" for t, n in named if (t, n) not in module.resources and (t, n) not in module.data)
    assert not missing, f"architecture.md names resources the module does not declare: {missing}"


def test_doc_has_before_and_after_mermaid_diagrams():
    text = DOC.read_text(encoding="utf-8")
    assert text.count("```mermaid") >= 2
    assert "## Before" in text and "## After" in text
    for needle in ("-weighted", "-latency", "AuroraGlobalDBReplicationLag", "api.game.example"):
        assert needle in text
