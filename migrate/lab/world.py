"""`migrate lab up | down | status`: the "before" world on one machine, built idempotently.

up:     for us-east-1 a PostgreSQL 15 primary (seeded with N synthetic players by COPY, then adopted by
        the app's Alembic baseline), a Redis server and the app (uvicorn); a moto server holding the
        Route 53 zone (api.game.example → us-east-1, weighted, with a health check) and the S3 asset
        bucket (see aws_world); and the WAN proxy carrying the round trips of DESIGN §2 on every link
        (region → region PostgreSQL and app, player geography → region app). Each part is skipped when
        already there, so a second `lab up` changes nothing.
down:   stops every process the lab started (checking that none survives) and removes the lab folder.
status: every process with role, port, pid and state; every WAN link with its RTT and state; the DNS
        records and buckets moto holds.

Processes other than PostgreSQL are detached (processes.py): pidfile `<lab>/<name>.pid`, log
`<lab>/<name>.log`, names "wan", "moto", "redis-<region>", "app-<region>". The stand-up-region phase
starts and stops the other regions' Redis and app with `start_region_redis` / `start_region_app`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from migrate.errors import LabError
from migrate.lab import processes
from migrate.lab.aws_world import MOTO_PROCESS, RouteApi
from migrate.lab.pg import PgCluster, ensure_reachable_by_postgres
from migrate.lab.topology import REGIONS, SOURCE_REGION, LabTopology, link_rtt_ms, wan_link_names

JITTER_FRACTION = 0.05  # each direction's delay varies by ±2.5 % of the RTT
WAN_PROCESS = "wan"
SESSION_KEY_ID = "lab-1"
LAB_APP_VERSION = "1.0.0"
# Before cutover us-east-1 serves every player, whatever their home region (app/README.md).
HOME_ROUTING = {"ap-northeast-1": SOURCE_REGION, "eu-central-1": SOURCE_REGION}
APP_START_TIMEOUT_S = 60.0
EXIT_WAIT_S = 15.0  # how long `lab down` waits for stopped processes to be gone before calling them survivors
APP_BASELINE_REVISION = "0001_baseline"  # app.db.BASELINE: the revision that adopts the seeded table
APP_DB_POOL_MAX = 5  # per pool (writer, reader) and region: three regions stay far below max_connections


def redis_process(region: str) -> str:
    """Process name (pidfile/log stem) of `region`'s Redis."""
    return f"redis-{region}"


def app_process(region: str) -> str:
    """Process name (pidfile/log stem) of `region`'s app."""
    return f"app-{region}"


def new_topology(lab_dir: Path) -> LabTopology:
    """Pick free loopback ports for every component of a new lab."""
    return LabTopology.allocate(lab_dir)


# --- the WAN proxy ---------------------------------------------------------------------------------

def wan_links(t: LabTopology) -> list[dict[str, Any]]:
    """Every link of a complete lab (LinkSpec dicts): region → region PostgreSQL and app, player
    geography → region app; each with its round trip (topology.link_rtt_ms) and 5 % jitter."""
    links = []
    for name in wan_link_names():
        pair, _, service = name.partition(":")
        dst = pair.partition("->")[2]
        # a region's peer link reaches the other app's internal listener (the regions' private network:
        # leaderboard fetches, matchmaking claims); a player's link reaches the public port only
        apps = t.internal_ports if pair.partition("->")[0] in REGIONS else t.app_ports
        target = {"pg": t.pg_ports, "pghome": t.home_pg_ports, "api": apps}[service][dst]
        rtt = link_rtt_ms(name)
        links.append({"name": name, "listen_port": t.wan_ports[name], "target_host": "127.0.0.1",
                      "target_port": target, "rtt_ms": rtt, "jitter_ms": rtt * JITTER_FRACTION})
    return links


