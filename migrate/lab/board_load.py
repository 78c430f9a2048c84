"""Leaderboard traffic against the three regions' apps, recorded for migrate/lab/checkers/leaderboard.py:
players submit scores at their home region, readers read every region's regional and global top-100
at once, and every request's send and answer time is kept (this process's clock)."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime
from dataclasses import dataclass, field

import httpx

from app.ranking import pack
from migrate.lab.checkers.leaderboard import Ack, Read, Sent


@dataclass
class BoardHistory:
    acks: list[Ack] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _submitter(url: str, region: str, tokens: dict[int, str], until: float, rng: random.Random,
               history: BoardHistory, max_score: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        players = sorted(tokens)
        while time.monotonic() < until:
            player = rng.choice(players)
            score = rng.randint(0, max_score)
            sent_at = time.time()
            try:
                answer = http.post("/v1/scores", json={"score": score},
                                   headers={"Authorization": f"Bearer {tokens[player]}"})
            except httpx.HTTPError:
                answer = None
            acked_at = time.time()
            # what the write stores if it is the player's best: the score at the server's whole second,
            # somewhere between sending and the answer (the phantom check needs every key it could be)
            sent = [Sent(player, pack(score, second), sent_at) for second in range(int(sent_at), int(acked_at) + 1)]
            with history.lock:
                history.sent.extend(sent)
                if answer is None or answer.status_code != 200:
                    history.failed += 1
                    continue
                body = answer.json()
                best_at = int(datetime.fromisoformat(body["best_achieved_at"].replace("Z", "+00:00")).timestamp())
                history.acks.append(Ack(player, region, pack(body["best_score"], best_at), sent_at, acked_at))


def _reader(url: str, region: str, kind: str, until: float, history: BoardHistory, pause_s: float) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.monotonic() < until:
            sent_at = time.time()
            try:
                answer = http.get(f"/v1/leaderboard/{kind}", params={"limit": 100})
            except httpx.HTTPError:
                answer = None
            answered_at = time.time()
            if answer is not None and answer.status_code == 200:
                body = answer.json()
                entries = tuple((e["player_id"], e["sort_key"]) for e in body["entries"])
                with history.lock:
                    history.reads.append(Read(kind, region, sent_at, answered_at, entries, body.get("complete", True)))
            time.sleep(pause_s)


def run_board_load(urls: dict[str, str], tokens: dict[str, dict[int, str]], *, seconds: float, quiet_s: float,
                   submitters_per_region: int = 2, read_pause_s: float = 0.05, seed: int = 1,
                   max_score: int = 1_000_000) -> BoardHistory:
    """Submit and read for `seconds`, then only read for `quiet_s` more; the recorded history.
    `tokens`: region → {player homed there: session token}."""
    history = BoardHistory()
    start = time.monotonic()
    threads = []
    for region, url in sorted(urls.items()):
        for i in range(submitters_per_region):
            rng = random.Random(f"{seed}-{region}-{i}")
            threads.append(threading.Thread(target=_submitter, args=(url, region, tokens[region], start + seconds,
                                                                     rng, history, max_score)))
        for kind in ("regional", "global"):
            threads.append(threading.Thread(target=_reader, args=(url, region, kind, start + seconds + quiet_s,
                                                                  history, read_pause_s)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return history
