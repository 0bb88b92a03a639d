"""Schemathesis stateful runs against the live API: sequences of calls where one response feeds the next
(create a requirement, then read, comment on, move and edit it; create a metric, then record and read its
observations ...), as a signed-in lead. Every response must be no 5xx and conform to the schema; a
resource just created must be there, and one just deleted must be gone.

Schemathesis 4 infers the links between operations from the schema itself (a path parameter `{id}`
of /api/requirements/{id}/ is the `id` in the response of POST /api/requirements/), so the schema needs
no hand-written OpenAPI links; `test_the_schema_yields_links_for_stateful_runs` pins that it finds them."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from rest_framework.authtoken.models import Token
from rest_framework.utils.encoders import JSONEncoder
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "opsteam-hypothesis")

SCHEMA_URL = "/api/schema/?format=json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    use_after_free,
    ensure_resource_availability,
]
# Short in CI (a few dozen calls, seconds); `pytest --long` runs many more and longer scenarios.
# (scenarios, steps at most per scenario)
SHORT = (6, 8)
LONG = (150, 25)

# Built when the module is imported, as tests/workflows/test_api_schema.py does (schemathesis' lazy
# fixture loader does not work with pytest 9); the test checks the live server serves the same schema.
GENERATED_SCHEMA = json.loads(
    json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=JSONEncoder)
)


def api_schema() -> Any:
    """The API as the lead calls it, without the one call that would revoke the token in use, the
    perf app's load endpoints, and the history import (a file upload schemathesis cannot make valid)."""
    return (
        schemathesis.openapi.from_dict(copy.deepcopy(GENERATED_SCHEMA))
        .exclude(method="DELETE", path="/api/auth/token/")
        .exclude(path_regex=r"^/api/perf/")
    )


class LeadSession:
    """Where the live server is and the lead's token: set by the test before the machine runs."""

    base_url: ClassVar[str] = ""
    headers: ClassVar[dict[str, str]] = {}


def machine_class() -> Any:
    base = api_schema().as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        calls: ClassVar[list[tuple[str, str, int]]] = []

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": LeadSession.base_url, "headers": LeadSession.headers}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            Machine.calls.append((case.method, case.path, response.status_code))

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=LeadSession.headers)

    return Machine


LINK_RULE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE)_\w+___\d{3}_\w+__(GET|POST|PUT|PATCH|DELETE)_\w+_$")


def test_the_schema_yields_links_for_stateful_runs() -> None:
    # Each link from one operation's response to another operation's parameters is one rule of the
    # machine, named "<source>___<status>_<link>__<target>".
    rules = [name for name in dir(machine_class()) if LINK_RULE.match(name)]
    assert len(rules) >= 50, rules
    targets = {name.rsplit("__", 1)[1] for name in rules}
    assert {
        "POST_api_requirements_id_transition_",
        "POST_api_requirements_id_comments_",
        "PATCH_api_requirements_id_",
        "POST_api_metrics_id_observations_",
        "POST_api_goals_id_strategies_",
        "PATCH_api_tracking_events_id_",
    } <= targets


@pytest.fixture
def lead_session(live_server: Any, crew: Crew) -> None:
    for n in range(3):
        services.requirement_create(team=crew.team, actor=crew.ops, title=f"Requirement {n}", **READY_FIELDS)
    LeadSession.base_url = live_server.url
    LeadSession.headers = {"Authorization": f"Token {Token.objects.create(user=crew.lead).key}"}
    served = requests.get(f"{live_server.url}{SCHEMA_URL}", headers=LeadSession.headers, timeout=10)
    assert served.json() == GENERATED_SCHEMA


@pytest.mark.django_db(transaction=True)
def test_stateful_sequences_of_api_calls_answer_as_documented(lead_session: None, long_run: bool) -> None:
    machine = machine_class()
    scenarios, steps = LONG if long_run else SHORT
    machine.run(
        settings=settings(
            max_examples=scenarios,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    statuses = [status for _method, _path, status in machine.calls]
    # The run did reach the API and got past authentication and validation at least sometimes.
    assert len(statuses) >= 20
    assert any(200 <= status < 300 for status in statuses)
