"""The region-kill game day (DESIGN §6b), driven the way the incident commander drives it, and its figures.

`region_kill` plays it on a lab whose players are playing: the region's links all cut (`migrate lab
isolate`), `migrate region evacuate` as soon as its health check through its players' link fails, a
while on the fallback, the links back (`migrate lab reconnect`), `migrate region return`, a while back
home. Every `migrate` command goes through `run` (the operator's CLI, in its own process), so what is
measured is what an operator would see. `figures` turns that and the players' report into the numbers
the game day is judged on; `problems` names what broke a guarantee (none expected).

Used by the game-day test (tests/phases/test_evacuate_region.py) and bench/gameday.py."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import redis

from migrate.lab.checkers.leaderboard import check_one_entry
from migrate.lab.player_logs import read_range
from migrate.lab.topology import LabTopology

# `migrate ARGS` with --output json → the envelope's data; raises with the error line when it fails
RunCli = Callable[..., dict[str, Any]]


@dataclass
class GameDay:
    region: str
    geography: str
    killed_at: float = 0.0
    detected_at: float = 0.0
    evacuated_at: float = 0.0
    reconnected_at: float = 0.0
    returned_at: float = 0.0
    ended_at: float = 0.0
    evacuation: dict[str, Any] = field(default_factory=dict)  # the evacuate-region run (outputs per step)
    returned: dict[str, Any] = field(default_factory=dict)  # `migrate region return`'s result


def answers(t: LabTopology, geography: str, region: str) -> bool:
    """Whether `region`'s app answers /health with 200 through `geography`'s players' link (its health check)."""
    try:
        return httpx.get(f"{t.player_url(geography, region)}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"game day: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)
    return time.time()


def region_kill(t: LabTopology, run: RunCli, region: str, geography: str, *, before_s: float = 6.0,
                away_s: float = 8.0, after_s: float = 6.0, detect_timeout_s: float = 60.0,
                before_return: Callable[[], None] | None = None) -> GameDay:
    """Play the game day on `region` (whose players are `geography`) while the lab's players play;
    `before_return` runs once the region is reconnected, before the way back (e.g. to read what its
    lost writer recorded before the return removes it)."""
    day = GameDay(region, geography)
    time.sleep(before_s)
    day.killed_at = time.time()
    run("lab", "isolate", "--region", region)
    day.detected_at = _wait(lambda: not answers(t, geography, region), f"{region}'s health check to fail",
                            detect_timeout_s)
    day.evacuation = run("region", "evacuate", region, "--yes")
    day.evacuated_at = time.time()
    time.sleep(away_s)
    run("lab", "reconnect", "--region", region)
    day.reconnected_at = time.time()
    if before_return is not None:
        before_return()
    day.returned = run("region", "return", region, "--yes")
    day.returned_at = time.time()
    time.sleep(after_s)
    day.ended_at = time.time()
    return day


def failing_seconds(lab_dir: Path, geography: str, start: float, end: float) -> list[int]:
    """The whole seconds after `start` (up to `end`) in which some of the geography's players' requests failed."""
    return [s for s in range(int(end - start) + 1) if read_range(lab_dir, geography, start + s, start + s + 1).errors]


def boards(t: LabTopology) -> dict[str, list[int]]:
    """region → the players its leaderboard holds, for every region whose Redis answers."""
    out = {}
    for region, port in t.redis_ports.items():
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=1)
        try:
            out[region] = [int(m) for m in client.zrange(f"game:{region}:leaderboard", 0, -1)]
        except redis.RedisError:
            continue  # a region without a cache (not stood up)
        finally:
            client.close()
    return out


def figures(t: LabTopology, day: GameDay, load_report: dict[str, Any]) -> dict[str, Any]:
    """What the game day is judged on, from the players' logs and report, the regions' leaderboards
    and the commands' results."""
    failing = failing_seconds(t.lab_dir, day.geography, day.killed_at, day.ended_at)
    ledger = load_report["ledger"]
    took = day.evacuation.get("outputs", {}).get("take-home", {})
    return {
        "region": day.region, "geography": day.geography,
        "detected_after_s": round(day.detected_at - day.killed_at, 2),
        "evacuated_after_s": round(day.evacuated_at - day.killed_at, 2),
        "home_taken": bool(took.get("taken")), "home_epoch": took.get("epoch"),
        "origin_current_to": took.get("origin_current_to"),
        "seconds_with_failed_requests": len(failing),
        "first_and_last_failing_second": [min(failing), max(failing)] if failing else None,
        "failing_seconds_after_return": [s for s in failing if day.killed_at + s > day.returned_at + 1],
        "requests": load_report["requests"]["finished"],
        "requests_failed": sum(load_report["errors_by_kind"].values()),
        "requests_failed_by_kind": load_report["errors_by_kind"],
        "sessions_recovered": load_report.get("recovered", {}),
        "acknowledged_writes": ledger["acknowledged"],
        "acknowledged_writes_not_replicated": list(ledger.get("lost_writes", [])),
        "listed_by_the_return": day.returned.get("unreplicated"),
        "return_s": round(day.returned_at - day.reconnected_at, 2),
        # the home's leaderboard entries went to the fallback's board while it served them, then back:
        # re-homing keeps exactly one entry per player (checkers/leaderboard.py, check 4)
        "players_on_two_boards": check_one_entry(boards(t)),
    }


def problems(figs: dict[str, Any]) -> list[str]:
    """What broke a game-day guarantee: a lost write the return did not list, or one a region other
    than the lost one acknowledged; a player on two regions' boards; a request failed after the return."""
    found = []
    listed = set((figs.get("listed_by_the_return") or {}).get("players", []))
    for write in figs["acknowledged_writes_not_replicated"]:
        if write["kind"] != "profile" or write["player_id"] not in listed or write["region"] != figs["region"]:
            found.append(f"acknowledged write lost and not listed by the return: {write}")
    found += figs.get("players_on_two_boards", [])
    if figs["failing_seconds_after_return"]:
        found.append(f"{figs['geography']} requests failed after the return, in seconds "
                     f"{figs['failing_seconds_after_return']} after the kill")
    return found
