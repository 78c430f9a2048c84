"""The evacuation world the evacuate-region test modules share: Tokyo stood up, serving APAC by latency
records (shift-traffic's end state), the schema expanded and Tokyo cut over; afterwards its links restored
and everything rolled back, the home's epoch back to 1 for the modules after."""

from __future__ import annotations

import os

import pytest

from migrate.engine import services
from migrate.lab import write_log
from migrate.lab.isolation import reconnect
from migrate.lab.topology import SOURCE_REGION
from migrate.lab.world import ensure_home_routing
from migrate.providers.aws.runtime import stand_up_providers
from migrate.providers.lab.runtime import LabRegionRuntime
from migrate.spec import load_spec
from tests.conftest import REPO, SPEC
from tests.phases import harness
from tests.phases.conftest import copy_journal

REGION = "ap-northeast-1"


def apac_pool(lab):
    spec = load_spec(SPEC)
    return stand_up_providers(spec, spec.environment("lab"), REPO, topology=lab)["dns"].pool("apac")


@pytest.fixture
def tokyo_live(expanded_journal, clean_lab):
    """Tokyo stood up, APAC routed to it by latency records (shift-traffic's end state, set directly),
    the schema expanded, every write each database accepts logged (the one-writer checker's history;
    the home writer inherits the log when it is staged) and Tokyo cut over; afterwards its links
    restored and everything rolled back."""
    lab = clean_lab
    copy_journal(expanded_journal, os.environ["MIGRATE_STATE"])  # the schema expanded once per module
    with harness.session() as session:
        assert services.run_phase(session, "stand-up-region", REGION).status == "succeeded"
    runtime = LabRegionRuntime(lab)
    apac_pool(lab).use_latency_routing({r: runtime.api_endpoint(r) for r in (REGION, SOURCE_REGION)})
    write_log.install(lab.primary().dsn())
    with harness.session() as session:
        assert services.run_phase(session, "cutover", REGION).status == "succeeded"
    yield lab
    reconnect(lab, REGION)
    with harness.session() as session:
        services.rollback_phase(session, "evacuate-region", REGION)
        services.rollback_phase(session, "cutover", REGION)
    write_log.uninstall(lab.primary().dsn())
    lab.home_routing_file.unlink(missing_ok=True)  # epoch 1 again for the modules after this one
    ensure_home_routing(lab)