def start_wan(t: LabTopology) -> processes.Started:
    """Start the WAN proxy as a detached process with every link (a no-op when it already runs)."""
    config = t.lab_dir / "wan-links.json"
    if processes.running_pid(t.lab_dir, WAN_PROCESS) is None:
        config.write_text(json.dumps(wan_links(t), indent=2))
    return processes.start_detached(
        t.lab_dir, WAN_PROCESS,
        [sys.executable, "-m", "migrate.lab.wan", "serve", "--config", str(config),
         "--control-port", str(t.wan_control_port)],
        cwd=t.lab_dir, port=t.wan_control_port, timeout=15)


def ensure_wan_links(t: LabTopology) -> list[str]:
    """Add to the running proxy every link it does not serve yet (a proxy started by an older lab);
    the names added. The links file is rewritten so that a restart serves them all."""
    from migrate.lab.wan import LinkSpec, add_links, link_status

    served = {link["name"] for link in link_status(t.wan_control_port)}
    missing = [link for link in wan_links(t) if link["name"] not in served]
    if missing:
        add_links(t.wan_control_port, [LinkSpec.from_dict(link) for link in missing])
        (t.lab_dir / "wan-links.json").write_text(json.dumps(wan_links(t), indent=2))
    return [link["name"] for link in missing]


def stop_wan(t: LabTopology) -> int | None:
    """Stop the WAN proxy; the pid stopped, or None when it was not running."""
    return processes.stop_process(t.lab_dir, WAN_PROCESS)


# --- per-region files ------------------------------------------------------------------------------

def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_session_keys(t: LabTopology) -> bool:
    """Generate the lab's session signing key once (file mode 0600); True when generated."""
    path = t.session_keys_file
    if path.exists():
        path.chmod(0o600)
        return False
    write_atomic(path, json.dumps({SESSION_KEY_ID: secrets.token_urlsafe(32)}), mode=0o600)
    return True


def _session_keys(t: LabTopology) -> str:
    try:
        keys = json.loads(t.session_keys_file.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read the lab's session keys ({t.session_keys_file})",
                       hint="run `migrate lab up`") from exc
    return json.dumps(keys)


def ensure_home_routing(t: LabTopology) -> bool:
    """Write the shared HOME_ROUTING_FILE (before cutover: every home served by us-east-1) when absent."""
    if t.home_routing_file.exists():
        return False
    write_atomic(t.home_routing_file, json.dumps(HOME_ROUTING, indent=2, sort_keys=True) + "\n")
    return True


def ensure_readers_file(t: LabTopology) -> bool:
    """Write the readers file when absent: us-east-1 reads its primary, every other region reads the
    writer through its WAN link (attach-secondary later points a region at its local replica)."""
    if t.readers_file.exists():
        return False
    primary = t.primary()
    readers = {r: primary.dsn(port=t.wan_port(r, SOURCE_REGION)) for r in REGIONS if r != SOURCE_REGION}
    readers[SOURCE_REGION] = primary.dsn()
    write_atomic(t.readers_file, json.dumps(readers, indent=2, sort_keys=True) + "\n")
    return True


# --- a region's Redis and app ----------------------------------------------------------------------

def redis_answers(port: int) -> bool:
    """True when a Redis on 127.0.0.1:`port` answers PING within a second; read-only."""
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def start_region_redis(t: LabTopology, region: str) -> processes.Started:
    """Start `region`'s Redis (no persistence) on its port, or leave the running one; returns once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise LabError("redis-server not found", hint="apt-get update && apt-get install -y redis-server")
    port = t.redis_ports[region]
    workdir = t.lab_dir / "redis" / region
    workdir.mkdir(parents=True, exist_ok=True)
    return processes.start_detached(
        t.lab_dir, redis_process(region),
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", str(workdir), "--logfile", ""],
        cwd=workdir, port=port, ready=lambda: redis_answers(port), timeout=15)


def stop_region_redis(t: LabTopology, region: str) -> int | None:
    """Stop `region`'s Redis (its data is gone with it); the pid stopped, or None when it was not running."""
    return processes.stop_process(t.lab_dir, redis_process(region))


