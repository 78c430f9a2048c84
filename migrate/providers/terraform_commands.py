"""The Terraform commands that stand a region up on AWS: pure, so plans can show them exactly."""

from __future__ import annotations


def root_dir(region: str) -> str:
    return f"terraform/regions/{region}"


def plan_file(region: str) -> str:
    return f"{region}.tfplan"


def terraform_commands(region: str, dry_run: bool) -> list[list[str]]:
    """init + plan (+ apply of that saved plan unless dry_run), as argv lists."""
    chdir = f"-chdir={root_dir(region)}"
    commands = [["terraform", chdir, "init", "-input=false"],
                ["terraform", chdir, "plan", "-input=false", f"-out={plan_file(region)}"]]
    if not dry_run:
        commands.append(["terraform", chdir, "apply", "-input=false", plan_file(region)])
    return commands


def destroy_command(region: str) -> list[str]:
    return ["terraform", f"-chdir={root_dir(region)}", "destroy", "-input=false", "-auto-approve"]
