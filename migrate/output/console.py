"""The consoles. Diagnostics (progress, notes, errors) go to stderr so stdout stays pipeable."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from migrate import __version__

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

ENVELOPE_VERSION = "migrate/v1"


def envelope(command: str, ok: bool, data: Any = None, error: dict | None = None,
             exit_code: int = 0) -> dict[str, Any]:
    """The versioned JSON document every `--output json` command prints, on success and on failure."""
    return {"schema": ENVELOPE_VERSION, "tool_version": __version__, "command": command, "ok": ok,
            "exit_code": exit_code, "data": data, "error": error}


def print_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()
