"""`migrate lab up | down | status`: the "before" world on one machine, built idempotently.

up:   a PostgreSQL 15 primary for us-east-1 (seeded with N synthetic players by COPY), and the WAN
      proxy carrying the inter-region round trips of DESIGN §2 on the links the phases use.
down: stops every process the lab started and removes the lab folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from migrate.errors import LabError
from migrate.lab.pg import ensure_reachable_by_postgres, free_port, port_open
from migrate.lab.topology import (GEOGRAPHIES, REGIONS, SOURCE_REGION, LabTopology, player_rtt_ms,
                                   rtt_ms)

JITTER_FRACTION = 0.05  # each direction's delay varies by ±2.5 % of the RTT


def _links(topology: LabTopology) -> list[dict[str, Any]]:
    """Every region → other region's PostgreSQL link and every player geography → region's app
    link, each with its round-trip time."""
    links = []
    for name, port in sorted(topology.wan_ports.items()):
        pair, _, service = name.partition(":")
        src, _, dst = pair.partition("->")
        if service == "pg":
            rtt, target = rtt_ms(src, dst), topology.pg_ports[dst]
        else:  # "api": a player geography to a region's app
            rtt, target = player_rtt_ms(src, dst), topology.app_ports[dst]
        links.append({"name": name, "listen_port": port, "target_host": "127.0.0.1",
                      "target_port": target, "rtt_ms": rtt, "jitter_ms": rtt * JITTER_FRACTION})
    return links


def new_topology(lab_dir: Path) -> LabTopology:
    """Pick free loopback ports for every component of a new lab."""
    pg_ports = {region: free_port() for region in REGIONS}
    wan_ports = {f"{a}->{b}:pg": free_port() for a in REGIONS for b in REGIONS if a != b}
    wan_ports.update({f"{g}->{r}:api": free_port() for g in GEOGRAPHIES for r in REGIONS})
    return LabTopology(lab_dir=lab_dir, pg_ports=pg_ports, wan_ports=wan_ports,
                       wan_control_port=free_port(),
                       redis_ports={region: free_port() for region in REGIONS},
                       app_ports={region: free_port() for region in REGIONS},
                       moto_port=free_port())


def _wan_pidfile(t: LabTopology) -> Path:
    return t.lab_dir / "wan.pid"


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def start_wan(t: LabTopology) -> None:
    """Start the WAN proxy as a detached process (a no-op when it already runs)."""
    if _pid_alive(_wan_pidfile(t)) and port_open(t.wan_control_port):
        return
    config = t.lab_dir / "wan-links.json"
    config.write_text(json.dumps(_links(t), indent=2))
    log = open(t.lab_dir / "wan.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "migrate.lab.wan", "serve", "--config", str(config),
                             "--control-port", str(t.wan_control_port), "--pidfile", str(_wan_pidfile(t))],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while not port_open(t.wan_control_port):
        if proc.poll() is not None:
            raise LabError(f"the WAN proxy exited with {proc.returncode}", hint=f"see {t.lab_dir / 'wan.log'}")
        if time.monotonic() > deadline:
            raise LabError("the WAN proxy did not open its control port", hint=f"see {t.lab_dir / 'wan.log'}")
        time.sleep(0.05)
    _wan_pidfile(t).write_text(str(proc.pid))


def stop_wan(t: LabTopology) -> None:
    pid = _pid_alive(_wan_pidfile(t))
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@dataclass
class LabReport:
    """What `lab up|down|status` found or did."""

    lab_dir: str
    actions: list[str] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    players: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"lab_dir": self.lab_dir, "actions": self.actions, "components": self.components,
                "players": self.players}


def lab_up(lab_dir: Path, players: int,
           progress: Callable[[int, int | None], None] | None = None) -> LabReport:
    """Build (or finish building) the lab; every part is skipped when already there."""
    from migrate.lab.seed import create_schema, seed_players

    if players < 0:
        raise LabError(f"--players must be ≥ 0, got {players}")
    lab_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.chmod(0o755)
    ensure_reachable_by_postgres(lab_dir)
    report = LabReport(str(lab_dir))
    t = LabTopology.load(lab_dir)
    if t is None:
        t = new_topology(lab_dir)
        t.save()
        report.actions.append(f"created lab at {lab_dir}")
    primary = t.primary()
    if not primary.exists():
        primary.init()
        report.actions.append(f"initialised PostgreSQL for {SOURCE_REGION} (port {primary.port})")
    if not primary.is_running():
        primary.start()
        report.actions.append(f"started PostgreSQL for {SOURCE_REGION}")
    start_wan(t)
    create_schema(primary.dsn())
    inserted = seed_players(primary.dsn(), players, progress=progress)
    if inserted:
        report.actions.append(f"seeded {inserted} players by COPY")
    t.players = max(t.players, players)
    t.save()
    if not t.readers_file.exists():
        readers = {r: f"postgresql://postgres@127.0.0.1:{t.wan_port(r, SOURCE_REGION)}/postgres"
                   for r in REGIONS if r != SOURCE_REGION}
        readers[SOURCE_REGION] = primary.dsn()
        t.readers_file.write_text(json.dumps(readers, indent=2))
    report.components = lab_status(lab_dir).components
    report.players = t.players
    return report


def lab_down(lab_dir: Path) -> LabReport:
    """Stop everything the lab started and remove its folder; a no-op when there is no lab."""
    report = LabReport(str(lab_dir))
    t = LabTopology.load(lab_dir)
    if t is None:
        if lab_dir.exists():
            shutil.rmtree(lab_dir, ignore_errors=True)
            report.actions.append(f"removed {lab_dir}")
        else:
            report.actions.append("no lab here; nothing to do")
        return report
    for region in REGIONS:
        cluster = t.pg(region)
        if cluster.exists() and cluster.is_running():
            cluster.stop(mode="immediate")
            report.actions.append(f"stopped PostgreSQL for {region}")
    if _pid_alive(_wan_pidfile(t)):
        stop_wan(t)
        report.actions.append("stopped the WAN proxy")
    shutil.rmtree(lab_dir, ignore_errors=True)
    report.actions.append(f"removed {lab_dir}")
    return report


def lab_status(lab_dir: Path) -> LabReport:
    """Every lab process with its port and state, and every WAN link; read-only."""
    report = LabReport(str(lab_dir))
    t = LabTopology.load(lab_dir)
    if t is None:
        report.actions.append("no lab here: run `migrate lab up`")
        return report
    report.players = t.players
    for region in REGIONS:
        cluster = t.pg(region)
        role = "primary" if region == SOURCE_REGION else "standby"
        state = "running" if cluster.exists() and cluster.is_running() else (
            "stopped" if cluster.exists() else "absent")
        report.components.append({"component": f"postgresql {region}", "role": role,
                                  "port": cluster.port, "state": state})
    wan_pid = _pid_alive(_wan_pidfile(t))
    report.components.append({"component": "wan proxy", "role": "control", "port": t.wan_control_port,
                              "state": "running" if wan_pid else "stopped"})
    if wan_pid:
        from migrate.lab.wan import link_status

        try:
            for link in link_status(t.wan_control_port):
                report.components.append({
                    "component": f"link {link['name']}", "role": f"rtt {link['rtt_ms']:g} ms",
                    "port": link["listen_port"],
                    "state": "cut" if link.get("cut") else "up",
                    "connections": link.get("open_connections")})
        except LabError as exc:
            report.components.append({"component": "wan links", "role": "", "port": None,
                                      "state": f"unknown: {exc.one_line()}"})
    return report
