"""opsteam.db.server_prepared: within the block PostgreSQL prepares each statement once per connection;
outside it nothing is prepared, and the connection is left as Django made it, also after an error. The
API's transition runs in such a block."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from opsteam.db import server_prepared
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services
from workflows.models import Requirement, StageEvent

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
)


def prepared() -> set[str]:
    """The statements prepared on this connection (read without preparing anything)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def client_for(user: Any) -> APIClient:
    client = APIClient()
    token, _created = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@postgres_only
def test_statements_in_the_block_are_prepared_once_and_the_rest_never(crew: Crew) -> None:
    outside = Requirement.objects.filter(team=crew.team, title="outside")
    inside = Requirement.objects.filter(team=crew.team, title__startswith="inside")
    for _ in range(3):
        list(outside)
    assert not any("outside" in sql for sql in prepared())

    with server_prepared():
        for _ in range(3):
            list(inside)
    found = [sql for sql in prepared() if '"workflows_requirement"."title"::text LIKE' in sql]
    assert len(found) == 1 and "$2" in found[0]  # one statement, parameters bound on the server
    assert not connection.features.uses_server_side_binding

    list(outside)
    assert not any("outside" in sql for sql in prepared())


@postgres_only
def test_the_connection_is_left_as_django_made_it_even_after_an_error() -> None:
    raw = connection.connection
    factory, threshold = raw.cursor_factory, raw.prepare_threshold

    with pytest.raises(ZeroDivisionError), server_prepared():
        assert connection.connection.cursor_factory is not factory
        with CaptureQueriesContext(connection) as seen:
            Requirement.objects.filter(title="shown").count()
        assert "'shown'" in seen.captured_queries[0]["sql"]  # the SQL is shown with its values
        1 / 0  # noqa: B018

    assert (raw.cursor_factory, raw.prepare_threshold) == (factory, threshold)


def test_elsewhere_the_block_changes_nothing(crew: Crew) -> None:
    with server_prepared():
        assert Requirement.objects.filter(team=crew.team).count() == 0


def test_moves_through_the_api_in_the_block_answer_as_before(crew: Crew) -> None:
    """Forward, a conflict (whose extra read runs in the block too), and a close: the statements of
    each path work with server-side parameters, and the connection is client-binding afterwards."""
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    ops, lead = client_for(crew.ops), client_for(crew.lead)
    url = f"/api/requirements/{requirement.pk}/transition/"
    factory = connection.connection.cursor_factory if connection.vendor == "postgresql" else None

    for _ in range(2):  # the second run executes what the first prepared
        moved = ops.post(url, {"from": "propose", "to": "design"}, format="json")
        assert moved.status_code == 200, moved.content
        assert moved.json()["stage"] == "design"
        stale = ops.post(url, {"from": "propose", "to": "design"}, format="json")
        assert stale.status_code == 409
        assert (stale.json()["current_stage"], stale.json()["moved_by"]) == ("design", "ops")
        back = lead.post(url, {"from": "design", "to": "propose", "note": "again"}, format="json")
        assert back.status_code == 200, back.content

    closed = lead.post(url, {"from": "propose", "to": "close", "outcome": "wont_do"}, format="json")
    assert closed.status_code == 200, closed.content
    assert StageEvent.objects.filter(requirement=requirement).count() == 6  # created + 4 moves + close
    if factory is not None:
        assert connection.connection.cursor_factory is factory
