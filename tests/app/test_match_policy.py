"""The rules of cross-region matches (app/match_policy.py): minimax hosts, widening by each player's
own round trips, and groups that span regions."""

from __future__ import annotations

from app.match_policy import Candidate, choose, first_choice, minimax_host, rtt_limit

REGIONS = ("ap-northeast-1", "eu-central-1", "us-east-1")
# a player's round trip = last mile + the inter-region round trip (DESIGN §2)
APAC = {"ap-northeast-1": 25.0, "us-east-1": 170.0, "eu-central-1": 255.0}
EU = {"eu-central-1": 20.0, "us-east-1": 110.0, "ap-northeast-1": 250.0}
NA = {"us-east-1": 25.0, "eu-central-1": 115.0, "ap-northeast-1": 170.0}


def ticket(tid: str, owner: str, rtt: dict, waited: float, now: float = 1000.0) -> Candidate:
    return Candidate(tid, int(tid.strip("t") or 0), owner, now - waited, rtt)


def test_the_host_minimises_the_worst_players_round_trip_not_the_average():
    # Tokyo and Frankfurt players: us-east-1 is worst 170 ms; Tokyo would be 250 for the EU player
    assert minimax_host([APAC, EU], REGIONS) == ("us-east-1", 170.0)
    # an average picks differently: a (10, 300) host averages 155, a (160, 160) host 160
    skewed = [{"a-b-1": 10.0, "c-d-1": 160.0}, {"a-b-1": 300.0, "c-d-1": 160.0}]
    assert minimax_host(skewed, ["a-b-1", "c-d-1"]) == ("c-d-1", 160.0)


def test_ties_go_to_the_smaller_sum_then_the_name_and_unmeasured_regions_never_host():
    assert minimax_host([{"x-a-1": 50.0, "x-b-1": 50.0}, {"x-a-1": 50.0, "x-b-1": 40.0}], ["x-a-1", "x-b-1"]) == ("x-b-1", 50.0)
    assert minimax_host([{"x-a-1": 50.0, "x-b-1": 50.0}] * 2, ["x-b-1", "x-a-1"]) == ("x-a-1", 50.0)
    assert minimax_host([{"x-a-1": 50.0}, {"x-b-1": 10.0}], ["x-a-1", "x-b-1"]) is None


def test_the_limit_widens_with_the_wait():
    assert [rtt_limit(w) for w in (0.0, 0.99, 1.0, 2.9, 3.0, 5.0, 6.0, 600.0)] == [
        None, None, 50.0, 50.0, 100.0, 100.0, 200.0, 200.0]


def test_no_cross_region_match_before_the_first_wait_and_each_players_own_limit_counts():
    other = ticket("t2", "eu-central-1", EU, waited=10.0)  # ≤ 200 ms
    assert choose(ticket("t1", "us-east-1", NA, waited=0.5), [other], 2, 1000.0, REGIONS) is None
    # NA waited 1 s (≤ 50 ms): hosted in us-east-1 it is 25 ms away, and the EU player (110 ms) accepts 200
    found = choose(ticket("t1", "us-east-1", NA, waited=1.0), [other], 2, 1000.0, REGIONS)
    assert found is not None and (found.host, found.worst_rtt_ms) == ("us-east-1", 110.0)
    assert {c.ticket_id for c in found.tickets} == {"t1", "t2"}
    # the EU player after 3 s accepts ≤ 100 ms: no host is within it for both yet
    young = ticket("t2", "eu-central-1", EU, waited=3.0)
    assert choose(ticket("t1", "us-east-1", NA, waited=10.0), [young], 2, 1000.0, REGIONS) is None


def test_the_nearest_players_to_the_host_are_taken_and_groups_must_span_regions():
    anchor = ticket("t1", "us-east-1", NA, waited=7.0)
    same_region = ticket("t2", "us-east-1", NA, waited=7.0)
    far = ticket("t3", "ap-northeast-1", APAC, waited=7.0)
    near = ticket("t4", "eu-central-1", EU, waited=7.0)
    assert choose(anchor, [same_region], 2, 1000.0, REGIONS) is None  # the local queue's job
    found = choose(anchor, [far, near], 2, 1000.0, REGIONS)
    assert [c.ticket_id for c in found.tickets] == ["t1", "t4"] and found.host == "us-east-1"


def test_a_group_is_refused_when_its_minimax_host_breaks_one_players_limit():
    # judged at the host it would really get: A accepts 50 ms; the minimax host of (A, B) is x-b-1 where
    # A's round trip is 60
    a = Candidate("t1", 1, "x-a-1", 1000.0 - 1.5, {"x-a-1": 40.0, "x-b-1": 60.0})
    b = Candidate("t2", 2, "x-b-1", 1000.0 - 10.0, {"x-a-1": 150.0, "x-b-1": 10.0})
    assert choose(a, [b], 2, 1000.0, ["x-a-1", "x-b-1"]) is None


def test_an_unmatchable_oldest_ticket_does_not_hold_up_the_younger_ones():
    # us-east-1's queue: an APAC player it still homes (waited 4 s: ≤ 100 ms) and an NA player (3.5 s)
    stuck = ticket("t1", "us-east-1", APAC, waited=4.0)
    younger = ticket("t2", "us-east-1", NA, waited=3.5)
    eu = ticket("t3", "eu-central-1", EU, waited=10.0)  # ≤ 200 ms
    assert choose(stuck, [eu], 2, 1000.0, REGIONS) is None  # no host within 100 ms of the APAC player
    found = first_choice([stuck, younger], [eu], 2, 1000.0, REGIONS)
    assert found is not None and {c.ticket_id for c in found.tickets} == {"t2", "t3"} and found.host == "us-east-1"
    # the oldest that can match goes first: with an NA player who waited 10 s the APAC player is hosted in
    # Tokyo (170 ms for the NA player, within its 200; ties with us-east-1 go by name)
    na = ticket("t4", "eu-central-1", NA, waited=10.0)
    found = first_choice([younger, stuck], [na, eu], 2, 1000.0, REGIONS)
    assert [c.ticket_id for c in found.tickets] == ["t1", "t4"] and found.host == "ap-northeast-1"
