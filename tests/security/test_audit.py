"""The audit log: membership, role and team settings changes and lead overrides are recorded with the change,
and only the team's leads read them (settings page and API)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from roles import services as role_services
from roles.models import AuditAction, AuditEntry, Membership
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team
from workflows import services
from workflows.models import StageEvent

pytestmark = pytest.mark.django_db


def _entries(crew: Crew, action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(team=crew.team, action=action).order_by("id"))


def _api(user: Any) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


# ------------------------------------------------------------------------------------------ recording


def test_adding_a_member_is_recorded_with_actor_and_roles(crew: Crew) -> None:
    newcomer = UserFactory(username="newcomer")

    role_services.membership_add(team=crew.team, user=newcomer, roles=["pm", "ops"], actor=crew.lead)

    [entry] = _entries(crew, AuditAction.MEMBER_ADDED)[-1:]
    assert (entry.actor, entry.target, entry.details) == (crew.lead, "newcomer", {"roles": ["ops", "pm"]})


def test_changing_roles_is_recorded_before_and_after(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.pm)

    role_services.membership_set_roles(membership_id=membership.pk, roles=["pm", "lead"], actor=crew.lead)

    [entry] = _entries(crew, AuditAction.ROLES_CHANGED)
    assert (entry.actor, entry.target) == (crew.lead, "pm")
    assert entry.details == {"before": ["pm"], "after": ["lead", "pm"]}


def test_saving_the_same_roles_records_nothing(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.pm)

    role_services.membership_set_roles(membership_id=membership.pk, roles=["pm"], actor=crew.lead)

    assert _entries(crew, AuditAction.ROLES_CHANGED) == []


def test_removing_a_member_is_recorded_with_the_roles_they_held(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.analyst)

    role_services.membership_remove(membership_id=membership.pk, actor=crew.lead)

    [entry] = _entries(crew, AuditAction.MEMBER_REMOVED)
    assert (entry.actor, entry.target, entry.details) == (crew.lead, "analyst", {"roles": ["analyst"]})


def test_refused_removal_records_nothing(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.lead)

    with pytest.raises(Exception, match="at least one lead"):
        role_services.membership_remove(membership_id=membership.pk, actor=crew.lead)

    assert _entries(crew, AuditAction.MEMBER_REMOVED) == []


def test_team_settings_change_is_recorded_before_and_after(crew: Crew) -> None:
    role_services.team_update(team_id=crew.team.pk, actor=crew.lead, name="Growth 2", time_zone="UTC")

    [entry] = _entries(crew, AuditAction.TEAM_CHANGED)
    assert entry.details == {"name": {"before": "Growth", "after": "Growth 2"}}
    assert entry.details_text() == "name: Growth → Growth 2"


def test_failed_audit_write_rolls_the_membership_change_back(crew: Crew, monkeypatch: Any) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(role_services, "audit_record", broken)
    newcomer = UserFactory()

    with pytest.raises(RuntimeError):
        role_services.membership_add(team=crew.team, user=newcomer, roles=["pm"], actor=crew.lead)

    assert not Membership.objects.filter(team=crew.team, user=newcomer).exists()


def test_lead_skipping_a_stage_is_recorded_as_an_override(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="Skip", **READY_FIELDS)

    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="build", note="urgent"
    )

    [entry] = _entries(crew, AuditAction.LEAD_OVERRIDE)
    assert (entry.actor, entry.target) == (crew.lead, requirement.key)
    assert entry.details == {"from_stage": "propose", "to_stage": "build", "note": "urgent"}


def test_lead_making_the_owning_roles_move_is_an_override(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)

    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="design"
    )

    assert len(_entries(crew, AuditAction.LEAD_OVERRIDE)) == 1


def test_owning_role_moving_is_not_an_override(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)

    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )

    assert _entries(crew, AuditAction.LEAD_OVERRIDE) == []


def test_lead_who_also_holds_the_owning_role_is_not_overriding(crew: Crew) -> None:
    both = add_member(crew.team, ["ops", "lead"], username="both")
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)

    services.requirement_transition(
        requirement_id=requirement.pk, actor=both, from_stage="propose", to_stage="design"
    )

    assert _entries(crew, AuditAction.LEAD_OVERRIDE) == []


def test_failed_override_audit_write_rolls_the_move_back(crew: Crew, monkeypatch: Any) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(role_services, "audit_record", broken)

    with pytest.raises(RuntimeError):
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="build"
        )

    requirement.refresh_from_db()
    assert requirement.stage.slug == "propose"
    assert not StageEvent.objects.filter(requirement=requirement, to_stage="build").exists()


# ------------------------------------------------------------------------------------------ the page


def _fill(crew: Crew, count: int) -> None:
    for number in range(count):
        role_services.audit_record(
            team_id=crew.team.pk, actor=crew.lead, action=AuditAction.LEAD_OVERRIDE, target=f"GROW-{number}"
        )


def test_lead_reads_the_audit_page_newest_first(client: Client, crew: Crew) -> None:
    _fill(crew, 2)
    client.force_login(crew.lead)

    response = client.get(reverse("settings-audit", kwargs={"team_id": crew.team.pk}))

    body = response.content.decode()
    assert response.status_code == 200
    assert body.index("GROW-1") < body.index("GROW-0")


@pytest.mark.parametrize("role", ["ops", "pm", "engineer", "analyst"])
def test_audit_page_is_403_to_members_who_are_not_leads(client: Client, crew: Crew, role: str) -> None:
    client.force_login(crew.by_role(role))

    assert client.get(reverse("settings-audit", kwargs={"team_id": crew.team.pk})).status_code == 403


def test_audit_page_is_404_to_another_teams_lead(client: Client, crew: Crew) -> None:
    client.force_login(make_team().memberships.get().user)

    assert client.get(reverse("settings-audit", kwargs={"team_id": crew.team.pk})).status_code == 404


def test_audit_page_sends_anonymous_to_sign_in(client: Client, crew: Crew) -> None:
    response = client.get(reverse("settings-audit", kwargs={"team_id": crew.team.pk}))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_audit_tab_is_shown_to_leads_only(client: Client, crew: Crew) -> None:
    url = reverse("settings-audit", kwargs={"team_id": crew.team.pk})
    members = reverse("settings-members", kwargs={"team_id": crew.team.pk})
    client.force_login(crew.lead)
    assert f'href="{url}"' in client.get(members).content.decode()

    client.force_login(crew.pm)
    assert f'href="{url}"' not in client.get(members).content.decode()


def test_audit_page_pages_by_fifty(client: Client, crew: Crew) -> None:
    _fill(crew, 55)
    client.force_login(crew.lead)
    url = reverse("settings-audit", kwargs={"team_id": crew.team.pk})

    second = client.get(url, {"page": 2}).content.decode()

    assert "GROW-4<" in second
    assert "GROW-5<" not in second


AUDIT_PAGE_QUERIES = 8


@pytest.mark.parametrize("entries", [3, 40])
def test_audit_page_query_count_does_not_grow_with_entries(
    client: Client, crew: Crew, django_assert_num_queries: Any, entries: int
) -> None:
    _fill(crew, entries)
    client.force_login(crew.lead)
    url = reverse("settings-audit", kwargs={"team_id": crew.team.pk})

    with django_assert_num_queries(AUDIT_PAGE_QUERIES):
        assert client.get(url).status_code == 200


# ------------------------------------------------------------------------------------------- the API


def test_lead_lists_the_audit_log_by_api_newest_first(crew: Crew) -> None:
    newcomer = UserFactory(username="newcomer")
    role_services.membership_add(team=crew.team, user=newcomer, roles=["pm"], actor=crew.lead)
    membership = Membership.objects.get(team=crew.team, user=newcomer)
    role_services.membership_remove(membership_id=membership.pk, actor=crew.lead)

    response = _api(crew.lead).get(reverse("api-team-audit", kwargs={"team_id": crew.team.pk}))

    results = response.json()["results"]
    assert response.status_code == 200
    assert [row["action"] for row in results[:2]] == ["member_removed", "member_added"]
    assert results[0] | {"id": 0, "created_at": ""} == {
        "id": 0,
        "action": "member_removed",
        "actor": "lead",
        "target": "newcomer",
        "details": {"roles": ["pm"]},
        "created_at": "",
    }


def test_audit_api_pages_with_a_cursor(crew: Crew) -> None:
    _fill(crew, 5)
    url = reverse("api-team-audit", kwargs={"team_id": crew.team.pk})

    first = _api(crew.lead).get(url, {"page_size": 2}).json()
    second = _api(crew.lead).get(first["next"]).json()

    assert [row["target"] for row in first["results"]] == ["GROW-4", "GROW-3"]
    assert [row["target"] for row in second["results"]] == ["GROW-2", "GROW-1"]


@pytest.mark.parametrize("role", ["ops", "pm", "engineer", "analyst"])
def test_audit_api_is_403_to_members_who_are_not_leads(crew: Crew, role: str) -> None:
    url = reverse("api-team-audit", kwargs={"team_id": crew.team.pk})

    assert _api(crew.by_role(role)).get(url).status_code == 403


def test_audit_api_is_404_to_another_teams_lead(crew: Crew) -> None:
    other_lead = make_team().memberships.get().user
    url = reverse("api-team-audit", kwargs={"team_id": crew.team.pk})

    assert _api(other_lead).get(url).status_code == 404


def test_audit_api_is_401_to_anonymous(crew: Crew) -> None:
    url = reverse("api-team-audit", kwargs={"team_id": crew.team.pk})

    assert APIClient().get(url).status_code == 401


def test_audit_api_is_read_only(crew: Crew) -> None:
    url = reverse("api-team-audit", kwargs={"team_id": crew.team.pk})

    assert _api(crew.lead).post(url, {"action": "member_added"}).status_code == 405


AUDIT_API_QUERIES = 4


@pytest.mark.parametrize("entries", [3, 40])
def test_audit_api_query_count_does_not_grow_with_entries(
    crew: Crew, django_assert_num_queries: Any, entries: int
) -> None:
    _fill(crew, entries)
    api = _api(crew.lead)
    url = reverse("api-team-audit", kwargs={"team_id": crew.team.pk})

    with django_assert_num_queries(AUDIT_API_QUERIES):
        assert api.get(url).status_code == 200


def test_audit_entries_are_read_only_in_the_admin(client: Client, crew: Crew) -> None:
    _fill(crew, 1)
    entry = AuditEntry.objects.latest("id")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    assert client.get(reverse("admin:roles_auditentry_changelist")).status_code == 200
    assert (
        client.post(reverse("admin:roles_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