def region_app_env(t: LabTopology, region: str, *, app_version: str = LAB_APP_VERSION) -> dict[str, str]:
    """The app settings of `region` (app/README.md): writer = the us-east-1 primary (through the
    region's WAN link unless in us-east-1), reader from READERS_FILE, the region's Redis, peers
    through the region → region app links, shared session keys and home routing, assets on moto.
    Holds the session secret: never print or log it."""
    from migrate.lab.aws_world import asset_base_url, bucket_name

    primary = t.primary()
    writer = primary.dsn() if region == SOURCE_REGION else primary.dsn(port=t.wan_port(region, SOURCE_REGION))
    return {
        "REGION": region,
        "WRITER_DSN": writer,
        "READERS_FILE": str(t.readers_file),
        "WRITERS_FILE": str(t.writers_file(region)),
        "REDIS_URL": t.redis_url(region),
        "PEER_REGIONS": json.dumps({peer: t.peer_url(region, peer) for peer in REGIONS if peer != region}),
        "SESSION_KEYS": _session_keys(t),
        "SESSION_ACTIVE_KEY": SESSION_KEY_ID,
        "HOME_ROUTING": json.dumps(HOME_ROUTING),
        "HOME_ROUTING_FILE": str(t.home_routing_file),
        "APP_VERSION": app_version,
        "APP_GENERATION": str(deployed_generation(t, region)),
        "ASSET_BUCKET": bucket_name(region),
        "ASSET_BASE_URL": asset_base_url(t, region),
        "DB_POOL_MAX": str(APP_DB_POOL_MAX),
        "LOG_LEVEL": "info",
    }


# Inherited by the app processes; nothing else from the caller's environment (a stray READER_DSN or
# AWS_PROFILE in an operator's shell must not change what the lab runs).
INHERITED_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "VIRTUAL_ENV",
                 "SSL_CERT_FILE", "SSL_CERT_DIR")


def _app_root() -> Path:
    """The folder holding the `app` package (the project root), so children import it from any cwd."""
    root = Path(__file__).resolve().parents[2]
    if (root / "app" / "__init__.py").exists():
        return root
    spec = find_spec("app")
    if spec is None or spec.origin is None:
        raise LabError("the game backend package `app` is not importable", hint="pip install -e .")
    return Path(spec.origin).resolve().parent.parent


def _app_process_env(settings: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a process of the game backend, plus `settings`."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(_app_root()), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(settings or {})
    return env


def schema_revisions(dsn: str) -> set[str]:
    """Alembic revisions recorded in the database (empty when Alembic never ran there)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]:
            return set()
        return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}


def record_schema_baseline(dsn: str) -> bool:
    """Run the app's Alembic upgrade to its baseline (it adopts the seeded table) when the database has
    no revision yet; True when it ran. Never more: the expand/contract branches belong to the schema
    phases, and a database that already has revisions is never moved."""
    if schema_revisions(dsn):
        return False
    proc = subprocess.run([sys.executable, "-m", "app.db", "upgrade", dsn, APP_BASELINE_REVISION],
                          env=_app_process_env(), capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LabError(f"the app's Alembic upgrade to {APP_BASELINE_REVISION} failed: {' | '.join(tail)}")
    return True


def app_health(t: LabTopology, region: str, timeout: float = 1.0) -> tuple[int | None, dict | None]:
    """(status code, body) of `region`'s app /health, directly; (None, None) when it does not answer."""
    import httpx

    try:
        response = httpx.get(f"{t.app_url(region)}/health", timeout=timeout)
    except httpx.HTTPError:
        return None, None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def start_region_app(t: LabTopology, region: str, *, app_version: str = LAB_APP_VERSION,
                     timeout: float = APP_START_TIMEOUT_S) -> processes.Started:
    """Start `region`'s app (uvicorn, region_app_env) unless running; returns once /health is 200; needs lab up + the region's Redis."""
    if processes.running_pid(t.lab_dir, redis_process(region)) is None:
        raise LabError(f"{region}'s Redis is not running", hint="start it first (start_region_redis)")
    env = _app_process_env(region_app_env(t, region, app_version=app_version))
    port = t.app_ports[region]
    return processes.start_detached(
        t.lab_dir, app_process(region),
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port),
         "--internal-port", str(t.internal_ports[region])],
        env=env, cwd=t.lab_dir, port=port, ready=lambda: app_health(t, region)[0] == 200, timeout=timeout)


