"""Team settings pages: members and roles, the workflow, chat webhooks, and the tab bar."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from notifications import services as notification_services
from notifications.models import WebhookEndpoint
from roles.models import Membership
from tests.conftest import Crew
from tests.factories import UserFactory, add_member, make_team
from workflows.models import Stage, Transition, Workflow

pytestmark = pytest.mark.django_db

SECRET_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0a1b2c3d-secret-token"


def members_url(crew: Crew) -> str:
    return reverse("settings-members", kwargs={"team_id": crew.team.pk})


def workflow_url(crew: Crew) -> str:
    return reverse("settings-workflow", kwargs={"team_id": crew.team.pk})


def webhooks_url(crew: Crew) -> str:
    return reverse("settings-webhooks", kwargs={"team_id": crew.team.pk})


def membership(crew: Crew, user: Any) -> Membership:
    return Membership.objects.get(team=crew.team, user=user)


def roles_url(crew: Crew, user: Any) -> str:
    return reverse(
        "settings-member-roles", kwargs={"team_id": crew.team.pk, "membership_id": membership(crew, user).pk}
    )


def remove_url(crew: Crew, user: Any) -> str:
    return reverse(
        "settings-member-remove", kwargs={"team_id": crew.team.pk, "membership_id": membership(crew, user).pk}
    )


def make_webhook(crew: Crew, **fields: Any) -> WebhookEndpoint:
    values = {"name": "增长群", "url": SECRET_URL, "format": "wecom", "kinds": ["escalation"], **fields}
    return notification_services.webhook_create(actor=crew.lead, team_id=crew.team.pk, **values)


def webhook_url(crew: Crew, webhook: WebhookEndpoint, name: str = "settings-webhook-edit") -> str:
    return reverse(name, kwargs={"team_id": crew.team.pk, "webhook_id": webhook.pk})


def every_url(crew: Crew) -> list[str]:
    webhook = make_webhook(crew)
    return [
        members_url(crew),
        roles_url(crew, crew.pm),
        remove_url(crew, crew.pm),
        workflow_url(crew),
        webhooks_url(crew),
        webhook_url(crew, webhook),
        webhook_url(crew, webhook, "settings-webhook-delete"),
    ]


def workflow_data(client: Client, crew: Crew) -> dict[str, Any]:
    """What the lead's workflow form posts when nothing is touched."""
    form = client.get(workflow_url(crew)).context["form"]
    return {field.html_name: "" if field.value() is None else field.value() for field in form}


def webhook_data(**fields: Any) -> dict[str, Any]:
    return {
        "name": "增长群",
        "url": SECRET_URL,
        "format": "wecom",
        "kinds": ["stage_overdue", "escalation"],
        "active": "on",
        **fields,
    }


def current_workflow(crew: Crew) -> Workflow:
    return Workflow.objects.get(team=crew.team, is_current=True)


# ------------------------------------------------------------------------------------------ who may


@pytest.mark.parametrize("name", ["settings-members", "settings-workflow", "settings-webhooks"])
def test_anonymous_is_sent_to_login(client: Client, crew: Crew, name: str) -> None:
    response = client.get(reverse(name, kwargs={"team_id": crew.team.pk}))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_outsider_gets_404_for_every_settings_url(client: Client, crew: Crew) -> None:
    urls = every_url(crew)
    outsider = UserFactory()
    make_team(lead=outsider)
    client.force_login(outsider)
    assert [client.get(url).status_code for url in urls] == [404] * len(urls)
    assert [client.post(url, {"roles": ["lead"]}).status_code for url in urls] == [404] * len(urls)
    assert Membership.objects.filter(team=crew.team).count() == 5
    assert WebhookEndpoint.objects.filter(team=crew.team).count() == 1


