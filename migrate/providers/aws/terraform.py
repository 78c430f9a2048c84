"""The Infrastructure Protocol on AWS: the region's Terraform root, run as subprocesses.

apply = `terraform -chdir=terraform/regions/<region>` init, plan -out, apply of that saved plan, then
`output -json`; destroy = init, destroy. The commands are exactly those of terraform_commands.py (what
`migrate plan` shows), run from the repository root.

- Variables: the child gets this process's environment unchanged (TF_VAR_* exactly as the operator
  exported them; the adapter invents none) plus the constructor's `extra_env` (e.g. AWS_PROFILE of the
  spec) and TF_IN_AUTOMATION / TF_INPUT=0, so terraform never waits for a prompt.
- Secrets: every line logged, streamed or put into an error has the values of TF_VAR_* and AWS secret
  variables redacted; sensitive outputs are dropped; the saved plan (which holds variable values) is
  deleted after apply.
- Long commands stream their lines to the log and to `on_line`, and call `checkpoint()` at least every
  `poll_interval` seconds; when a checkpoint raises (pause/abort) or the operator interrupts, terraform
  gets SIGINT (it stops at a safe point and releases its state lock), then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from migrate.errors import ProviderError
from migrate.providers.aws.clients import scrub
from migrate.providers.protocols import CheckpointFn, ProgressFn
from migrate.providers.terraform_commands import (
    destroy_command,
    plan_file,
    root_dir,
    terraform_commands,
)

log = logging.getLogger(__name__)

MIN_VERSION = (1, 10, 0)  # S3 backend native locking (use_lockfile)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BOX = re.compile(r"^[\s│╷╵]+")
_PLAN = re.compile(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy")
_DONE = re.compile(r": (?:Creation|Modifications|Destruction) complete after")
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_TAIL = 12
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b")


def output_command(region: str) -> list[str]:
    return ["terraform", f"-chdir={root_dir(region)}", "output", "-json"]


def init_command(region: str) -> list[str]:
    return terraform_commands(region, True)[0]


class TerraformInfrastructure:
    """Infrastructure as the Terraform root terraform/regions/<region> (see the module docstring)."""

    def __init__(
        self,
        repo_root: str | Path,
        *,
        terraform: str = "terraform",
        extra_env: Mapping[str, str] | None = None,
        secret_values: Iterable[str] = (),
        on_line: Callable[[str], None] | None = None,
        poll_interval: float = 0.5,
        command_timeout: float | None = None,
        stop_grace_seconds: float = 120.0,
    ) -> None:
        """
        repo_root: the folder holding terraform/ (commands run there, with -chdir into the region's root).
        terraform: the binary's name or path, looked up on PATH when each command starts.
        extra_env: added to the child's environment (e.g. {"AWS_PROFILE": ...}); TF_VAR_* ones are redacted too.
        secret_values: more strings to redact from every line (TF_VAR_* and AWS secrets are redacted anyway).
        on_line: receives every output line (redacted), e.g. to show it in the step log.
        poll_interval: the longest time between two checkpoint() calls while a command runs.
        command_timeout: seconds one command may run (None: no limit; terraform waits on AWS for minutes).
        stop_grace_seconds: how long an interrupted terraform may take to stop safely before it is killed.
        """
        self.repo_root = Path(repo_root)
        self.terraform = terraform
        self._extra_env = dict(extra_env or {})
        self._secrets = [s for s in secret_values if s and len(s) >= 4]
        self._on_line = on_line
        self._poll_interval = poll_interval
        self._command_timeout = command_timeout
        self._grace = stop_grace_seconds

    # ----------------------------------------------------------- read-only

    def commands(self, region: str, dry_run: bool) -> list[str]:
        argvs = terraform_commands(region, dry_run)
        if not dry_run:
            argvs = [*argvs, output_command(region)]
        return [shlex.join(argv) for argv in argvs]

    def preflight(self, region: str) -> list[tuple[str, bool, str]]:
        checks = [self._binary_check()]
        root = self.repo_root / root_dir(region)
        if (root / "main.tf").is_file():
            checks.append(("terraform-root", True, f"{root_dir(region)} present"))
        else:
            checks.append(("terraform-root", False, f"no Terraform root at {root} (expected {root_dir(region)}/main.tf)"))
        return checks

    def outputs(self, region: str, checkpoint: CheckpointFn | None = None) -> dict:
        """The root's outputs by name (sensitive ones left out); runs `terraform output -json`."""
        lines = self._run(output_command(region), region, checkpoint or (lambda: None), echo=False)
        try:
            raw = json.loads("\n".join(lines) or "{}")
        except json.JSONDecodeError as exc:
            raise ProviderError(f"terraform output -json for {region} is not JSON: {exc.msg}", where="terraform") from None
        return {name: item.get("value") for name, item in raw.items()
                if isinstance(item, dict) and not item.get("sensitive")}

    def rehearse(self, region: str, checkpoint: CheckpointFn) -> list[str]:
        """`--dry-run`: terraform init + plan (no apply); the plan's summary lines. The saved plan is removed."""
        self._require_root(region)
        saved_plan = self.repo_root / root_dir(region) / plan_file(region)
        summary: list[str] = []
        try:
            for argv in terraform_commands(region, dry_run=True):
                checkpoint()
                lines = self._run(argv, region, checkpoint)
                summary = [line for line in lines if line.startswith(("Plan:", "No changes"))] or summary
        finally:
            saved_plan.unlink(missing_ok=True)
        return [shlex.join(a) for a in terraform_commands(region, dry_run=True)] + summary

    # ------------------------------------------------------------- changes

    def apply(self, region: str, progress: ProgressFn, checkpoint: CheckpointFn) -> dict:
        self._require_root(region)
        meter = _PlanMeter(progress)
        saved_plan = self.repo_root / root_dir(region) / plan_file(region)
        try:
            for argv in terraform_commands(region, dry_run=False):
                checkpoint()
                step = argv[2]
                self._run(argv, region, checkpoint, watch=lambda line, step=step: meter.saw(step, line))
                meter.finished(step)
        finally:
            # A saved plan holds every variable's value, secrets included: never leave one behind.
            saved_plan.unlink(missing_ok=True)
        checkpoint()
        return self.outputs(region, checkpoint)

    def destroy(self, region: str, checkpoint: CheckpointFn) -> None:
        """init + destroy; an empty state makes terraform a no-op."""
        self._require_root(region)
        for argv in (init_command(region), destroy_command(region)):
            checkpoint()
            self._run(argv, region, checkpoint)

    # ------------------------------------------------------------- helpers

    def _binary(self) -> str | None:
        return shutil.which(self.terraform)

    def _binary_check(self) -> tuple[str, bool, str]:
        path = self._binary()
        wanted = ".".join(map(str, MIN_VERSION))
        if path is None:
            return ("terraform-installed", False,
                    (f"terraform not found on PATH: install Terraform >= {wanted} "
                    f"(https://developer.hashicorp.com/terraform/install) and run again"))
        try:
            answer = subprocess.run([path, "version", "-json"], capture_output=True, text=True, timeout=60,
                                    cwd=self.repo_root, env=self._child_env(), check=False)
            version = str(json.loads(answer.stdout).get("terraform_version", ""))
        except (OSError, subprocess.SubprocessError, json.JSONDecodeError, AttributeError) as exc:
            return ("terraform-installed", False, f"{path} does not report its version: {type(exc).__name__}")
        numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
        if numbers < MIN_VERSION:
            return ("terraform-installed", False, (f"terraform {version} at {path} is older than {wanted} "
                                                   f"(the roots' S3 backend needs use_lockfile)"))
        return ("terraform-installed", True, f"terraform {version} at {path}")

    def _require_root(self, region: str) -> None:
        if not (self.repo_root / root_dir(region)).is_dir():
            raise ProviderError(f"no Terraform root for {region} at {self.repo_root / root_dir(region)}",
                                where="terraform", hint="add terraform/regions/<region> for the region first")
        if self._binary() is None:
            raise ProviderError("terraform not found on PATH", where="terraform",
                                hint=f"install Terraform >= {'.'.join(map(str, MIN_VERSION))}")

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self._extra_env)
        env.setdefault("TF_IN_AUTOMATION", "1")
        env["TF_INPUT"] = "0"
        return env

    def _redactions(self, env: Mapping[str, str]) -> list[str]:
        values = [v for k, v in env.items() if (k.startswith("TF_VAR_") or k in _SECRET_ENV)] + self._secrets
        # Longest first, so that a secret containing another is hidden whole.
        return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)

    def _run(self, argv: list[str], region: str, checkpoint: CheckpointFn, *, echo: bool = True,
             watch: Callable[[str], None] | None = None) -> list[str]:
        """Run one command to its end; its stdout lines (unredacted only when echo is False and nothing is
        logged: `output -json`). A non-zero exit is a ProviderError with the end of stderr."""
        binary = self._binary()
        if binary is None:
            raise ProviderError("terraform not found on PATH", where="terraform")
        env = self._child_env()
        secrets = self._redactions(env)
        shown = shlex.join(argv)
        log.info("running %s (in %s)", shown, self.repo_root)
        try:
            proc = subprocess.Popen([binary, *argv[1:]], cwd=self.repo_root, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                    bufsize=1, start_new_session=True)
        except OSError as exc:
            raise ProviderError(f"could not start {shown}: {exc.strerror or exc}", where="terraform") from None
        lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        readers = [threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
                   for stream, name in ((proc.stdout, "out"), (proc.stderr, "err"))]
        for reader in readers:
            reader.start()
        stdout: list[str] = []
        stderr_tail: deque[str] = deque(maxlen=_TAIL)
        open_streams, started, last_checkpoint = 2, time.monotonic(), time.monotonic()
        try:
            while open_streams:
                try:
                    name, raw = lines.get(timeout=self._poll_interval)
                except queue.Empty:
                    name, raw = "", ""
                if raw is None:
                    open_streams -= 1
                elif name:
                    clean = _clean(raw)
                    if name == "out" and not echo:
                        stdout.append(raw.rstrip("\n"))
                    else:
                        safe = _redact(clean, secrets)
                        if name == "out":
                            stdout.append(safe)
                        elif safe.strip():
                            stderr_tail.append(safe.strip())
                        if safe.strip():
                            log.info("terraform %s %s: %s", argv[2], region, safe)
                            if self._on_line:
                                self._on_line(safe)
                            if watch:
                                watch(safe)
                now = time.monotonic()
                if now - last_checkpoint >= self._poll_interval:
                    last_checkpoint = now
                    checkpoint()
                if self._command_timeout is not None and now - started > self._command_timeout:
                    raise ProviderError(f"{shown} ran longer than {self._command_timeout:.0f} s and was stopped",
                                        where="terraform", hint="run the step again; terraform resumes from its state")
            code = proc.wait()
        except BaseException:
            self._stop(proc, shown)
            raise
        if code != 0:
            tail = [line for line in stderr_tail if line]
            if not tail and echo:  # unechoed stdout (output -json) may hold sensitive values: never quoted
                tail = [line.strip() for line in stdout[-_TAIL:] if line.strip()]
            errors = [line for line in tail if line.startswith("Error")]
            summary = " | ".join((errors[:1] + [line for line in tail[-4:] if line not in errors[:1]]) or ["no output"])
            raise ProviderError(f"{shown} failed (exit {code}) for {region}: {scrub(summary)}", where="terraform",
                                hint="read the lines above or the step log; fix and run the step again",
                                details={"command": shown, "exit_code": code, "stderr_tail": list(tail)})
        return stdout

    def _stop(self, proc: subprocess.Popen, shown: str) -> None:
        """SIGINT (terraform's safe stop), then SIGKILL after the grace period."""
        if proc.poll() is not None:
            return
        log.warning("interrupting %s (waiting up to %.0f s for it to stop safely)", shown, self._grace)
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=self._grace)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in time: killing it (its state lock may need `terraform force-unlock`)", shown)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


