"""The home routing map's entries, as every app generation reads them (app/runtime.py `_route`): a home
maps to the region serving it, a bare region name while its epoch is 1, {"region", "epoch"} once a
region loss re-homed it. The lab (a watched file) and AWS (an SSM parameter per region) store the same
document."""

from __future__ import annotations

from typing import Any


def read_entry(routing: dict[str, Any], home: str) -> tuple[str, int]:
    """(serving region, epoch) of `home` in `routing` (absent: the home serves itself, epoch 1)."""
    entry = routing.get(home, home)
    if isinstance(entry, dict):
        epoch = entry.get("epoch", 1)
        return str(entry.get("region", home)), epoch if isinstance(epoch, int) and epoch >= 1 else 1
    return str(entry), 1


def entry(region: str, epoch: int) -> str | dict[str, Any]:
    """The map's value for a home served by `region` under `epoch` (epoch 1 stays a bare name: the form
    every app generation reads)."""
    return region if epoch == 1 else {"region": region, "epoch": epoch}
