"""What mirroring costs the live game: live read latency at the source app with the shadow mirror
off, mirroring every read, and mirroring at the shipped sample rate.

The live answer is sent before any mirror work starts, but the mirror shares the source app's event
loop, and its second primary sample is one more request for the source to serve. The three modes
are interleaved in blocks (off, all, shipped, off, all, shipped) so that drift on a shared machine
hits them alike; the figures that compare are the ratios to "off" within this one run.

Needs a lab with the target stood up and attached (the candidate must answer):

    .venv/bin/migrate lab up --players 100000
    .venv/bin/migrate phase run stand-up-region --region ap-northeast-1 --yes
    .venv/bin/migrate phase run attach-secondary --region ap-northeast-1 --yes
    .venv/bin/python -m bench.shadow_overhead --out bench/results/shadow-overhead.json"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx

from app.shadow import player_sampled
from migrate.lab.machine import describe_machine
from migrate.lab.topology import SOURCE_REGION, LabTopology, default_lab_dir
from migrate.providers.lab.shadow import LabShadowMirror
from migrate.providers.shadow import IgnoreRules
from migrate.spec import load_spec

TARGET, GEOGRAPHY = "ap-northeast-1", "apac"
ROUTE = "/v1/players/{player_id}"


def live_latencies(url: str, ids: list[int], every_s: float) -> list[float]:
    """Live reads paced at a steady rate (the mirror works alongside them, not after them), in ms."""
    out = []
    with httpx.Client(base_url=url, headers={"X-Player-Geo": GEOGRAPHY}, timeout=10) as client:
        next_at = time.perf_counter()
        for pid in ids:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += every_s
            started = time.perf_counter()
            client.get(f"/v1/players/{pid}").raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def _summary(values: list[float], off: list[float] | None) -> dict:
    q = statistics.quantiles(values, n=100)
    out = {"count": len(values), "p50_ms": round(statistics.median(values), 3), "p95_ms": round(q[94], 3)}
    if off is not None:
        q_off = statistics.quantiles(off, n=100)
        out["p50_ratio_to_off"] = round(out["p50_ms"] / statistics.median(off), 3)
        out["p95_ratio_to_off"] = round(out["p95_ms"] / q_off[94], 3)
    return out


def measure(lab: LabTopology, shipped_rate: float, reads: int, rate: float, rounds: int) -> dict:
    mirror = LabShadowMirror(lab)
    url, ids = lab.app_url(SOURCE_REGION), list(range(1, reads + 1))
    latencies: dict[str, list[float]] = {"off": [], "all": [], "shipped": []}
    lost = 0
    try:
        for block, mode in enumerate(["off", "all", "shipped"] * rounds):
            if mode == "off":
                latencies[mode] += live_latencies(url, ids, 1 / rate)
                continue
            sample_rate = 1.0 if mode == "all" else shipped_rate
            mirror.start_mirror(SOURCE_REGION, TARGET, GEOGRAPHY, sample_rate, True, IgnoreRules(),
                                mirror_id=f"overhead-{block}")
            latencies[mode] += live_latencies(url, ids, 1 / rate)
            deadline = time.monotonic() + 30
            while mirror.mirror_report(SOURCE_REGION).queue_depth and time.monotonic() < deadline:
                time.sleep(0.1)
            ours = next(e for e in mirror.mirror_report(SOURCE_REGION).endpoints if e.route == ROUTE)
            if ours.sampled < sum(player_sampled(str(pid), sample_rate) for pid in ids):
                raise SystemExit(f"the mirror did not sample every chosen read in block {block}")
            lost += ours.lost
            mirror.stop_mirror(SOURCE_REGION)
    finally:
        mirror.stop_mirror(SOURCE_REGION)
    off = latencies["off"]
    return {"route": f"GET {ROUTE} at {SOURCE_REGION}", "reads_per_second": rate, "lost_by_mirror": lost,
            "off": _summary(off, None), "every_read_mirrored": _summary(latencies["all"], off),
            f"sample_rate_{shipped_rate:g}": _summary(latencies["shipped"], off)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=Path("migration.toml"))
    parser.add_argument("--reads", type=int, default=100, help="reads per block")
    parser.add_argument("--rate", type=float, default=25.0, help="reads per second")
    parser.add_argument("--rounds", type=int, default=2, help="blocks of each mode")
    parser.add_argument("--out", type=Path, default=Path("bench/results/shadow-overhead.json"))
    args = parser.parse_args(argv)
    shipped = load_spec(args.spec).shadow.sample_rate  # production's rate, not the lab's
    result = {"command": "python -m bench.shadow_overhead " + " ".join(argv or []),
              "machine": describe_machine(),
              **measure(LabTopology.load(default_lab_dir()), shipped, args.reads, args.rate, args.rounds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
