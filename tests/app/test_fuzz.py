"""The OpenAPI spec fuzzed with schemathesis: whatever the generated input, valid or not, no 5xx.

Every operation is fuzzed four ways: schema-valid and schema-violating inputs (POSITIVE / NEGATIVE
generation), each without a token and with a valid token for player 1 (PATCH then targets player 1),
so the authenticated paths - profile writes into PostgreSQL, scores and tickets into Redis - see
fuzzed bodies too, not only 401s. (Schemathesis' own pytest integration, `from_fixture`, does not run
under pytest 9 in schemathesis 4.32, so the Hypothesis strategies are driven directly.)"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from app.main import create_app
from app.sessions import sign
from tests.app.conftest import AP, EU, US, settings_for

pytestmark = pytest.mark.lab

EXAMPLES = 15  # per operation × mode × auth: ~600 requests, well under a minute


@pytest.fixture
def fuzz_target(db, redis_url):
    config = settings_for(US, db, redis_url, home_routing={AP: US, EU: US},
                          peer_regions={EU: "http://127.0.0.1:1"}, peer_timeout_seconds=0.2)
    app = create_app(config)
    token, _ = sign(config, 1, US, now=time.time())
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield schema, {"Authorization": f"Bearer {token}"}
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()


def fuzz(operation, mode: GenerationMode, auth: dict | None) -> None:
    fixed = {}
    if auth is not None:
        fixed["headers"] = auth
        if operation.method.upper() == "PATCH" and "{player_id}" in operation.path:
            fixed["path_parameters"] = {"player_id": 1}

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    run()


def test_no_server_errors_on_any_operation(fuzz_target):
    schema, auth = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /v1/login", "PATCH /v1/players/{player_id}", "POST /v1/scores",
            "GET /v1/leaderboard/global", "DELETE /v1/matchmaking/tickets/{ticket_id}",
            "GET /v1/assets/{name}", "GET /health"} <= labels
    failures = []
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for with_auth in (None, auth):
                try:
                    fuzz(op, mode, with_auth)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # e.g. GET /health: no input to break
                except Exception as exc:  # collect every operation's failure, then report them all
                    failures.append(f"{op.method.upper()} {op.path} [{mode.value}, "
                                    f"{'token' if with_auth else 'no token'}]: {exc}")
    assert not failures, "\n\n".join(failures)
