"""The match checker (migrate/lab/checkers/matches.py) accepts a good history and objects to each bad one."""

from __future__ import annotations

import json

from migrate.lab.checkers.matches import Recorded, Seen, check_matches

AP, EU, US = "ap-northeast-1", "eu-central-1", "us-east-1"
REGIONS = (AP, EU, US)
NA_RTT = {US: 25.0, EU: 115.0, AP: 170.0}
EU_RTT = {EU: 20.0, US: 110.0, AP: 250.0}
WIDENING = [[1.0, 50.0], [3.0, 100.0], [6.0, 200.0]]


def cross(claim: str, host: str = US, tickets=(("t1", US, NA_RTT), ("t2", EU, EU_RTT)), chosen_at=110.0):
    match = {"match_id": f"x-{claim}", "kind": "cross", "host": host, "worst_rtt_ms": 110.0, "chosen_at": chosen_at,
             "widening": WIDENING, "tickets": [{"ticket_id": t, "owner": o, "player_id": "1", "created_at": 100.0,
                                                 "rtt_ms": r} for t, o, r in tickets]}
    return json.dumps(match)


def good(claim: str = "c-us-east-1-000000000001") -> list[Recorded]:
    return [
        Recorded(US, "1-0", "claimed", {"claim_id": claim, "tickets": '["t1"]'}),
        Recorded(EU, "1-0", "claimed", {"claim_id": claim, "tickets": '["t2"]'}),
        Recorded(US, "2-0", "decided", {"claim_id": claim, "outcome": "committed", "match": cross(claim[2:])}),
        Recorded(US, "3-0", "committed", {"claim_id": claim, "tickets": '["t1"]'}),
        Recorded(EU, "2-0", "committed", {"claim_id": claim, "tickets": '["t2"]'}),
    ]


def local(mid: str, tickets: list[str], host: str = US, rtt=None) -> Recorded:
    match = {"match_id": mid, "kind": "local", "host": host, "tickets": [
        {"ticket_id": t, "owner": US, "player_id": "9", "created_at": "100", "rtt_ms": rtt or False} for t in tickets]}
    return Recorded(US, "9-0", "matched", {"match": json.dumps(match)})


def test_a_good_history_passes():
    history = good() + [local("m-us-east-1-1", ["t3", "t4"])]
    assert check_matches(history, [Seen("t1", "x-us-east-1-000000000001"), Seen("t3", "m-us-east-1-1")], REGIONS) == []


def test_a_ticket_in_two_matches_is_found():
    history = good() + [local("m-us-east-1-1", ["t2", "t4"])]
    assert any("t2 is in two matches" in v for v in check_matches(history, regions=REGIONS))


def test_a_player_who_saw_a_match_that_was_not_formed_for_the_ticket_is_found():
    assert any("saw ticket t1 in match m-x" in v for v in check_matches(good(), [Seen("t1", "m-x")], REGIONS))


def test_a_commit_without_every_claim_is_found():
    history = [r for r in good() if not (r.region == EU and r.event == "claimed")]
    assert any("without claiming ['t2']" in v for v in check_matches(history, regions=REGIONS))


def test_an_owner_that_matched_under_an_aborted_claim_or_released_a_committed_one_is_found():
    claim = "c-us-east-1-000000000002"
    aborted = [Recorded(US, "1-0", "decided", {"claim_id": claim, "outcome": "aborted", "match": ""}),
               Recorded(EU, "1-0", "committed", {"claim_id": claim, "tickets": '["t9"]'})]
    assert any("which was aborted" in v for v in check_matches(aborted, regions=REGIONS))
    released = good() + [Recorded(EU, "3-0", "released", {"claim_id": "c-us-east-1-000000000001", "tickets": '["t2"]'})]
    assert any("released tickets ['t2'] of committed" in v for v in check_matches(released, regions=REGIONS))


def test_a_host_that_is_not_the_minimax_is_found():
    claim = "c-us-east-1-000000000003"
    history = [Recorded(US, "1-0", "claimed", {"claim_id": claim, "tickets": '["t1"]'}),
               Recorded(EU, "1-0", "claimed", {"claim_id": claim, "tickets": '["t2"]'}),
               Recorded(US, "2-0", "decided", {"claim_id": claim, "outcome": "committed",
                                               "match": cross(claim[2:], host=EU)})]
    assert any("minimax host is us-east-1" in v for v in check_matches(history, regions=REGIONS))
    # a local match is held to it too once its players measured every region
    assert any("minimax host" in v for v in check_matches([local("m-1", ["a", "b"], host=AP, rtt=NA_RTT)],
                                                          regions=REGIONS))


def test_a_player_taken_beyond_their_own_limit_is_found():
    claim = "c-us-east-1-000000000004"
    history = [Recorded(US, "1-0", "claimed", {"claim_id": claim, "tickets": '["t1", "t2"]'}),
               Recorded(US, "2-0", "decided", {"claim_id": claim, "outcome": "committed",
                                               "match": cross(claim[2:], chosen_at=102.0)})]
    # after 2 s the EU player accepts 50 ms, and us-east-1 is 110 away
    assert any("took ticket t2 to us-east-1 (110.0 ms) beyond its limit (50.0 ms" in v
               for v in check_matches(history, regions=REGIONS))
