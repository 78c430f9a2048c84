"""The reference checker (terraform/tools/refcheck.py): clean on the real code, exact on fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.terraform.conftest import FIXTURES, TERRAFORM, refcheck

Finding = refcheck.Finding


def test_repository_terraform_has_no_findings():
    findings = refcheck.check_tree(TERRAFORM)
    assert findings == [], "refcheck findings:\n" + "\n".join(map(str, findings))


def test_every_module_folder_is_checked():
    folders = {p.relative_to(TERRAFORM).as_posix() for p in refcheck.module_folders(TERRAFORM)}
    assert folders == {"modules/region", "regions/ap-northeast-1", "regions/eu-central-1"}


def test_broken_reference_fixture_is_caught():
    assert refcheck.check_module(FIXTURES / "broken_reference") == [
        Finding("main.tf", 11, "undeclared-reference", 'var.vpc_cdir: no variable "vpc_cdir" in this module'),
    ]


def test_variable_without_description_fixture_is_caught():
    assert refcheck.check_module(FIXTURES / "variable_without_description") == [
        Finding("variables.tf", 1, "variable-without-description", "variable region has no description"),
    ]


def test_fixture_tree_names_files_relative_to_the_tree():
    assert [str(f) for f in refcheck.check_tree(FIXTURES)] == [
        'broken_reference/main.tf:11: undeclared-reference: var.vpc_cdir: no variable "vpc_cdir" in this module',
        "variable_without_description/variables.tf:1: variable-without-description: variable region has no description",
    ]


def test_command_line_exit_codes(capsys):
    assert refcheck.main([str(TERRAFORM)]) == 0
    assert refcheck.main([str(FIXTURES / "broken_reference")]) == 1
    assert 'main.tf:11: undeclared-reference: var.vpc_cdir' in capsys.readouterr().out


# -------------------------------------------------------------------------------------------------
# One behaviour per test, on small modules written to a temp folder
# -------------------------------------------------------------------------------------------------

VARIABLE_A = '''variable "a" {
  type        = string
  description = "a"
}
'''


def _module(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def _codes(findings):
    return [(f.path, f.line, f.code) for f in findings]


@pytest.mark.parametrize("expression, code_line", [
    ("local.missing", "local.missing"),
    ("aws_s3_bucket.missing.arn", "aws_s3_bucket.missing"),
    ("data.aws_region.missing.id", "data.aws_region.missing"),
    ("module.missing.out", "module.missing"),
    ("aws_subnet.missing[0].id", "aws_subnet.missing"),
    ("[for s in aws_subnet.missing : s.id]", "aws_subnet.missing"),
    ('"prefix-${local.missing}-suffix"', "local.missing"),
    ("length(var.missing) > 0 ? 1 : 0", "var.missing"),
])
def test_each_kind_of_dangling_reference_is_reported(tmp_path, expression, code_line):
    folder = _module(tmp_path, {"main.tf": VARIABLE_A + f'''
output "o" {{
  description = "o"
  value       = [var.a, {expression}]
}}
'''})
    findings = refcheck.check_module(folder)
    assert _codes(findings) == [("main.tf", 8, "undeclared-reference")]
    assert findings[0].message.startswith(code_line + ":")


def test_declared_references_and_builtins_are_accepted(tmp_path):
    folder = _module(tmp_path, {
        "variables.tf": VARIABLE_A,
        "main.tf": '''terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

data "aws_region" "here" {}

locals {
  name = "${var.a}-${data.aws_region.here.id}"
}

resource "aws_s3_bucket" "b" {
  count  = 2
  bucket = "${local.name}-${count.index}-${path.module}"

  dynamic "grant" {
    for_each = toset(["x"])
    content {
      id = grant.value
    }
  }

  lifecycle {
    ignore_changes = [tags]
  }
}

output "arns" {
  description = "ARNs"
  value       = { for k, b in aws_s3_bucket.b : k => b.arn if b.bucket != "" }
}
''',
    })
    assert refcheck.check_module(folder) == []


def test_references_inside_heredocs_are_checked(tmp_path):
    folder = _module(tmp_path, {"main.tf": VARIABLE_A + '''
output "o" {
  description = "o"
  value       = <<-EOT
    first ${var.a}
    second ${var.nope}
  EOT
}
'''})
    assert _codes(refcheck.check_module(folder)) == [("main.tf", 10, "undeclared-reference")]


def test_text_that_only_looks_like_a_reference_is_ignored(tmp_path):
    folder = _module(tmp_path, {"main.tf": VARIABLE_A + '''
output "o" {
  description = "Mentions var.nope and aws_vpc.nope in prose only."
  value       = "var.nope ${var.a} $${var.escaped}"
}
'''})
    assert refcheck.check_module(folder) == []


def test_variable_without_type_and_unused_variable(tmp_path):
    folder = _module(tmp_path, {"variables.tf": '''variable "a" {
  description = "no type"
}
''', "main.tf": '''output "o" {
  description = "o"
  value       = var.a
}
''', "unused.tf": VARIABLE_A.replace('"a"', '"b"', 1)})
    assert _codes(refcheck.check_module(folder)) == [
        ("unused.tf", 1, "unused-variable"),
        ("variables.tf", 1, "variable-without-type"),
    ]


def test_output_without_description_and_duplicates(tmp_path):
    folder = _module(tmp_path, {"a.tf": VARIABLE_A + '''
output "o" {
  value = var.a
}
''', "b.tf": VARIABLE_A})
    assert _codes(refcheck.check_module(folder)) == [
        ("a.tf", 6, "output-without-description"),
        ("b.tf", 1, "duplicate-declaration"),
    ]


def test_module_calls_are_checked_against_the_called_module(tmp_path):
    _module(tmp_path, {"child/main.tf": '''terraform {
  required_providers {
    aws = {
      source                = "hashicorp/aws"
      configuration_aliases = [aws.other]
    }
  }
}

variable "needed" {
  type        = string
  description = "required input"
}

variable "optional" {
  type        = string
  description = "optional input"
  default     = "x"
}

output "result" {
  description = "result"
  value       = "${var.needed}${var.optional}"
}
'''})
    folder = _module(tmp_path / "root", {"main.tf": '''provider "aws" {
  alias  = "west"
  region = "us-west-2"
}

module "child" {
  source = "../child"

  providers = {
    aws.other = aws.west
    aws.nope  = aws.east
  }

  optional = "y"
  typo     = "z"
}

output "ok" {
  description = "ok"
  value       = module.child.result
}

output "bad" {
  description = "bad"
  value       = module.child.no_such_output
}
'''})
    assert _codes(refcheck.check_module(folder)) == [
        ("main.tf", 6, "missing-module-argument"),
        ("main.tf", 11, "undeclared-provider"),
        ("main.tf", 11, "unknown-module-provider"),
        ("main.tf", 15, "unknown-module-argument"),
        ("main.tf", 25, "unknown-module-output"),
    ]


def test_resource_provider_alias_must_be_configured(tmp_path):
    folder = _module(tmp_path, {"main.tf": '''terraform {
  required_providers {
    aws = {
      source                = "hashicorp/aws"
      configuration_aliases = [aws.source]
    }
  }
}

resource "aws_s3_bucket" "ok" {
  provider = aws.source
}

resource "aws_s3_bucket" "bad" {
  provider = aws.elsewhere
}
'''})
    assert [str(f) for f in refcheck.check_module(folder)] == [
        "main.tf:15: undeclared-provider: aws.elsewhere: no provider configuration or configuration alias aws.elsewhere",
    ]


def test_parse_errors_are_findings_not_crashes(tmp_path):
    folder = _module(tmp_path, {"main.tf": 'resource "aws_vpc" "x" {\n  cidr_block = \n}\n'})
    assert [f.code for f in refcheck.check_module(folder)] == ["parse-error"]
