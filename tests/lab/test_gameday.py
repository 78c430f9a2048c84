"""The game day's judge (migrate/lab/gameday.py `problems`) fed figures that break each guarantee, and
the links a region's isolation cuts."""

from __future__ import annotations

from migrate.lab.gameday import problems
from migrate.lab.isolation import region_links

TOKYO = "ap-northeast-1"


def figs(lost=(), listed=(), after_return=()):
    return {"region": TOKYO, "geography": "apac", "failing_seconds_after_return": list(after_return),
            "acknowledged_writes_not_replicated": list(lost),
            "listed_by_the_return": {"count": len(listed), "players": list(listed)}}


def lost(pid, kind="profile", region=TOKYO):
    return {"kind": kind, "player_id": pid, "region": region, "acked_at": "2026-12-05T00:00:00Z"}


def test_a_clean_game_day_has_no_problems():
    assert problems(figs()) == []
    assert problems(figs(lost=[lost(7)], listed=[7, 8])) == []  # listed, and lost: exactly what the return found


def test_a_lost_write_the_return_did_not_list_is_a_problem():
    assert "not listed" in problems(figs(lost=[lost(7)], listed=[8]))[0]
    assert problems(figs(lost=[lost(7)]))  # the return listed nothing at all


def test_a_lost_write_another_region_acknowledged_or_a_lost_score_is_a_problem():
    assert problems(figs(lost=[lost(7, region="us-east-1")], listed=[7]))
    assert problems(figs(lost=[lost(7, kind="score")], listed=[7]))


def test_a_player_on_two_boards_is_a_problem():
    two = figs()
    two["players_on_two_boards"] = ["player 7 has entries in ['ap-northeast-1', 'us-east-1']"]
    assert problems(two) == two["players_on_two_boards"]


def test_requests_failing_after_the_return_are_a_problem():
    assert "after the return" in problems(figs(after_return=[31, 32]))[0]


def test_isolating_a_region_cuts_every_link_to_or_from_it_and_no_other():
    links = region_links(TOKYO)
    assert "apac->ap-northeast-1:api" in links and "us-east-1->ap-northeast-1:pghome" in links
    assert "ap-northeast-1->us-east-1:pg" in links and "ap-northeast-1->eu-central-1:api" in links
    assert not [name for name in links if TOKYO not in name]
    assert "apac->us-east-1:api" not in links and "us-east-1->eu-central-1:pg" not in links
