"""expand-schema crashed at every point, forward and during the rollback, each run resuming the last
(the shared harness), on a real lab. Its own module so that pytest-xdist gives it a worker of its
own: with the lifecycle module it was the suite's longest."""

from __future__ import annotations

from tests.phases import harness
from tests.phases.test_expand_schema import EXPAND, schema_lab  # noqa: F401 — the fixture, shared


def test_a_crash_at_every_point_resumes_to_the_same_verified_end(schema_lab):
    harness.crash_at_every_point_in_turn(EXPAND, schema_lab)


def test_a_crash_at_every_undo_point_rolls_back_again_to_nothing(schema_lab):
    harness.crash_at_every_undo_point_in_turn(EXPAND, schema_lab)
