"""The shadow diff of a list that lags within a bound (app/shadow/lists.py): the global leaderboard is
compared per player, a difference is explained only by a value newer than the bound allows the
candidate to have missed, and everything else is still a real mismatch. Pure cases first, then the
race that made the shadow gate fail at random, reproduced deterministically through the real mirror
over HTTP: a score lands after the candidate's cached copy of the board was taken."""

from __future__ import annotations

import time

import httpx
import pytest

from app.ranking import entry, pack
from app.shadow.lists import KeyedList, compare_keyed
from tests.app.conftest import US
from tests.app.test_shadow import APAC, _enable, _pair, _until

BOARD = KeyedList(key="player_id", version="achieved_at", order="-sort_key")
BOUND = 11.0
NOW = 1_800_000_000.0
OLD = NOW - 3600  # set long before the bound: any lag on it is a real difference
RECENT = NOW - 3  # set within the bound: a lagging cache may not have it yet


def board(*players: tuple[int, int, float], region: str = US) -> dict:
    """A global-board answer: (player, score, achieved_at) ranked as the app ranks them."""
    ranked = sorted(players, key=lambda p: (-pack(p[1], p[2]), p[0]))
    return {"complete": True, "entries": [entry(i + 1, pid, pack(score, at), region).model_dump(mode="json")
                                          for i, (pid, score, at) in enumerate(ranked)]}


def compare(primary, second, candidate, limit=100):
    return compare_keyed("entries", primary, second, candidate, BOARD, now=NOW, bound_seconds=BOUND,
                         limit=limit)


BEFORE = [(1, 900, OLD), (2, 800, OLD), (3, 700, OLD), (4, 600, OLD)]


# --- lag within the bound is explained ---------------------------------------------------------

def test_a_score_that_landed_after_the_candidates_cached_copy_is_explained():
    fresh = board(*BEFORE, (5, 850, RECENT))  # player 5 scored 3 s ago: every position below moves
    outcome = compare(fresh, fresh, board(*BEFORE))
    assert outcome.mismatched == () and outcome.explained == 1


def test_an_improved_best_the_candidate_has_not_seen_yet_is_explained():
    fresh = board((1, 900, OLD), (2, 950, RECENT), (3, 700, OLD))
    outcome = compare(fresh, fresh, board((1, 900, OLD), (2, 800, OLD), (3, 700, OLD)))
    assert outcome.mismatched == () and outcome.explained == 1


def test_a_player_pushed_off_a_full_list_by_a_recent_score_is_explained():
    fresh = board((1, 900, OLD), (5, 850, RECENT), (2, 800, OLD))  # limit 3: player 3 fell off
    outcome = compare(fresh, fresh, board((1, 900, OLD), (2, 800, OLD), (3, 700, OLD)), limit=3)
    assert outcome.mismatched == () and outcome.explained == 2  # 5 arrived, 3 pushed out


def test_an_entry_equal_to_either_primary_sample_needs_no_explanation():
    first, again = board(*BEFORE), board(*BEFORE[:3], (4, 650, RECENT))
    assert compare(first, again, board(*BEFORE)) == compare(first, again, board(*BEFORE[:3], (4, 650, RECENT)))
    assert compare(first, again, board(*BEFORE)).mismatched == ()


# --- real differences are still found ------------------------------------------------------------

def test_a_wrong_score_at_an_old_version_is_a_mismatch():
    wrong = board(*BEFORE[:2], (3, 701, OLD), BEFORE[3])
    outcome = compare(board(*BEFORE), board(*BEFORE), wrong)
    assert ("entries", "3", "score") in outcome.mismatched


def test_a_wrong_region_is_a_mismatch_even_when_everything_else_is_equal():
    fresh = board(*BEFORE)
    wrong = board(*BEFORE)
    wrong["entries"][1]["region"] = "ap-northeast-1"
    assert compare(fresh, fresh, wrong).mismatched == (("entries", "2", "region"),)


def test_a_player_missing_from_a_list_with_room_is_a_mismatch():
    fresh = board(*BEFORE)
    outcome = compare(fresh, fresh, board(*BEFORE[:2], BEFORE[3]))
    assert outcome.mismatched == (("entries", "3"),)


def test_a_player_missing_from_a_full_list_without_a_recent_score_to_push_it_out_is_a_mismatch():
    fresh = board(*BEFORE[:3])
    outcome = compare(fresh, fresh, board(BEFORE[0], BEFORE[1], BEFORE[3]), limit=3)
    assert set(outcome.mismatched) == {("entries", "3"), ("entries", "4")}


