"""The ledger's bookkeeping and verdicts, against tiny in-memory sources (the real writer and Redis
sources are exercised end to end in test_load_lab.py)."""

from __future__ import annotations

import pytest

from migrate.lab.load.ledger import Ledger, board_member, board_score


def profiles_from(stored: dict[int, object]):
    calls = []

    def read(ids, key):
        calls.append((list(ids), key))
        return {pid: stored[pid] for pid in ids if pid in stored}

    read.calls = calls
    return read


def scores_from(stored: dict[int, tuple[int | None, bool]]):
    return lambda players: {pid: stored.get(pid, (None, True)) for pid in players}


def acked_profile(ledger: Ledger, pid: int) -> str:
    value = ledger.next_profile_value(pid)
    ledger.profile_sent(pid, value)
    ledger.profile_acked(pid, value, "0/16B3748", "us-east-1")
    return value


def test_the_last_acknowledged_profile_value_is_found():
    ledger = Ledger("r1")
    acked_profile(ledger, 1)
    last = acked_profile(ledger, 1)
    source = profiles_from({1: last})
    result = ledger.check(source, None)
    verdict = tuple(result[k] for k in ("acknowledged", "checked", "found", "lost", "unknown"))
    assert verdict == (2, 1, 1, 0, 0)
    assert source.calls == [([1], "load_r1")]


def test_an_older_value_or_a_missing_row_is_lost_with_examples():
    ledger = Ledger("r1")
    older = acked_profile(ledger, 1)
    last = acked_profile(ledger, 1)
    acked_profile(ledger, 2)
    result = ledger.check(profiles_from({1: older}), None)  # player 2's row is gone
    assert (result["found"], result["lost"], result["unknown"]) == (0, 2, 0)
    first, second = result["examples"]
    assert first["player_id"] == 1 and first["expected"] == last and first["stored"] == older
    assert first["lsn"] == "0/16B3748" and first["region"] == "us-east-1"
    assert second["player_id"] == 2 and second["row_missing"] is True


def test_a_value_from_a_write_without_an_answer_is_unknown_never_lost():
    ledger = Ledger("r1")
    acked_profile(ledger, 1)
    later = ledger.next_profile_value(1)
    ledger.profile_sent(1, later)
    ledger.profile_unanswered(1, later)  # timeout: it may have committed after all
    still_flying = ledger.next_profile_value(2)
    acked_profile(ledger, 2)
    ledger.profile_sent(2, still_flying)  # in flight when the run ended
    result = ledger.check(profiles_from({1: later, 2: still_flying}), None)
    assert (result["found"], result["lost"], result["unknown"]) == (0, 0, 2)
    assert result["unacknowledged"] == 2
    assert ledger.may_have_changed(1) and ledger.may_have_changed(2)


def test_a_refused_write_is_not_an_unknown():
    ledger = Ledger("r1")
    last = acked_profile(ledger, 1)
    refused = ledger.next_profile_value(1)
    ledger.profile_sent(1, refused)
    ledger.profile_refused(1, refused)  # a 4xx: nothing written
    result = ledger.check(profiles_from({1: refused}), None)  # yet the writer holds it: that is a loss
    assert (result["found"], result["lost"], result["unknown"], result["refused"]) == (0, 1, 0, 1)
    assert ledger.check(profiles_from({1: last}), None)["found"] == 1
    assert not ledger.may_have_changed(1)


def test_an_unreachable_writer_makes_profile_writes_unknown():
    ledger = Ledger("r1")
    acked_profile(ledger, 1)

    def broken(ids, key):
        raise ConnectionError("writer down")

    result = ledger.check(broken, None)
    assert (result["found"], result["lost"], result["unknown"]) == (0, 0, 1)
    assert result["unknown_reasons"] == {"writer unreachable: ConnectionError": 1}


def test_scores_are_checked_against_the_best_acknowledged():
    ledger = Ledger("r1")
    for pid, scores in {1: [500, 900, 100], 2: [300], 3: [700], 4: [50]}.items():
        for score in scores:
            ledger.score_sent(pid)
            ledger.score_acked(pid, score, "us-east-1")
    ledger.score_sent(4)
    ledger.score_unanswered(4)  # can only raise the stored best: it never excuses a lower one
    stored = {1: (900, True),  # exactly the best
              2: (1000, True),  # higher (an earlier run, or an unanswered write): still found
              3: (600, True),  # lower than acknowledged: lost
              4: (None, False)}  # absent where we could look, one Redis did not answer: unknown
    result = ledger.check(None, scores_from(stored))
    score = result["by_kind"]["score"]
    assert (score["acknowledged"], score["checked"], score["found"], score["lost"], score["unknown"]) == (6, 4, 2, 1, 1)
    assert result["examples"] == [{"kind": "score", "player_id": 3, "expected_best_at_least": 700,
                                   "stored_best": 600, "region": "us-east-1",
                                   "acked_at": result["examples"][0]["acked_at"]}]
    assert result["unacknowledged"] == 1


def test_no_sources_means_unknown_not_found():
    ledger = Ledger("r1")
    acked_profile(ledger, 1)
    ledger.score_sent(1)
    ledger.score_acked(1, 5, "us-east-1")
    result = ledger.check(None, None)
    assert (result["checked"], result["found"], result["lost"], result["unknown"]) == (2, 0, 0, 2)


def test_an_empty_ledger_checks_nothing():
    result = Ledger("r1").check(profiles_from({}), scores_from({}))
    assert (result["acknowledged"], result["checked"], result["lost"], result["examples"]) == (0, 0, 0, [])


@pytest.mark.parametrize("score", [0, 1, 12345, 8_388_607])
def test_board_encoding_matches_the_app(score):
    from app.ranking import member, pack

    packed = pack(score, 1_750_000_000)
    assert board_score(float(-packed)) == score
    assert board_member(42) == member(42)
