"""RequirementSerializer writes its answer directly (workflows.api.serializers.requirement_representation)
instead of walking its declared fields; byte for byte it must be what DRF's field walk makes of them."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services
from workflows.api.serializers import RequirementSerializer
from workflows.models import Requirement
from workflows.selectors import requirement_list_for_user

pytestmark = pytest.mark.django_db


def drf(requirement: Requirement) -> dict[str, Any]:
    """What DRF's generic ModelSerializer walk writes for the serializer's declared fields."""
    serializer = RequirementSerializer()
    return serializers.ModelSerializer.to_representation(serializer, requirement)


def variety(crew: Crew) -> list[Requirement]:
    plain = services.requirement_create(team=crew.team, actor=crew.ops, title="Plain")
    full = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="首页改版 <b>“quoted”</b> \u2028 line",
        description="**Bold** [link](https://example.com) <script>alert(1)</script>\n\n- one\n- 二",
        priority="P0",
        incident_kind="service_delay",
        work_type="innovation",
        assignee=crew.engineer.pk,
        watchers=[crew.pm.pk, crew.analyst.pk],
        labels=["growth", "首页", "b-label"],
        due_date=dt.date(2026, 12, 31),
        launch_date=dt.date(2026, 1, 2),
        resources_people="2 engineers",
        resources_budget=Decimal("12345.5"),
        resources_other="design review",
        **READY_FIELDS,
    )
    services.requirement_transition(
        requirement_id=full.pk, actor=crew.ops, from_stage="propose", to_stage="design", note="go"
    )
    closed = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Closed",
        at=dt.datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=dt.UTC),
        resources_budget=Decimal("0"),
        **READY_FIELDS,
    )
    services.requirement_transition(
        requirement_id=closed.pk,
        actor=crew.lead,
        from_stage="propose",
        to_stage="close",
        outcome="wont_do",
        at=dt.datetime(2026, 3, 3, 18, 30, tzinfo=dt.UTC),
    )
    return list(requirement_list_for_user(user=crew.lead).filter(pk__in=[plain.pk, full.pk, closed.pk]))


def test_the_direct_answer_is_drfs_byte_for_byte(crew: Crew) -> None:
    requirements = variety(crew)
    assert len(requirements) == 3
    shapes = set()
    for requirement in requirements:
        mine = RequirementSerializer(requirement).data
        reference = drf(requirement)
        assert list(mine) == list(reference)  # the same keys in the same order
        assert mine == reference
        assert JSONRenderer().render(mine) == JSONRenderer().render(reference)
        shapes.add(
            (requirement.closed_at is None, requirement.resources_budget is None, bool(mine["labels"]))
        )
    assert len(shapes) == 3, "the three requirements differ in what they hold"
    many = RequirementSerializer(requirements, many=True).data
    assert JSONRenderer().render(many) == JSONRenderer().render([drf(r) for r in requirements])


def test_a_time_zone_other_than_utc_is_written_as_drf_writes_it(crew: Crew) -> None:
    requirements = variety(crew)
    with timezone.override("Asia/Shanghai"):
        for requirement in requirements:
            mine = RequirementSerializer(requirement).data
            assert mine == drf(requirement)
            assert mine["created_at"].endswith("+08:00")


def test_list_detail_and_transition_answer_as_drf_would(crew: Crew) -> None:
    requirements = {r.pk: r for r in variety(crew)}
    client = APIClient()
    client.force_authenticate(crew.lead)
    page = client.get(f"/api/requirements/?team={crew.team.pk}").json()["results"]
    assert {row["id"] for row in page} == set(requirements)
    for row in page:
        assert row == json.loads(JSONRenderer().render(drf(requirements[row["id"]])))
    pk = next(pk for pk, r in requirements.items() if r.title == "Plain")
    detail = client.get(f"/api/requirements/{pk}/")
    assert detail.json() == json.loads(JSONRenderer().render(drf(requirements[pk])))
    moved = client.post(
        f"/api/requirements/{pk}/transition/", {"from": "propose", "to": "design"}, format="json"
    ).json()
    fresh = requirement_list_for_user(user=crew.lead).get(pk=pk)
    assert moved == json.loads(JSONRenderer().render(drf(fresh)))
    assert moved["stage"] == "design"