def test_a_candidate_inventing_a_player_at_an_old_version_is_a_mismatch():
    fresh = board(*BEFORE)
    assert compare(fresh, fresh, board(*BEFORE, (9, 10, OLD))).mismatched == (("entries", "9"),)


def test_a_duplicated_player_and_a_broken_rank_order_are_mismatches_of_the_answer_itself():
    fresh = board(*BEFORE)
    duplicated = board(*BEFORE)
    duplicated["entries"].append(dict(duplicated["entries"][-1], rank=5))
    assert ("entries", "$duplicate") in compare(fresh, fresh, duplicated).mismatched
    misranked = board(*BEFORE)
    misranked["entries"][0]["rank"], misranked["entries"][1]["rank"] = 2, 1
    assert ("entries", "$rank") in compare(fresh, fresh, misranked).mismatched
    unordered = board(*BEFORE)
    unordered["entries"][0]["sort_key"], unordered["entries"][1]["sort_key"] = (
        unordered["entries"][1]["sort_key"], unordered["entries"][0]["sort_key"])
    assert ("entries", "$order") in compare(fresh, fresh, unordered).mismatched


def test_the_bound_is_the_bound_a_difference_older_than_it_is_real():
    just_outside = NOW - BOUND - 2
    fresh = board(*BEFORE, (5, 850, just_outside))
    assert compare(fresh, fresh, board(*BEFORE)).mismatched == (("entries", "5"),)


def test_a_keyed_list_rule_is_validated():
    with pytest.raises(ValueError, match="version"):
        KeyedList.parse({"key": "player_id"})
    with pytest.raises(ValueError, match="default_limit"):
        KeyedList.parse({"key": "player_id", "version": "at", "default_limit": 0})
    assert KeyedList.parse({"key": "player_id", "version": "at"}).limit("/b?limit=7") == 7


# --- the race, through the real mirror over HTTP --------------------------------------------------

RULES = {"/board": {"staleness_seconds": BOUND, "ignore_fields": ["age_seconds"],
                    "keyed_lists": {"entries": {"key": "player_id", "version": "achieved_at",
                                                "order": "-sort_key"}}}}


def _mirror_board_once(tmp_path, primary_board: dict, candidate_board: dict, endpoints=RULES) -> dict:
    with _pair(tmp_path, lambda name, pid: primary_board, lambda name, pid: candidate_board) as (p, c, path):
        _enable(path, p, c, endpoints=endpoints)
        assert httpx.get(f"{p}/board", headers=APAC).status_code == 200
        report = _until(p, lambda r: r["totals"]["compared"] == 1)
    return report["endpoints"]["/board"]


def test_the_race_a_score_landing_after_the_candidates_cache_is_within_staleness_not_a_mismatch(tmp_path):
    """The primary's board already holds a score set 3 s ago; the candidate still serves its peer
    cache from before it (within the 11 s bound): both primary samples agree, the candidate differs at
    every position below the new score, and it is right for its bound."""
    now = time.time()
    before = [(1, 900, now - 3600), (2, 800, now - 3600), (3, 700, now - 3600)]
    stats = _mirror_board_once(tmp_path, board(*before, (5, 850, now - 3)), board(*before))
    assert (stats["compared"], stats["mismatched"], stats["within_staleness"]) == (1, 0, 1), stats


def test_the_same_race_without_the_keyed_rule_is_the_random_failure_the_gate_saw(tmp_path):
    """Compared by position, the same lag reads as a mismatch on entries.*: the failure fixed above."""
    now = time.time()
    before = [(1, 900, now - 3600), (2, 800, now - 3600), (3, 700, now - 3600)]
    stats = _mirror_board_once(tmp_path, board(*before, (5, 850, now - 3)), board(*before),
                               endpoints={"/board": {"staleness_seconds": BOUND}})
    assert stats["mismatched"] == 1 and "entries.*.player_id" in stats["mismatched_fields"], stats


def test_a_candidate_that_really_answers_a_wrong_score_is_still_a_mismatch_over_http(tmp_path):
    now = time.time()
    before = [(1, 900, now - 3600), (2, 800, now - 3600), (3, 700, now - 3600)]
    wrong = board(*before)
    wrong["entries"][2]["score"] = 701
    stats = _mirror_board_once(tmp_path, board(*before), wrong)
    assert stats["mismatched"] == 1 and stats["within_staleness"] == 0, stats
    assert stats["mismatched_fields"] == {"entries.3.score": 1}, stats