class _PlanMeter:
    """Progress of an apply in resources: the plan's "Plan: A to add, C to change, D to destroy" sets the
    total (unknown, None, until then), each "... complete after" line of the apply is one more done."""

    def __init__(self, progress: ProgressFn) -> None:
        self._progress = progress
        self.total: int | None = None
        self.done = 0

    def saw(self, step: str, line: str) -> None:
        if step == "plan":
            match = _PLAN.search(line)
            if match:
                self.total = sum(int(n) for n in match.groups())
            elif "No changes." in line:
                self.total = 0
        elif step == "apply" and _DONE.search(line):
            self.done += 1
            self._progress(min(self.done, self.total) if self.total else self.done, self.total or None)

    def finished(self, step: str) -> None:
        if step == "apply" and self.total is not None:
            self._progress(self.total, self.total)
        elif step != "apply":
            self._progress(0, self.total)


def _pump(stream: Any, name: str, sink: queue.Queue) -> None:
    try:
        for line in stream:
            sink.put((name, line))
    finally:
        sink.put((name, None))


def _clean(line: str) -> str:
    """Without colours, the box drawing of terraform's diagnostics and the line end."""
    return _BOX.sub("", _ANSI.sub("", line.rstrip("\r\n")))


def _redact(line: str, secrets: list[str]) -> str:
    for secret in secrets:
        line = line.replace(secret, "<redacted>")
    return _ACCESS_KEY_ID.sub("<redacted>", line)


def from_spec(spec: Any, env: Any, repo_root: str | Path, **overrides: Any) -> TerraformInfrastructure:
    """The Terraform adapter of an AWS environment: commands run from `repo_root` with the spec's AWS profile
    (unless the spec points at a moto endpoint)."""
    aws = getattr(env, "aws", None)
    extra_env: dict[str, str] = {}
    if aws is not None and not getattr(aws, "endpoint_url", None) and getattr(aws, "profile", None):
        extra_env["AWS_PROFILE"] = aws.profile
    settings: dict[str, Any] = {"extra_env": extra_env}
    settings.update(overrides)
    return TerraformInfrastructure(repo_root, **settings)
