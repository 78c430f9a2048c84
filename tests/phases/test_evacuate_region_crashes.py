"""evacuate-region through the shared crash harness: Tokyo cut off (every link), the evacuation killed
before, inside and after every step in turn, each run resuming the last, to the same verified end; then
Tokyo reconnected and the way back killed at every undo point, down to nothing of the evacuation left
(routing as it was, the stale writer gone; the epoch stays up: it never goes back)."""

from __future__ import annotations

from migrate.engine import services
from migrate.lab.isolation import isolate, reconnect
from migrate.lab.topology import SOURCE_REGION
from migrate.providers.lab.home_serving import LabHomeServing
from migrate.providers.lab.home_writers import ORIGIN, LabHomeWriters
from phases.evacuate_region import PHASE
from tests.phases import harness
from tests.phases.evacuation_world import REGION, apac_pool, tokyo_live  # noqa: F401 (the fixture)


def evacuated(lab) -> None:
    routing = apac_pool(lab).routing()
    assert REGION not in routing.latency and routing.weights.get(REGION, 0) == 0, routing
    assert SOURCE_REGION in routing.serving()
    hw = LabHomeWriters(lab)
    assert REGION not in hw.fenced(ORIGIN) and not any(hw.writes_routed(REGION).values())
    assert LabHomeServing(lab).home_epoch(REGION) == 2
    assert LabHomeServing(lab).serving(REGION) == SOURCE_REGION


def returned(lab) -> None:
    assert set(apac_pool(lab).routing().latency) == {REGION, SOURCE_REGION}
    assert not LabHomeWriters(lab).staged(REGION)  # the stale writer: fenced, listed, removed
    assert LabHomeServing(lab).home_epoch(REGION) == 2


EVACUATION = harness.PhaseUnderTest("evacuate-region", REGION, tuple(s.id for s in PHASE.steps(None)),
                                    evacuated, returned, undo_inside=("route-away", "take-home", "players-served"))


def test_a_crash_at_every_point_of_the_evacuation_and_of_the_way_back_resumes_to_the_same_end(tokyo_live):
    isolate(tokyo_live, REGION)
    harness.crash_at_every_point_in_turn(EVACUATION, tokyo_live)
    with harness.session() as session:  # `migrate status` lists the incident beside the programme
        rows = [r for r in services.status(session, with_replication=False).phases if r["quarter"] == "incident"]
    assert [(r["phase"], r["region"], r["status"]) for r in rows] == [("evacuate-region", REGION, "succeeded")]
    reconnect(tokyo_live, REGION)
    harness.crash_at_every_undo_point_in_turn(EVACUATION, tokyo_live)
