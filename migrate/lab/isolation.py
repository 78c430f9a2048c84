"""A region cut off from the world and brought back (the region-kill game day, DESIGN §6b): every WAN link
to or from the region cut — the players' links to its app, the other regions' links to its app,
PostgreSQL and home writer, and its own links out — while its processes run on, unreachable. To every
other region and every player that is a region lost; bringing it back restores the links, and the
region's processes are found as they were (its writer with whatever it took before the cut)."""

from __future__ import annotations

from migrate.errors import LabError
from migrate.lab.topology import REGIONS, LabTopology, wan_link_names
from migrate.lab.wan_client import cut_link, link_status, restore_link


def region_links(region: str) -> list[str]:
    """Every WAN link with `region` at either end."""
    if region not in REGIONS:
        raise LabError(f"unknown region '{region}'", hint="one of " + ", ".join(REGIONS))
    return [name for name in wan_link_names()
            if region in name.partition(":")[0].split("->")]


def isolate(t: LabTopology, region: str) -> list[str]:
    """Cut every link of `region` (idempotent); the links cut."""
    names = region_links(region)
    for name in names:
        cut_link(t.wan_control_port, name)
    return names


def reconnect(t: LabTopology, region: str) -> list[str]:
    """Restore every link of `region` (idempotent); the links restored."""
    names = region_links(region)
    for name in names:
        restore_link(t.wan_control_port, name)
    return names


def isolated(t: LabTopology, region: str) -> bool:
    """Whether every link of `region` is cut now."""
    cut = {link["name"]: link.get("cut") for link in link_status(t.wan_control_port)}
    return all(cut.get(name) for name in region_links(region))
