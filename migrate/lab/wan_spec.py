"""What one emulated WAN link is: a loopback listener, a target, and the delay/bandwidth it imposes.

A LinkSpec is plain data (JSON-serialisable) so the lab can write `links.json` for the proxy process
and send new links over the control protocol."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from migrate.errors import LabError

DEFAULT_JITTER_FRACTION = 0.05  # jitter when none is given: 5 % of the round trip


@dataclass
class LinkSpec:
    """One emulated link; every field is validated on construction (LabError on a bad value)."""

    name: str  # unique link id, e.g. "ap-northeast-1->us-east-1:pg"
    listen_port: int  # port on 127.0.0.1 that clients connect to (0: the OS picks; status reports it)
    target_host: str  # host every accepted connection is forwarded to
    target_port: int  # port every accepted connection is forwarded to
    rtt_ms: float  # round trip the link adds; each direction is delayed by rtt_ms / 2
    jitter_ms: float | None = None  # spread of each chunk's delay (uniform ±jitter/2); None → 5 % of rtt
    bandwidth_bytes_per_s: float | None = None  # cap per direction, shared by the link's connections; None = unlimited

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise LabError(f"WAN link name must be a non-empty string, got {self.name!r}")
        for port_field in ("listen_port", "target_port"):
            port = getattr(self, port_field)
            if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
                raise LabError(f"WAN link {self.name!r}: {port_field} must be a port number, got {port!r}")
        if not isinstance(self.target_host, str) or not self.target_host:
            raise LabError(f"WAN link {self.name!r}: target_host must be a non-empty string")
        if not _is_number(self.rtt_ms) or self.rtt_ms < 0:
            raise LabError(f"WAN link {self.name!r}: rtt_ms must be a number >= 0, got {self.rtt_ms!r}")
        if self.jitter_ms is None:
            self.jitter_ms = round(self.rtt_ms * DEFAULT_JITTER_FRACTION, 3)
        if not _is_number(self.jitter_ms) or self.jitter_ms < 0:
            raise LabError(f"WAN link {self.name!r}: jitter_ms must be a number >= 0, got {self.jitter_ms!r}")
        bw = self.bandwidth_bytes_per_s
        if bw is not None and (not _is_number(bw) or bw <= 0):
            raise LabError(f"WAN link {self.name!r}: bandwidth_bytes_per_s must be > 0 or null, got {bw!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that `LinkSpec.from_dict` turns back into an equal spec."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "LinkSpec":
        """Build a spec from a dict; unknown or missing keys raise LabError naming them."""
        if not isinstance(data, dict):
            raise LabError(f"a WAN link must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LabError(f"WAN link {data.get('name')!r}: unknown keys {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(known))}")
        required = ("name", "listen_port", "target_host", "target_port", "rtt_ms")
        missing = [key for key in required if key not in data]
        if missing:
            raise LabError(f"WAN link {data.get('name')!r}: missing keys {', '.join(missing)}")
        return cls(**data)

    def same_endpoints(self, other: "LinkSpec") -> bool:
        """True when both specs listen on the same port and forward to the same target."""
        return ((self.listen_port, self.target_host, self.target_port)
                == (other.listen_port, other.target_host, other.target_port))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
