"""The leaderboard checker (migrate/lab/checkers/leaderboard.py) accepts good histories and objects to bad ones."""

from __future__ import annotations

from migrate.lab.checkers.leaderboard import (Ack, Read, Sent, check_global_quiet, check_no_phantom, check_one_entry,
                                              check_strict, convergence, oracle)

US, AP = "us-east-1", "ap-northeast-1"


def regional(region: str, at: float, entries) -> Read:
    return Read("regional", region, at, at + 0.01, tuple(entries))


def test_a_read_sent_after_the_acknowledgement_must_show_it():
    acks = [Ack(1, US, 500, 10.0, 10.1)]
    assert check_strict(acks, [regional(US, 10.2, [(1, 500)]), regional(US, 10.05, [])]) == []  # before the ack: free
    missing = check_strict(acks, [regional(US, 10.2, [(2, 400)])])
    assert missing and "player 1 absent, but key 500" in missing[0]
    stale = check_strict(acks, [regional(US, 10.2, [(1, 300)])])
    assert stale and "player 1 at 300" in stale[0]


def test_a_full_board_of_better_entries_excuses_an_absent_score_but_a_lower_floor_does_not():
    acks = [Ack(1, US, 50, 10.0, 10.1)]
    better = [(100 + i, 1000 - i) for i in range(100)]
    assert check_strict(acks, [regional(US, 11.0, better)]) == []
    worse = better[:99] + [(999, 10)]
    assert check_strict(acks, [regional(US, 11.0, worse)])
    assert check_strict(acks, [regional(AP, 11.0, [])]) == []  # another region's board owes it nothing
    # equal keys rank by player id: a lower id at the floor outranks player 1's 50 only if it is lower than 1
    tie = better[:99] + [(0, 50)]
    assert check_strict(acks, [regional(US, 11.0, tie)]) == []
    assert check_strict(acks, [regional(US, 11.0, better[:99] + [(7, 50)])])


def test_an_entry_nobody_sent_is_a_phantom():
    sent = [Sent(1, 500, 10.0)]
    assert check_no_phantom(sent, [regional(US, 10.2, [(1, 500)])]) == []
    assert check_no_phantom(sent, [regional(US, 10.2, [(1, 501)])])
    assert check_no_phantom(sent, [regional(US, 9.0, [(1, 500)])])  # read answered before it was sent


def test_a_quiet_global_read_must_equal_the_oracle():
    acks = [Ack(1, US, 500, 10.0, 10.1), Ack(2, AP, 700, 10.0, 10.2), Ack(1, US, 600, 11.0, 11.1)]
    assert oracle(acks) == [(2, 700), (1, 600)]
    good = Read("global", AP, 20.0, 20.1, ((2, 700), (1, 600)))
    stale = Read("global", US, 20.0, 20.1, ((2, 700), (1, 500)))
    early = Read("global", US, 11.5, 11.6, ((2, 700), (1, 500)))  # inside the bound: allowed to lag
    assert check_global_quiet(acks, [good, early], bound_s=5.0) == []
    assert "differs from the oracle at rank 2" in check_global_quiet(acks, [stale], bound_s=5.0)[0]


def test_convergence_is_measured_per_region_from_the_acknowledgement():
    acks = [Ack(1, US, 500, 10.0, 10.0)]
    reads = [Read("global", AP, 10.5, 10.6, ()), Read("global", AP, 11.0, 11.1, ((1, 500),)),
             Read("global", US, 10.1, 10.2, ((1, 500),))]
    assert [round(d, 3) for d in sorted(convergence(acks, reads))] == [0.1, 1.0]


def test_a_player_on_two_boards_is_found():
    assert check_one_entry({US: [1, 2], AP: [3]}) == []
    assert check_one_entry({US: [1, 2], AP: [2]}) == ["player 2 has entries in ['ap-northeast-1', 'us-east-1']"]
