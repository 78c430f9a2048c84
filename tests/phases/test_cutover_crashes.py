"""cutover crashed at every point, forward and during the rollback, through the shared harness, on a
real lab: each resume reaches the same verified end (Tokyo writes its home, the origin keeps the way
back), each rollback reaches nothing left."""

from __future__ import annotations

from tests.phases import harness
from tests.phases.cutover_world import CUTOVER, expanded_lab  # noqa: F401 (a fixture)


def test_a_crash_at_every_point_resumes_to_the_same_verified_end(expanded_lab):
    harness.crash_at_every_point_in_turn(CUTOVER, expanded_lab)


def test_a_crash_at_every_undo_point_rolls_back_again_to_nothing(expanded_lab):
    harness.crash_at_every_undo_point_in_turn(CUTOVER, expanded_lab)
