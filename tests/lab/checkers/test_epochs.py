"""The stale-epoch checker (migrate/lab/checkers/epochs.py) accepts a good history and objects to a bad one."""

from __future__ import annotations

from migrate.lab.checkers.epochs import Bump, WriteTry, check_stale_epochs

AP, US = "ap-northeast-1", "us-east-1"
BUMP = [Bump(AP, 2, 100.0)]


def test_old_epoch_writes_before_the_bump_and_refused_ones_after_it_are_fine():
    writes = [WriteTry(1, AP, 1, AP, 99.0, True), WriteTry(1, AP, 1, AP, 101.0, False),
              WriteTry(1, AP, 2, US, 101.0, True), WriteTry(2, US, 1, US, 101.0, True)]
    assert check_stale_epochs(BUMP, writes) == []


def test_an_old_epoch_write_accepted_after_the_bump_is_found_wherever_it_landed():
    for region in (AP, US):
        found = check_stale_epochs(BUMP, [WriteTry(1, AP, 1, region, 100.5, True)])
        assert found == [f"{region} accepted a write for player 1 of home {AP} with epoch 1 at 100.500, "
                         "when epoch 2 was in force"]
