"""The lab's synthetic players: the `players` table and a fast, deterministic, resumable COPY seeder.

Rows are a pure function of their id (generated in blocks of BLOCK ids, each block from its own
seeded random stream), so seeding 1..N in one go or in several interrupted runs gives the same table,
and two labs seeded with the same count hold byte-identical data."""

from __future__ import annotations

import random
from typing import Callable

import psycopg

# Player geographies → their home region (DESIGN §2 / §10): 60 % APAC, 25 % NA, 15 % EU.
HOME_REGIONS = ("ap-northeast-1", "us-east-1", "eu-central-1")
HOME_WEIGHTS = (60, 25, 15)

COLUMNS = ("id", "handle", "home_region", "level", "xp", "coins", "created_at", "updated_at", "profile")
BLOCK = 1000  # ids per random stream: the unit of determinism (a resumed run regenerates its block)
SEED = 20240601

from app.schema_baseline import PLAYERS_DDL as SCHEMA_SQL  # noqa: E402 — the app's baseline table

_WORDS = ("swift", "brave", "quiet", "lucky", "iron", "neon", "shadow", "pixel", "frost", "ember",
          "storm", "lunar", "solar", "rapid", "silent", "wild", "crimson", "azure", "golden", "ghost")
_NOUNS = ("fox", "tiger", "falcon", "wolf", "otter", "dragon", "panda", "raven", "koi", "lynx",
          "mantis", "yeti", "kraken", "owl", "bison", "gecko", "heron", "moose", "cobra", "crane")
_TITLES = ("rookie", "veteran", "champion", "legend", "explorer", "tactician", "collector", "speedrunner")
_LANGS = {"ap-northeast-1": ("ja", "ko", "zh", "en"), "us-east-1": ("en", "es", "pt"),
          "eu-central-1": ("de", "fr", "en", "pl")}
# Two years of sign-up days, pre-formatted once: building timestamps from strings is much faster
# than formatting a datetime per row.
_DAYS = []
for _y in (2023, 2024):
    for _m, _n in enumerate((31, 29 if _y % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), 1):
        _DAYS += [f"{_y}-{_m:02d}-{_d:02d}" for _d in range(1, _n + 1)]


def create_schema(dsn: str) -> None:
    """Create the players table (and its indexes) if absent; idempotent."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)


def _block_rows(block: int) -> list[str]:
    """COPY text lines (each ending in a newline) of ids block*BLOCK+1 .. (block+1)*BLOCK."""
    rng = random.Random(f"{SEED}:{block}")
    n = BLOCK
    first = block * BLOCK + 1
    regions = rng.choices(HOME_REGIONS, weights=HOME_WEIGHTS, k=n)
    words = rng.choices(_WORDS, k=n)
    nouns = rng.choices(_NOUNS, k=n)
    titles = rng.choices(_TITLES, k=n)
    days = rng.choices(range(len(_DAYS) - 30), k=n)
    r = rng.getrandbits
    out = []
    for i in range(n):
        pid = first + i
        region = regions[i]
        level = 1 + r(7) % 100
        bits = r(60)
        xp = level * 1000 + (bits & 0x3FF)
        coins = (bits >> 10) & 0xFFFFF
        secs = (bits >> 30) % 86400
        d = days[i]
        stamp = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}+00"
        langs = _LANGS[region]
        out.append(
            f"{pid}\t{words[i]}_{nouns[i]}_{pid}\t{region}\t{level}\t{xp}\t{coins}\t"
            f"{_DAYS[d]} {stamp}\t{_DAYS[d + (bits >> 50) % 30]} {stamp}\t"
            f'{{"title": "{titles[i]}", "avatar": {(bits >> 40) & 0xFF}, '
            f'"lang": "{langs[(bits >> 48) % len(langs)]}"}}\n')
    return out


def generate_rows(start: int, stop: int) -> str:
    """COPY text of ids start <= id < stop (ids start at 1); the same text for the same ids, always."""
    parts: list[str] = []
    block = (start - 1) // BLOCK
    while block * BLOCK + 1 < stop:
        rows = _block_rows(block)
        first = block * BLOCK + 1
        parts.extend(rows[max(0, start - first):max(0, stop - first)])
        block += 1
    return "".join(parts)


def seed_players(dsn: str, count: int, *, progress: Callable[[int, int | None], None] | None = None,
                 batch: int = 100_000) -> int:
    """Make players 1..count exist (creating the table if needed); returns how many rows were inserted.

    Resumable: it continues after the highest id <= count already present, one committed COPY per
    `batch` rows, so a run killed half way loses at most one batch and the next run finishes it."""
    create_schema(dsn)
    inserted = 0
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM players WHERE id <= %s", (count,)).fetchone()
        conn.commit()
        start = row[0] + 1
        total = max(0, count - start + 1)
        if progress:
            progress(0, total)
        cols = ", ".join(COLUMNS)
        while start <= count:
            stop = min(count + 1, start + batch)
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY players ({cols}) FROM STDIN") as copy:
                    chunk = 20 * BLOCK  # ~2 MB writes keep memory flat for any batch size
                    for lo in range(start, stop, chunk):
                        copy.write(generate_rows(lo, min(stop, lo + chunk)).encode())
            inserted += stop - start
            start = stop
            if progress:
                progress(inserted, total)
    return inserted
