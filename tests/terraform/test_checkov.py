"""checkov over terraform/: no failed check, and every skip carries its reason inline.

checkov runs once per session (fixture `checkov_report` in conftest.py) from its own virtualenv.
"""

from __future__ import annotations

import re

from tests.terraform.conftest import TERRAFORM


def _line(check: dict) -> str:
    start, end = check.get("file_line_range", [0, 0])
    return f"{check['check_id']} {check['resource']} ({check['file_path']}:{start}-{end}): {check.get('check_name', '')}"


def test_checkov_reports_no_failed_check(checkov_report):
    failed = checkov_report["results"].get("failed_checks", [])
    assert checkov_report["summary"]["failed"] == 0 and not failed, (
        f"{len(failed)} failed checkov check(s):\n" + "\n".join(map(_line, failed)))


def test_checkov_parsed_everything(checkov_report):
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 100, "checkov saw too few resources: did it scan the module?"
    assert summary["passed"] > 0


def test_every_skip_is_justified_inline(checkov_report):
    skipped = checkov_report["results"].get("skipped_checks", [])
    unjustified = [_line(c) for c in skipped
                   if len((c.get("check_result") or {}).get("suppress_comment", "").strip()) < 20]
    assert not unjustified, "checkov skips without a real reason:\n" + "\n".join(unjustified)


def test_skips_are_written_next_to_their_resource_only():
    """No blanket skips: nothing on the command line or in a config file, only
    `#checkov:skip=CKV_...:reason` inside the resource it concerns."""
    assert not list(TERRAFORM.rglob(".checkov.y*ml"))
    pattern = re.compile(r"#\s*checkov:skip=(\S+?):(.*)$")
    for path in TERRAFORM.rglob("*.tf"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "checkov:skip" in line:
                match = pattern.search(line)
                assert match, f"{path}:{number}: malformed checkov skip"
                check_id, reason = match.groups()
                assert re.fullmatch(r"CKV2?_AWS_\d+", check_id), f"{path}:{number}: skip of {check_id}"
                assert len(reason.strip()) >= 20, f"{path}:{number}: skip of {check_id} has no real reason"
