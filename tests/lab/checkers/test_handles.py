"""The handle checker (migrate/lab/checkers/handles.py) objects to every bad history it is fed; the
good histories it passes come from tests/app/test_signup.py's race through the WAN."""

from __future__ import annotations

from migrate.lab.checkers.handles import SignUpAttempt, check_handles

AP, EU = "ap-northeast-1", "eu-central-1"


def _a(region, handle, start, end, status, pid=None) -> SignUpAttempt:
    return SignUpAttempt(region, handle, start, end, status, pid)


def test_the_checker_objects_to_a_handle_won_twice():
    history = [_a(AP, "dup", 0, 1, 201, 7), _a(EU, "dup", 0, 1, 201, 8)]
    problems = check_handles(history, {"dup": 7}, {7: "dup", 8: "dup"})
    assert any("won 2 times" in p for p in problems)
    assert any("winner 8" in p for p in problems)


def test_the_checker_objects_to_a_refusal_nobody_explains_and_to_one_made_while_the_name_was_free():
    assert any("nobody holds it" in p for p in check_handles([_a(AP, "ghost", 0, 1, 409)], {}, {}))
    early = [_a(EU, "n", 0.0, 0.5, 409), _a(AP, "n", 1.0, 2.0, 201, 9)]
    assert any("refused while free" in p for p in check_handles(early, {"n": 9}, {9: "n"}))
    assert check_handles([_a(AP, "old", 0, 1, 409)], {"old": 1}, {1: "old"}, owned_before=frozenset({"old"})) == []


def test_the_checker_objects_to_an_attempt_without_a_definite_answer():
    problems = check_handles([_a(AP, "x", 0, 1, None), _a(EU, "y", 0, 1, 500)], {}, {})
    assert len([p for p in problems if "no definite answer" in p]) == 2