def stop_region_app(t: LabTopology, region: str) -> int | None:
    """Stop `region`'s app (SIGTERM: uvicorn drains); the pid stopped, or None when it was not running."""
    return processes.stop_process(t.lab_dir, app_process(region))


APP_GENERATIONS = (1, 2)  # app/generations.py


def deployed_generation(t: LabTopology, region: str) -> int:
    """The app generation `region` runs (or will run when started): 1 unless `migrate lab deploy` said."""
    if not t.app_generations_file.exists():
        return 1
    return int(json.loads(t.app_generations_file.read_text()).get(region, 1))


def deploy_app_generation(t: LabTopology, region: str, generation: int) -> list[str]:
    """Make `region` run app `generation`: recorded for every later start, and a running app of another
    generation restarted with it (the lab has one app process per region, so its players see the
    restart; ECS rolls tasks behind the load balancer). What was done (empty: nothing to do)."""
    if region not in REGIONS:
        raise LabError(f"unknown region {region!r}", hint="one of " + ", ".join(REGIONS))
    if generation not in APP_GENERATIONS:
        raise LabError(f"unknown app generation {generation!r}", hint="1 (today's game) or 2 (home-region writers)")
    actions = []
    if deployed_generation(t, region) != generation:
        recorded = json.loads(t.app_generations_file.read_text()) if t.app_generations_file.exists() else {}
        recorded[region] = generation
        t.app_generations_file.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
        actions.append(f"{region}: app generation {generation} recorded")
    running = app_health(t, region)[1]
    if running is not None and (running.get("app") or {}).get("generation", 1) != generation:
        stop_region_app(t, region)
        started = start_region_app(t, region)
        actions.append(f"{region}: app restarted as generation {generation} (pid {started.pid})")
    return actions


# --- up / down / status ----------------------------------------------------------------------------

@dataclass
class LabReport:
    """What `lab up|down|status` found or did."""

    lab_dir: str
    actions: list[str] = field(default_factory=list)  # what this command changed (empty: nothing to do)
    components: list[dict[str, Any]] = field(default_factory=list)  # every process: role, port, pid, state
    links: list[dict[str, Any]] = field(default_factory=list)  # every WAN link: rtt_ms, state
    aws: dict[str, Any] | None = None  # what moto holds: zone id, API records, buckets (None: moto down)
    players: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"lab_dir": self.lab_dir, "actions": self.actions, "components": self.components,
                "links": self.links, "aws": self.aws, "players": self.players}


def _started(report: LabReport, started: processes.Started, what: str) -> None:
    if started.started:
        report.actions.append(f"started {what} (pid {started.pid})")