def test_unknown_team_is_404(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    assert client.get(reverse("settings-members", kwargs={"team_id": 10**20})).status_code == 404


def test_member_reads_members_without_forms(client: Client, crew: Crew) -> None:
    client.force_login(crew.pm)
    response = client.get(members_url(crew))
    assert response.status_code == 200
    assert b"@analyst" in response.content
    assert b"<form" not in response.content.split(b'<main id="main"')[1]
    assert response.context["nav"] == "settings"


def test_member_reads_the_workflow_without_forms(client: Client, crew: Crew) -> None:
    client.force_login(crew.engineer)
    response = client.get(workflow_url(crew))
    assert response.status_code == 200
    assert b"Instrument" in response.content
    assert b"<form" not in response.content.split(b'<main id="main"')[1]


def test_member_is_refused_the_webhooks_page(client: Client, crew: Crew) -> None:
    make_webhook(crew)
    client.force_login(crew.ops)
    response = client.get(webhooks_url(crew))
    assert response.status_code == 403
    assert b"secret-token" not in response.content


def test_member_does_not_see_the_lead_tabs(client: Client, crew: Crew) -> None:
    client.force_login(crew.ops)
    response = client.get(members_url(crew))
    assert reverse("team-calendar", kwargs={"team_id": crew.team.pk}).encode() in response.content
    assert webhooks_url(crew).encode() not in response.content


def test_every_post_by_a_member_is_refused_and_changes_nothing(client: Client, crew: Crew) -> None:
    urls = every_url(crew)
    client.force_login(crew.ops)
    posts = [client.post(url, {"username": "ops", "roles": ["lead"], **webhook_data()}) for url in urls]
    assert [response.status_code for response in posts] == [403] * len(urls)
    assert membership(crew, crew.pm).roles == {"pm"}
    assert Membership.objects.filter(team=crew.team).count() == 5
    assert Workflow.objects.filter(team=crew.team).count() == 1
    assert list(WebhookEndpoint.objects.values_list("name", flat=True)) == ["增长群"]


def test_member_posting_the_workflow_form_is_refused(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    data = workflow_data(client, crew)
    data["stage.build.sla_hours"] = "1"
    client.force_login(crew.engineer)
    assert client.post(workflow_url(crew), data).status_code == 403
    assert Stage.objects.get(workflow=current_workflow(crew), slug="build").sla_hours == 240


# ---------------------------------------------------------------------------------------------- members


def test_lead_sees_a_checkbox_per_member_and_role_with_a_label(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    content = client.get(members_url(crew)).content.decode()
    box_id = f"id_m{membership(crew, crew.analyst).pk}_roles_3"
    assert f'id="{box_id}"' in content
    assert f'for="{box_id}"' in content
    assert "Data analyst for analyst" in content


def test_lead_adds_a_member_with_roles(client: Client, crew: Crew) -> None:
    newcomer = UserFactory(username="xiaoming")
    client.force_login(crew.lead)
    response = client.post(members_url(crew), {"username": "xiaoming", "roles": ["ops", "analyst"]})
    assert response.status_code == 302
    assert membership(crew, newcomer).roles == {"ops", "analyst"}
    assert "xiaoming joined the team." in client.get(response["Location"]).content.decode()


def test_adding_an_unknown_user_shows_the_error_next_to_the_username(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(members_url(crew), {"username": "nobody", "roles": ["ops"]})
    assert response.status_code == 400
    assert response.context["add_form"].errors["username"] == ["No active user “nobody”."]
    assert "No active user “nobody”." in response.content.decode()
    assert Membership.objects.filter(team=crew.team).count() == 5


def test_adding_a_member_without_a_role_is_refused(client: Client, crew: Crew) -> None:
    UserFactory(username="xiaoming")
    client.force_login(crew.lead)
    response = client.post(members_url(crew), {"username": "xiaoming"})
    assert response.status_code == 400
    assert response.context["add_form"].errors["roles"] == ["Choose at least one role."]
    assert not Membership.objects.filter(team=crew.team, user__username="xiaoming").exists()


def test_adding_an_existing_member_is_refused(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(members_url(crew), {"username": "pm", "roles": ["ops"]})
    assert response.status_code == 400
    assert response.context["add_form"].errors["username"] == ["pm is already a member."]
    assert membership(crew, crew.pm).roles == {"pm"}


def test_lead_changes_a_members_roles(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(roles_url(crew, crew.pm), {"roles": ["pm", "analyst"]})
    assert response.status_code == 302
    assert membership(crew, crew.pm).roles == {"pm", "analyst"}


def test_taking_every_role_away_is_refused(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(roles_url(crew, crew.pm), {})
    assert response.status_code == 400
    assert "Choose at least one role." in response.content.decode()
    assert membership(crew, crew.pm).roles == {"pm"}


def test_lead_removes_a_member(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(remove_url(crew, crew.analyst))
    assert response.status_code == 302
    assert not Membership.objects.filter(team=crew.team, user=crew.analyst).exists()


def test_removing_the_last_lead_is_refused_with_the_message(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(remove_url(crew, crew.lead))
    assert response.status_code == 400
    assert "A team must keep at least one lead." in response.content.decode()
    assert membership(crew, crew.lead).roles == {"lead"}


def test_dropping_the_last_leads_lead_role_is_refused(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(roles_url(crew, crew.lead), {"roles": ["ops"]})
    assert response.status_code == 400
    assert "A team must keep at least one lead." in response.content.decode()
    assert membership(crew, crew.lead).roles == {"lead"}


def test_a_lead_who_leaves_is_sent_home(client: Client, crew: Crew) -> None:
    add_member(crew.team, ["lead"], username="lead2")
    client.force_login(crew.lead)
    response = client.post(remove_url(crew, crew.lead))
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(team=crew.team, user=crew.lead).exists()


def test_a_membership_of_another_team_is_not_found_here(client: Client, crew: Crew) -> None:
    other = make_team(lead=crew.lead)
    stranger = add_member(other, ["ops"])
    stranger_membership = Membership.objects.get(team=other, user=stranger)
    client.force_login(crew.lead)
    url = reverse(
        "settings-member-remove", kwargs={"team_id": crew.team.pk, "membership_id": stranger_membership.pk}
    )
    assert client.post(url).status_code == 404
    assert Membership.objects.filter(pk=stranger_membership.pk).exists()


def test_remove_is_post_only(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    assert client.get(remove_url(crew, crew.pm)).status_code == 405
    assert Membership.objects.filter(team=crew.team, user=crew.pm).exists()


@pytest.mark.parametrize("size", [3, 13])
def test_members_page_queries_do_not_grow_with_members(
    client: Client, django_assert_num_queries: Any, size: int
) -> None:
    lead = UserFactory(username="lead")
    team = make_team(lead=lead)
    for _ in range(size - 1):
        add_member(team, ["ops", "analyst"])
    client.force_login(lead)
    with django_assert_num_queries(7):
        response = client.get(reverse("settings-members", kwargs={"team_id": team.pk}))
    assert len(response.context["rows"]) == size


# --------------------------------------------------------------------------------------------- workflow


def test_workflow_page_shows_the_version_and_stages(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    content = client.get(workflow_url(crew)).content.decode()
    assert "version 1" in content
    assert "Requirements already under way keep the version they started with" in content
    assert "Optimize → iterate (next loop at Propose)" in content


def test_stage_names_read_in_chinese(client: Client, crew: Crew) -> None:
    client.force_login(crew.pm)
    content = client.get(workflow_url(crew), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<strong>提出</strong>" in content


def test_lead_changes_an_sla_and_allowed_roles(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    data = workflow_data(client, crew)
    data["stage.build.sla_hours"] = "120"
    data["move.build.instrument.allowed_roles"] = ["engineer", "analyst"]
    response = client.post(workflow_url(crew), data)
    assert response.status_code == 302
    new = current_workflow(crew)
    build = Stage.objects.get(workflow=new, slug="build")
    move = Transition.objects.get(workflow=new, from_stage=build, kind="forward")
    assert (new.version, build.sla_hours, sorted(move.allowed_roles)) == (2, 120, ["analyst", "engineer"])
    assert Stage.objects.get(workflow__version=1, workflow__team=crew.team, slug="build").sla_hours == 240


def test_lead_clears_an_sla_and_sets_required_fields(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    data = workflow_data(client, crew)
    data["stage.analyze.sla_hours"] = ""
    data["move.build.instrument.required_fields"] = ["launch_date", "assignee"]
    assert client.post(workflow_url(crew), data).status_code == 302
    new = current_workflow(crew)
    move = Transition.objects.get(workflow=new, from_stage__slug="build", kind="forward")
    assert Stage.objects.get(workflow=new, slug="analyze").sla_hours is None
    assert sorted(move.required_fields) == ["assignee", "launch_date"]


def test_instrument_to_analyze_requires_a_launch_date_and_a_verified_tracking_plan(
    client: Client, crew: Crew
) -> None:
    client.force_login(crew.lead)
    data = workflow_data(client, crew)
    content = client.get(workflow_url(crew)).content.decode()
    assert sorted(data["move.instrument.analyze.required_fields"]) == ["launch_date", "tracking_plan"]
    assert "A verified tracking plan" in content


def test_lead_drops_the_tracking_plan_guard_in_a_new_version(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    data = workflow_data(client, crew)
    data["move.instrument.analyze.required_fields"] = ["launch_date"]
    assert client.post(workflow_url(crew), data).status_code == 302
    new = current_workflow(crew)
    move = Transition.objects.get(workflow=new, from_stage__slug="instrument", kind="forward")
    old = Transition.objects.get(
        workflow__version=1, workflow__team=crew.team, from_stage__slug="instrument", kind="forward"
    )
    assert (new.version, move.required_fields) == (2, ["launch_date"])
    assert sorted(old.required_fields) == ["launch_date", "tracking_plan"]


def test_saving_an_unchanged_workflow_makes_no_version(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(workflow_url(crew), workflow_data(client, crew))
    assert response.status_code == 302
    assert Workflow.objects.filter(team=crew.team).count() == 1


def test_an_sla_that_is_not_a_number_is_shown_next_to_the_field(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    data = workflow_data(client, crew)
    data["stage.build.sla_hours"] = "abc"
    data["stage.design.sla_hours"] = "12"
    response = client.post(workflow_url(crew), data)
    assert response.status_code == 400
    assert response.context["form"].errors["stage.build.sla_hours"] == ["Enter a whole number."]
    assert 'id="id_stage.build.sla_hours_error"' in response.content.decode()
    assert Workflow.objects.filter(team=crew.team).count() == 1


def test_a_stage_without_an_owner_role_is_refused(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    data = workflow_data(client, crew)
    del data["stage.design.owner_roles"]
    response = client.post(workflow_url(crew), data)
    assert response.status_code == 400
    assert response.context["form"].errors["stage.design.owner_roles"] == ["Choose at least one owner role."]
    assert "Choose at least one owner role." in response.content.decode()
    assert Workflow.objects.filter(team=crew.team).count() == 1


def test_a_form_of_an_older_version_is_refused_as_a_conflict(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    stale = workflow_data(client, crew)
    fresh = workflow_data(client, crew)
    fresh["stage.build.sla_hours"] = "100"
    client.post(workflow_url(crew), fresh)
    stale["stage.design.sla_hours"] = "10"
    response = client.post(workflow_url(crew), stale)
    assert response.status_code == 409
    assert Workflow.objects.filter(team=crew.team).count() == 2
    assert Stage.objects.get(workflow=current_workflow(crew), slug="build").sla_hours == 100


def test_workflow_page_queries(client: Client, crew: Crew, django_assert_num_queries: Any) -> None:
    client.force_login(crew.lead)
    with django_assert_num_queries(10):
        assert client.get(workflow_url(crew)).status_code == 200


# --------------------------------------------------------------------------------------------- webhooks


def test_lead_adds_a_webhook(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(webhooks_url(crew), webhook_data(secret="SEC-abc"))
    assert response.status_code == 302
    webhook = WebhookEndpoint.objects.get(team=crew.team)
    assert (webhook.url, webhook.format, webhook.secret) == (SECRET_URL, "wecom", "SEC-abc")
    assert sorted(webhook.kinds) == ["escalation", "stage_overdue"]


def test_the_list_masks_the_url_and_never_shows_the_secret(client: Client, crew: Crew) -> None:
    make_webhook(crew, secret="SEC-abc")
    client.force_login(crew.lead)
    content = client.get(webhooks_url(crew)).content.decode()
    assert "https://qyapi.weixin.qq.com/…" in content
    assert "secret-token" not in content
    assert "SEC-abc" not in content


def test_a_bad_url_is_refused(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(webhooks_url(crew), webhook_data(url="not a url"))
    assert response.status_code == 400
    assert response.context["form"].errors["url"] == ["Enter a valid URL."]
    assert "Enter a valid URL." in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_ftp_url_is_refused(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.post(webhooks_url(crew), webhook_data(url="ftp://example.com/hook"))
    assert response.status_code == 400
    assert not WebhookEndpoint.objects.exists()


def test_edit_form_shows_the_url_but_not_the_secret(client: Client, crew: Crew) -> None:
    webhook = make_webhook(crew, secret="SEC-abc")
    client.force_login(crew.lead)
    content = client.get(webhook_url(crew, webhook)).content.decode()
    assert SECRET_URL.replace("&", "&amp;") in content
    assert "SEC-abc" not in content


def test_lead_edits_a_webhook_and_an_empty_secret_keeps_the_old_one(client: Client, crew: Crew) -> None:
    webhook = make_webhook(crew, secret="SEC-abc")
    client.force_login(crew.lead)
    data = webhook_data(format="dingtalk", kinds=["escalation", "due_today"], secret="")
    del data["active"]
    response = client.post(webhook_url(crew, webhook), data)
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert (webhook.format, webhook.active, webhook.secret) == ("dingtalk", False, "SEC-abc")
    assert sorted(webhook.kinds) == ["due_today", "escalation"]


def test_lead_removes_a_webhooks_secret(client: Client, crew: Crew) -> None:
    webhook = make_webhook(crew, secret="SEC-abc")
    client.force_login(crew.lead)
    client.post(webhook_url(crew, webhook), webhook_data(clear_secret="on"))
    webhook.refresh_from_db()
    assert webhook.secret == ""


def test_a_bad_url_on_edit_changes_nothing(client: Client, crew: Crew) -> None:
    webhook = make_webhook(crew)
    client.force_login(crew.lead)
    response = client.post(webhook_url(crew, webhook), webhook_data(url="nope", name="renamed"))
    assert response.status_code == 400
    webhook.refresh_from_db()
    assert (webhook.name, webhook.url) == ("增长群", SECRET_URL)


def test_lead_deletes_a_webhook(client: Client, crew: Crew) -> None:
    webhook = make_webhook(crew)
    client.force_login(crew.lead)
    response = client.post(webhook_url(crew, webhook, "settings-webhook-delete"))
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.exists()


def test_a_webhook_of_another_team_is_not_found(client: Client, crew: Crew) -> None:
    other = make_team(lead=crew.lead)
    theirs = notification_services.webhook_create(
        actor=crew.lead, team_id=other.pk, name="other", url=SECRET_URL, kinds=["escalation"]
    )
    client.force_login(crew.lead)
    assert client.get(webhook_url(crew, theirs)).status_code == 404
    assert client.post(webhook_url(crew, theirs, "settings-webhook-delete")).status_code == 404
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("size", [1, 6])
def test_webhooks_page_queries_do_not_grow_with_webhooks(
    client: Client, crew: Crew, django_assert_num_queries: Any, size: int
) -> None:
    for n in range(size):
        make_webhook(crew, name=f"hook {n}")
    client.force_login(crew.lead)
    with django_assert_num_queries(8):
        response = client.get(webhooks_url(crew))
    assert len(response.context["rows"]) == size


# ----------------------------------------------------------------------------------------------- tab bar


def test_calendar_and_sent_messages_carry_the_settings_tabs(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    calendar = client.get(reverse("team-calendar", kwargs={"team_id": crew.team.pk}))
    deliveries = client.get(reverse("team-deliveries", kwargs={"team_id": crew.team.pk}))
    assert (calendar.context["nav"], deliveries.context["nav"]) == ("settings", "settings")
    assert members_url(crew).encode() in calendar.content
    assert webhooks_url(crew).encode() in deliveries.content
