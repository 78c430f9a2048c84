"""Three regions' game apps in this process, each on its own Redis, reaching each other through WAN
links (the lab's proxy, the regions' real round trips) and, optionally, reached by each player
geography through its own link: the world cross-region matchmaking is tested and benchmarked in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from app.config import Settings
from app.main import create_app
from migrate.lab.pg import free_port
from migrate.lab.served import serve
from migrate.lab.topology import link_rtt_ms
from migrate.lab.wan import LinkSpec, WanProxyThread
from migrate.names import GEOGRAPHIES, REGIONS


@dataclass(frozen=True)
class MatchWorld:
    urls: dict[str, str]  # region → its app, directly
    wan: WanProxyThread  # links "<region>-><region>" (peers) and "<geography>-><region>" (players)

    def player_url(self, geography: str, region: str) -> str:
        """`region`'s app as a player in `geography` reaches it."""
        return f"http://127.0.0.1:{self.wan.port(f'{geography}->{region}')}"


@contextlib.contextmanager
def three_regions(writer_dsn: str, redis_urls: dict[str, str], session_keys: dict[str, str],
                  **overrides) -> Iterator[MatchWorld]:
    """The three apps for the block (`overrides`: more Settings fields for each)."""
    ports = {r: free_port() for r in REGIONS}

    def link(name: str, target: str) -> LinkSpec:
        return LinkSpec(name=name, listen_port=0, target_host="127.0.0.1", target_port=ports[target],
                        rtt_ms=link_rtt_ms(f"{name}:api"))

    links = [link(f"{a}->{b}", b) for a in REGIONS for b in REGIONS if a != b]
    links += [link(f"{g}->{r}", r) for g in GEOGRAPHIES for r in REGIONS]
    with WanProxyThread(links) as wan, contextlib.ExitStack() as stack:
        urls = {}
        for region in REGIONS:
            peers = {p: f"http://127.0.0.1:{wan.port(f'{region}->{p}')}" for p in REGIONS if p != region}
            # one listener that is also the internal one: peers and players share it here (the public/internal
            # split is tested on its own, tests/app/test_uvicorn_smoke.py)
            settings = Settings(_env_file=None, region=region, writer_dsn=writer_dsn, redis_url=redis_urls[region],
                                session_keys=session_keys, peer_regions=peers, internal_port=ports[region],
                                **overrides)
            urls[region] = stack.enter_context(serve(create_app(settings), ports[region]))
        yield MatchWorld(urls, wan)
