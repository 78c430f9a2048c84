"""Where every lab component lives: folders and loopback ports, derived from the lab folder alone so
that every command (and every test) finds the same world. Persisted as `<lab>/lab.json`.

WAN links (`wan_ports`, name → the proxy's listen port on 127.0.0.1):
    "<region>-><region>:pg"   a region's view of another region's PostgreSQL (replication, remote writes)
    "<region>-><region>:pghome"  a region's view of another region's home writer (cutover: its own
                              players' writer, a separate PostgreSQL beside that region's replica)
    "<region>-><region>:api"  a region's view of another region's app (peers: the global leaderboard)
    "<geography>-><region>:api"  a player geography's view of a region's app
A lab.json written by an older version is completed on load: missing ports are allocated once and
saved, so every later command sees the same ones."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from migrate.lab.pg import PgCluster, free_port
from migrate.names import GEOGRAPHIES, REGIONS, SOURCE_REGION  # noqa: F401 (the lab's modules take them from here too)


# Inter-region round trips (ms), DESIGN §2.
RTT_MS = {
    frozenset({"ap-northeast-1", "us-east-1"}): 145.0,
    frozenset({"ap-northeast-1", "eu-central-1"}): 230.0,
    frozenset({"eu-central-1", "us-east-1"}): 90.0,
}


# The region nearest each player geography, and the median last-mile round trip to it (DESIGN §2).
GEO_NEAREST = {"apac": "ap-northeast-1", "na": "us-east-1", "eu": "eu-central-1"}
LAST_MILE_MS = {"apac": 25.0, "na": 25.0, "eu": 20.0}
# The continent Route 53's geolocation sees each player geography's resolvers in.
GEO_CONTINENT = {"apac": "AS", "na": "NA", "eu": "EU"}


def rtt_ms(a: str, b: str) -> float:
    """Round trip between two regions in ms (0 within one region)."""
    return 0.0 if a == b else RTT_MS[frozenset({a, b})]


def player_rtt_ms(geography: str, region: str) -> float:
    """A player's round trip to a region: last mile to the nearest region plus the inter-region hop."""
    return LAST_MILE_MS[geography] + rtt_ms(GEO_NEAREST[geography], region)


def link_rtt_ms(link: str) -> float:
    """Round trip of a WAN link named "<from>-><to>:<service>" (from: a region or a player geography)."""
    pair, _, _service = link.partition(":")
    src, _, dst = pair.partition("->")
    return player_rtt_ms(src, dst) if src in GEOGRAPHIES else rtt_ms(src, dst)


HOME_WRITER_REGIONS = tuple(r for r in REGIONS if r != SOURCE_REGION)  # regions a cutover can give a writer


def shard_key(home: str, region: str) -> str:
    return f"{home}@{region}"


def wan_link_names() -> list[str]:
    """Every WAN link a complete lab has, sorted."""
    names = [f"{a}->{b}:{service}" for a in REGIONS for b in REGIONS if a != b for service in ("pg", "api")]
    names += [f"{a}->{b}:pghome" for a in REGIONS for b in HOME_WRITER_REGIONS if a != b]
    names += [f"{g}->{r}:api" for g in GEOGRAPHIES for r in REGIONS]
    return sorted(names)


def default_lab_dir() -> Path:
    return Path(os.environ.get("MIGRATE_LAB_DIR", ".lab")).absolute()


