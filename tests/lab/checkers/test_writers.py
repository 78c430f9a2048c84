"""The one-writer checker over hand-made histories: a clean cutover and its rollback pass; each way a
second writer can appear (promoted unfenced, the origin unfenced too early, a write past a fence, a
write to a database that is no writer) is caught and named."""

from __future__ import annotations

from migrate.lab.checkers.writers import Accepted, Became, Fence, check_one_writer

HOMES = ("us-east-1", "ap-northeast-1", "eu-central-1")
US, AP, EU = HOMES
ORIGIN, TOKYO = "pg-us-east-1", "pg-ap-northeast-1-writer"


def cutover_of_tokyo() -> list:
    """Origin writes every home; Tokyo's home fenced at the origin; the staged Tokyo writer, fenced
    for every home it will not own, promoted; Tokyo's players write in Tokyo, the rest at the origin."""
    return [
        Became(ORIGIN, "primary", 0.0),
        Accepted(ORIGIN, 1, AP, 1.0), Accepted(ORIGIN, 2, US, 1.1),
        Fence(ORIGIN, AP, True, 2.0),
        Accepted(ORIGIN, 2, US, 2.1),  # other homes never stop
        Fence(TOKYO, US, True, 2.5), Fence(TOKYO, EU, True, 2.5),  # in its config before it can write
        Became(TOKYO, "primary", 3.0),
        Accepted(TOKYO, 1, AP, 3.2), Accepted(ORIGIN, 2, US, 3.3),
    ]


def rollback_of_tokyo() -> list:
    return [Fence(TOKYO, AP, True, 5.0), Fence(ORIGIN, AP, False, 6.0), Accepted(ORIGIN, 1, AP, 6.1)]


def test_a_clean_cutover_and_its_rollback_have_one_writer_per_home_throughout():
    assert check_one_writer(cutover_of_tokyo(), HOMES) == []
    assert check_one_writer(cutover_of_tokyo() + rollback_of_tokyo(), HOMES) == []


def test_a_writer_promoted_without_its_fences_is_a_second_writer_for_the_other_homes():
    history = [e for e in cutover_of_tokyo() if not isinstance(e, Fence) or e.database != TOKYO]
    found = check_one_writer(history, HOMES)
    assert any(f"home {US}: 2 databases writable at once from t=3.000" in v for v in found), found
    assert any(f"home {EU}" in v for v in found), found


def test_promoting_before_fencing_the_origin_overlaps():
    history = cutover_of_tokyo()
    history[history.index(Fence(ORIGIN, AP, True, 2.0))] = Fence(ORIGIN, AP, True, 3.5)  # fenced too late
    history = [e for e in history if not (isinstance(e, Accepted) and e.at == 3.2)]
    found = check_one_writer(history, HOMES)
    assert found == [f"home {AP}: 2 databases writable at once from t=3.000 ({TOKYO}, {ORIGIN})"], found


def test_unfencing_the_origin_before_fencing_the_new_writer_overlaps_on_rollback():
    bad_rollback = [Fence(ORIGIN, AP, False, 5.0), Fence(TOKYO, AP, True, 6.0)]
    found = check_one_writer(cutover_of_tokyo() + bad_rollback, HOMES)
    assert found == [f"home {AP}: 2 databases writable at once from t=5.000 ({TOKYO}, {ORIGIN})"], found


def test_a_write_that_slipped_past_a_fence_is_named_even_with_no_second_writer():
    history = cutover_of_tokyo() + [Accepted(ORIGIN, 1, AP, 2.2)]  # fenced at 2.0
    assert check_one_writer(history, HOMES) == [
        f"player 1 (home {AP}): a write accepted by {ORIGIN} at t=2.200 while it was fenced for {AP}"]


def test_a_write_to_a_database_that_is_no_writer_is_named():
    history = [Became(ORIGIN, "primary", 0.0), Accepted(TOKYO, 7, AP, 1.0), Became(ORIGIN, "gone", 2.0),
               Accepted(ORIGIN, 8, US, 3.0)]
    found = check_one_writer(history, HOMES)
    assert found == [f"player 7 (home {AP}): a write accepted by {TOKYO} at t=1.000 while it was not a writer",
                     f"player 8 (home {US}): a write accepted by {ORIGIN} at t=3.000 while it was not a writer"]


def test_events_at_one_instant_apply_in_the_order_given():
    same_instant = [Became(ORIGIN, "primary", 0.0), Fence(ORIGIN, AP, True, 1.0),
                    Fence(TOKYO, US, True, 1.0), Fence(TOKYO, EU, True, 1.0), Became(TOKYO, "primary", 1.0)]
    assert check_one_writer(same_instant, HOMES) == []
    reversed_order = same_instant[:1] + [Became(TOKYO, "primary", 1.0)] + same_instant[1:4]
    assert check_one_writer(reversed_order, HOMES)  # promoted first: for an instant, two writers everywhere