def lab_up(lab_dir: Path, players: int, progress: Callable[[int, int | None], None] | None = None, *,
           route_api: RouteApi) -> LabReport:
    """Build (or finish building) the lab; every part is skipped when already there. `route_api` routes
    the API name in Route 53 (migrate.providers.factory.route_lab_api)."""
    from migrate.lab.aws_world import ensure_source_world, start_moto
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
        report.actions.append(f"started PostgreSQL for {SOURCE_REGION} (port {primary.port})")

    started = start_wan(t)
    _started(report, started, f"the WAN proxy ({len(wan_link_names())} links, control port {t.wan_control_port})")
    if not started.started:
        added = ensure_wan_links(t)
        if added:
            report.actions.append(f"added {len(added)} links to the running WAN proxy: {', '.join(added)}")

    create_schema(primary.dsn())
    inserted = seed_players(primary.dsn(), players, progress=progress)
    if inserted:
        report.actions.append(f"seeded {inserted} players by COPY")
    if record_schema_baseline(primary.dsn()):
        report.actions.append(f"ran the app's Alembic upgrade to {APP_BASELINE_REVISION}")
    if players > t.players:
        t.players = players
        t.save()

    if ensure_readers_file(t):
        report.actions.append(f"wrote {t.readers_file.name}")
    if ensure_session_keys(t):
        report.actions.append(f"generated the session signing key ({t.session_keys_file.name}, mode 0600)")
    if ensure_home_routing(t):
        report.actions.append(f"wrote {t.home_routing_file.name} (every home served by {SOURCE_REGION})")

    _started(report, start_moto(t), f"moto on port {t.moto_port}")
    report.actions.extend(ensure_source_world(t, route_api))
    _started(report, start_region_redis(t, SOURCE_REGION), f"Redis for {SOURCE_REGION} on port "
                                                            f"{t.redis_ports[SOURCE_REGION]}")
    _started(report, start_region_app(t, SOURCE_REGION), f"the app for {SOURCE_REGION} on port "
                                                          f"{t.app_ports[SOURCE_REGION]}")

    status = lab_status(lab_dir)
    report.components, report.links, report.aws = status.components, status.links, status.aws
    report.players = t.players
    return report


def _pg_datadirs(lab_dir: Path) -> list[Path]:
    """Every PostgreSQL data directory of the lab (the regions' and any a phase left half built)."""
    root = lab_dir / "pg"
    return sorted(p for p in root.iterdir() if (p / "PG_VERSION").exists()) if root.is_dir() else []


def _postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _recorded_processes(lab_dir: Path) -> list[tuple[int, int | None]]:
    """(pid, start ticks) of every live process the lab records: pidfiles and PostgreSQL postmasters."""
    found = []
    for pidfile in sorted(lab_dir.glob("*.pid")):
        recorded = processes.read_pidfile(pidfile)
        if recorded and processes.pid_alive(*recorded):
            found.append(recorded)
    for datadir in _pg_datadirs(lab_dir):
        pid = _postmaster_pid(datadir)
        if pid and processes.pid_alive(pid):
            found.append((pid, processes.start_ticks(pid)))
    return found


def lab_down(lab_dir: Path) -> LabReport:
    """Stop everything the lab started, check that no process survives, and remove its folder; a no-op
    when there is no lab."""
    report = LabReport(str(lab_dir))
    if not lab_dir.exists():
        report.actions.append("no lab here; nothing to do")
        return report
    before = _recorded_processes(lab_dir)
    # Apps first (they hold connections to PostgreSQL and Redis), then their backing services.
    order = [app_process(r) for r in REGIONS] + [redis_process(r) for r in REGIONS]
    order += [MOTO_PROCESS, WAN_PROCESS]
    order += sorted(p.stem for p in lab_dir.glob("*.pid") if p.stem not in order)  # anything else recorded
    for name in order:
        pid = processes.stop_process(lab_dir, name)
        if pid is not None:
            report.actions.append(f"stopped {name} (pid {pid})")
    for datadir in _pg_datadirs(lab_dir):
        cluster = PgCluster(datadir, 0)
        if cluster.is_running():
            cluster.stop(mode="immediate")
            report.actions.append(f"stopped PostgreSQL {datadir.name}")
    # A stopped PostgreSQL removes its postmaster.pid (which `pg_ctl stop` waits for) a moment before
    # the process is gone; on a busy machine that moment was long enough to be reported as a survivor.
    # So: wait, bounded, for what was stopped to be gone, then judge.
    deadline = time.monotonic() + EXIT_WAIT_S
    survivors = [pid for pid, ticks in before if processes.pid_alive(pid, ticks)]
    while survivors and time.monotonic() < deadline:
        time.sleep(0.1)
        survivors = [pid for pid, ticks in before if processes.pid_alive(pid, ticks)]
    if survivors:
        raise LabError(f"lab processes still running after lab down: {', '.join(map(str, survivors))}",
                       hint=f"kill them, then run `migrate lab down` again (the lab folder {lab_dir} was kept)")
    report.actions.append(f"checked: none of the {len(before)} lab processes is left")
    shutil.rmtree(lab_dir, ignore_errors=True)
    report.actions.append(f"removed {lab_dir}")
    return report