@dataclass
class LabTopology:
    """Ports and folders of one lab. Port numbers are chosen once at `lab up` and kept in lab.json."""

    lab_dir: Path  # everything the lab writes lives under here; `lab down` removes it
    pg_ports: dict[str, int]  # region → port of that region's PostgreSQL (primary or standby)
    wan_ports: dict[str, int]  # link name ("<from>-><to>:pg|api", see the module doc) → the proxy's listen port
    wan_control_port: int  # the WAN proxy's control port (cut / restore / degrade links)
    players: int = 0  # how many synthetic players were seeded
    redis_ports: dict[str, int] = field(default_factory=dict)  # region → that region's Redis
    app_ports: dict[str, int] = field(default_factory=dict)  # region → that region's app (direct, no WAN)
    moto_port: int = 0  # the moto server standing in for Route 53 and S3 (0: not allocated)
    home_pg_ports: dict[str, int] = field(default_factory=dict)  # region → its home writer's PostgreSQL (cutover)
    internal_ports: dict[str, int] = field(default_factory=dict)  # region → its app's internal listener
    # "<home>@<region>" → the PostgreSQL in <region> that is a secondary of <home>'s shard (cutover)
    shard_pg_ports: dict[str, int] = field(default_factory=dict)

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "lab.json"

    @property
    def readers_file(self) -> Path:
        """region → reader DSN the region's app uses (the lab's stand-in for per-region config)."""
        return self.lab_dir / "readers.json"

    def pg(self, region: str) -> PgCluster:
        return PgCluster(self.lab_dir / "pg" / region, self.pg_ports[region])

    def primary(self) -> PgCluster:
        return self.pg(SOURCE_REGION)

    def home_pg(self, region: str) -> PgCluster:
        """The PostgreSQL that becomes `region`'s home writer at cutover (beside the region's replica)."""
        return PgCluster(self.lab_dir / "pg" / f"{region}-home", self.home_pg_ports[region])

    def shard_pg(self, home: str, region: str) -> PgCluster:
        """The PostgreSQL in `region` that streams `home`'s shard from its home writer (after its cutover)."""
        return PgCluster(self.lab_dir / "pg" / f"{home}-home-in-{region}", self.shard_pg_ports[shard_key(home, region)])

    def home_wan_port(self, from_region: str, to_region: str) -> int:
        """Loopback port that reaches `to_region`'s home writer as seen from `from_region`."""
        return self.wan_ports[f"{from_region}->{to_region}:pghome"]

    def writers_file(self, region: str) -> Path:
        """JSON {home: writer DSN as `region` reaches it} `region`'s app reads (WRITERS_FILE), re-read live."""
        return self.lab_dir / f"writers-{region}.json"

    def wan_port(self, from_region: str, to_region: str) -> int:
        """Loopback port that reaches `to_region`'s PostgreSQL as seen from `from_region`."""
        return self.wan_ports[f"{from_region}->{to_region}:pg"]

    def player_port(self, geography: str, region: str) -> int:
        """Loopback port that reaches `region`'s app as seen from a player in `geography`."""
        return self.wan_ports[f"{geography}->{region}:api"]

    def peer_port(self, from_region: str, to_region: str) -> int:
        """Loopback port that reaches `to_region`'s app as seen from `from_region` (through the WAN)."""
        return self.wan_ports[f"{from_region}->{to_region}:api"]

    def app_url(self, region: str) -> str:
        """`region`'s app, directly (no WAN delay): what its load balancer and health checks see."""
        return f"http://127.0.0.1:{self.app_ports[region]}"

    def internal_url(self, region: str) -> str:
        """`region`'s app internal listener (/metrics, /internal/*): no WAN link and no public name reach it."""
        return f"http://127.0.0.1:{self.internal_ports[region]}"

    def player_url(self, geography: str, region: str) -> str:
        """`region`'s app as a player in `geography` reaches it (through the WAN link)."""
        return f"http://127.0.0.1:{self.player_port(geography, region)}"

    def peer_url(self, from_region: str, to_region: str) -> str:
        """`to_region`'s app as `from_region`'s app reaches it (through the WAN link)."""
        return f"http://127.0.0.1:{self.peer_port(from_region, to_region)}"

    def redis_url(self, region: str) -> str:
        return f"redis://127.0.0.1:{self.redis_ports[region]}/0"

    @property
    def moto_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def session_keys_file(self) -> Path:
        """JSON {key id: secret} every region's app signs sessions with (mode 0600; never printed)."""
        return self.lab_dir / "session-keys.json"

    @property
    def home_routing_file(self) -> Path:
        """JSON {home region: serving region} every region's app reads (HOME_ROUTING_FILE), re-read live."""
        return self.lab_dir / "home-routing.json"

    @property
    def app_generations_file(self) -> Path:
        """JSON {region: app generation} deployed by `migrate lab deploy` (absent region: generation 1)."""
        return self.lab_dir / "app-generations.json"

    @classmethod
    def allocate(cls, lab_dir: Path) -> "LabTopology":
        """A new topology with a free loopback port for every component (not saved)."""
        topology = cls(lab_dir=lab_dir, pg_ports={}, wan_ports={}, wan_control_port=0)
        topology.fill_missing()
        return topology

    def fill_missing(self) -> list[str]:
        """Allocate a port for every component that has none (a lab.json from an older version);
        the names of the ports added."""
        added = []

        def need(table: dict[str, int], key: str, label: str) -> None:
            if not table.get(key):
                table[key] = free_port()
                added.append(label)

        for region in REGIONS:
            need(self.pg_ports, region, f"postgresql {region}")
            need(self.redis_ports, region, f"redis {region}")
            need(self.app_ports, region, f"app {region}")
            need(self.internal_ports, region, f"app {region} internal")
        for region in HOME_WRITER_REGIONS:
            need(self.home_pg_ports, region, f"postgresql {region} home writer")
            for other in REGIONS:
                if other != region:
                    need(self.shard_pg_ports, shard_key(region, other), f"postgresql {region}'s shard in {other}")
        for name in wan_link_names():
            need(self.wan_ports, name, f"link {name}")
        if not self.wan_control_port:
            self.wan_control_port = free_port()
            added.append("wan control")
        if not self.moto_port:
            self.moto_port = free_port()
            added.append("moto")
        return added

    def save(self) -> None:
        """Write lab.json atomically (temp file + rename)."""
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["lab_dir"] = str(self.lab_dir)
        tmp = self.state_file.with_name(f".lab.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.state_file)

    @classmethod
    def load(cls, lab_dir: Path) -> "LabTopology | None":
        """The lab's topology, or None when there is no lab.json; completes (and saves) an older one."""
        path = lab_dir / "lab.json"
        if not path.exists():
            return None
        topology = cls._read(path)
        if topology.missing():
            # Under a lock so that two commands upgrading the same lab at once pick the same ports.
            with open(lab_dir / ".lab.json.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                topology = cls._read(path)
                if topology.fill_missing():
                    topology.save()
        return topology

    def missing(self) -> bool:
        """True when some component has no port yet."""
        tables = (self.pg_ports, self.redis_ports, self.app_ports, self.internal_ports)
        return (any(not table.get(region) for table in tables for region in REGIONS)
                or any(not self.home_pg_ports.get(region) for region in HOME_WRITER_REGIONS)
                or any(not self.shard_pg_ports.get(shard_key(home, region)) for home in HOME_WRITER_REGIONS
                       for region in REGIONS if region != home)
                or any(not self.wan_ports.get(name) for name in wan_link_names())
                or not self.wan_control_port or not self.moto_port)

    @classmethod
    def _read(cls, path: Path) -> "LabTopology":
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        data = {key: value for key, value in data.items() if key in known}  # from a newer version
        data["lab_dir"] = Path(data["lab_dir"])
        return cls(**data)
