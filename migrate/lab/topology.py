"""Where every lab component lives: folders and loopback ports, derived from the lab folder alone so
that every command (and every test) finds the same world. Persisted as `<lab>/lab.json`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from migrate.lab.pg import PgCluster

SOURCE_REGION = "us-east-1"
REGIONS = ("us-east-1", "ap-northeast-1", "eu-central-1")

# Inter-region round trips (ms), DESIGN §2.
RTT_MS = {
    frozenset({"ap-northeast-1", "us-east-1"}): 145.0,
    frozenset({"ap-northeast-1", "eu-central-1"}): 230.0,
    frozenset({"eu-central-1", "us-east-1"}): 90.0,
}


GEOGRAPHIES = ("apac", "na", "eu")
# The region nearest each player geography, and the median last-mile round trip to it (DESIGN §2).
GEO_NEAREST = {"apac": "ap-northeast-1", "na": "us-east-1", "eu": "eu-central-1"}
LAST_MILE_MS = {"apac": 25.0, "na": 25.0, "eu": 20.0}


def rtt_ms(a: str, b: str) -> float:
    """Round trip between two regions in ms (0 within one region)."""
    return 0.0 if a == b else RTT_MS[frozenset({a, b})]


def player_rtt_ms(geography: str, region: str) -> float:
    """A player's round trip to a region: last mile to the nearest region plus the inter-region hop."""
    return LAST_MILE_MS[geography] + rtt_ms(GEO_NEAREST[geography], region)


def default_lab_dir() -> Path:
    return Path(os.environ.get("MIGRATE_LAB_DIR", ".lab")).absolute()


@dataclass
class LabTopology:
    """Ports and folders of one lab. Port numbers are chosen once at `lab up` and kept in lab.json."""

    lab_dir: Path  # everything the lab writes lives under here; `lab down` removes it
    pg_ports: dict[str, int]  # region → port of that region's PostgreSQL (primary or standby)
    wan_ports: dict[str, int]  # "<from>-><to>:pg" → proxy port on the link from region <from> to <to>'s PostgreSQL
    wan_control_port: int  # the WAN proxy's control port (cut / restore / degrade links)
    players: int = 0  # how many synthetic players were seeded
    redis_ports: dict[str, int] = field(default_factory=dict)  # region → that region's Redis
    app_ports: dict[str, int] = field(default_factory=dict)  # region → that region's app (direct, no WAN)
    moto_port: int = 0  # the moto server standing in for Route 53 and S3 (0: not allocated)

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

    def wan_port(self, from_region: str, to_region: str) -> int:
        """Loopback port that reaches `to_region`'s PostgreSQL as seen from `from_region`."""
        return self.wan_ports[f"{from_region}->{to_region}:pg"]

    def player_port(self, geography: str, region: str) -> int:
        """Loopback port that reaches `region`'s app as seen from a player in `geography`."""
        return self.wan_ports[f"{geography}->{region}:api"]

    def redis_url(self, region: str) -> str:
        return f"redis://127.0.0.1:{self.redis_ports[region]}/0"

    @property
    def moto_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def save(self) -> None:
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["lab_dir"] = str(self.lab_dir)
        self.state_file.write_text(json.dumps(data, indent=2, sort_keys=True))

    @classmethod
    def load(cls, lab_dir: Path) -> "LabTopology | None":
        path = lab_dir / "lab.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["lab_dir"] = Path(data["lab_dir"])
        return cls(**data)