def _process_row(t: LabTopology, kind: str, region: str | None, role: str, name: str,
                 port: int) -> dict[str, Any]:
    state, pid = processes.process_state(t.lab_dir, name, port)
    state = {"dead": "stopped"}.get(state, state)
    return {"component": f"{kind} {region}" if region else kind, "kind": kind, "region": region,
            "role": role, "port": port, "pid": pid, "state": state}


def lab_status(lab_dir: Path) -> LabReport:
    """Every lab process with role, port, pid and state; every WAN link with RTT and state; moto's
    records and buckets. Read-only (an older lab.json gets its missing ports allocated)."""
    report = LabReport(str(lab_dir))
    t = LabTopology.load(lab_dir)
    if t is None:
        report.actions.append("no lab here: run `migrate lab up`")
        return report
    report.players = t.players
    for region in REGIONS:
        cluster = t.pg(region)
        exists = cluster.exists()
        running = exists and cluster.is_running()
        standby = (cluster.datadir / "standby.signal").exists()
        role = "standby" if standby or (not exists and region != SOURCE_REGION) else "primary"
        report.components.append({
            "component": f"postgresql {region}", "kind": "postgresql", "region": region, "role": role,
            "port": cluster.port, "pid": _postmaster_pid(cluster.datadir) if running else None,
            "state": "running" if running else ("stopped" if exists else "absent")})
    for region in REGIONS:
        report.components.append(_process_row(t, "redis", region, "sessions+boards",
                                              redis_process(region), t.redis_ports[region]))
    for region in REGIONS:
        row = _process_row(t, "app", region, "api", app_process(region), t.app_ports[region])
        if row["state"] == "running":
            code, body = app_health(t, region)
            row["health"] = code
            if code != 200:
                row["state"] = f"unhealthy ({code or 'no answer'})"
            elif body:
                row["version"] = body.get("version")
        report.components.append(row)
    moto = _process_row(t, "moto", None, "route53+s3", MOTO_PROCESS, t.moto_port)
    wan = _process_row(t, "wan proxy", None, "control", WAN_PROCESS, t.wan_control_port)
    report.components += [moto, wan]
    report.links = _link_rows(t, wan["state"] == "running")
    if moto["state"] == "running":
        from migrate.lab.aws_world import aws_summary

        try:
            report.aws = aws_summary(t)
        except LabError as exc:
            report.aws = {"error": exc.one_line()}
    return report


def _link_rows(t: LabTopology, proxy_running: bool) -> list[dict[str, Any]]:
    served: dict[str, dict[str, Any]] = {}
    error = None
    if proxy_running:
        from migrate.lab.wan import link_status

        try:
            served = {link["name"]: link for link in link_status(t.wan_control_port)}
        except LabError as exc:
            error = exc.one_line()
    rows = []
    for spec in wan_links(t):
        link = served.get(spec["name"])
        row = {"name": spec["name"], "port": spec["listen_port"], "target_port": spec["target_port"],
               "rtt_ms": spec["rtt_ms"], "extra_rtt_ms": 0.0, "connections": None}
        if link is None:
            row["state"] = ("unknown: " + error) if error else ("missing" if proxy_running else "down")
        else:
            row["rtt_ms"] = link["rtt_ms"]
            row["extra_rtt_ms"] = link.get("extra_rtt_ms") or 0.0
            row["connections"] = link.get("open_connections")
            row["state"] = "cut" if link.get("cut") else ("degraded" if row["extra_rtt_ms"] else "up")
        rows.append(row)
    return rows
