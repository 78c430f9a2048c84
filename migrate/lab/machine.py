"""A description of the machine a benchmark ran on, stored next to its numbers."""

from __future__ import annotations

import os
import platform
import subprocess


def describe_machine() -> dict:
    """CPU count and model, memory, OS and Python: enough to judge whether two runs compare."""
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    pg = subprocess.run(["sh", "-c", "$(pg_config --bindir)/postgres --version"], capture_output=True, text=True)
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": mem_gib,
            "os": platform.platform(), "python": platform.python_version(),
            "postgres": pg.stdout.strip()}
