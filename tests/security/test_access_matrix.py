"""The access-control matrix: every URL pattern of the web UI and the API, who may call it, and what
everybody else gets back.

MATRIX names each pattern (by URL name) with the ids its path is built from, whether it belongs to a
team or to the signed-in user, and per HTTP method the roles that may use it. The tests are generated
from it:

- anonymous callers are sent to the login page (web) or get 401 (API), unless the method is public;
- a member of another team gets 404 for every team's object, and a refused write changes nothing, also
  when the path names their own team with the other team's object in it;
- a write in one's own team whose body names another team's metric, loop, requirement or member is
  refused (CROSS_TEAM_WRITES);
- a member without the role gets 403 for a role-gated or lead-only method, and nothing changes;
- a member with the role gets an answer (200 for pages and reads, a 2xx or a redirect for writes), and
  the write it is allowed changes the database, so the same body refused to others proves something;
- site staff read every team's pages and API objects, where they are not the team's leads' alone, and
  the API's lists show them every team's rows; they write in no team they are not a member of.

`test_matrix_names_every_url_pattern` fails when a pattern is added without a MATRIX entry, or an entry
outlives its pattern, so a new endpoint cannot escape these checks. The admin site is covered as one
family, by its namespace: Django's admin guards every page of it with `admin_view` (staff only), so
one check per page without arguments proves the family rather than the app's own code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from dataloop import services as dataloop_services
from notifications import services as notification_services
from roles.models import Membership, Team
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team, verify_tracking
from workflows import selectors as workflow_selectors
from workflows import services
from workflows.models import IterationLoop, Workflow
from workflows.settings_forms import WorkflowForm, stage_field
from worktime import services as calendar_services

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

ROLES = ("ops", "pm", "engineer", "analyst", "lead")
EVERY_MEMBER = frozenset(ROLES)
LEADS = frozenset({"lead"})
METRIC_EDITORS = frozenset({"ops", "analyst", "lead"})  # metrics, observations and watches
GOAL_EDITORS = frozenset({"ops", "pm", "lead"})  # goals and their strategies
TRACKING_EDITORS = frozenset({"pm", "engineer", "analyst", "lead"})
ANALYSTS = frozenset({"analyst", "lead"})  # a loop's analysis conclusion
PROPOSE_TO_DESIGN = frozenset({"ops", "lead"})  # the default workflow's first forward move
NOBODY: frozenset[str] = frozenset()
# A route of the user's own (scope "user") may be used by anyone signed in; its checks sign in a member.
SIGNED_IN = EVERY_MEMBER

Body = Callable[["World"], dict[str, Any]]


@dataclass(frozen=True)
class Method:
    """One HTTP method of a pattern.

    `may`: the roles in the pattern's team that may use it (every role for a read). `refused`: what a
    member without one of them gets. `ok`: what one with it gets, when not the usual (200 for a read, a
    redirect for a web form, 200/201/204 for an API write: a web form answering 200 was refused).
    `staff`: what site staff outside the team get on a read. `public`: why a signed-out caller may use
    it (empty: they may not). `changes`: whether the write, allowed, changes the database. `scope`:
    the method's, where it is not the route's (a list of one's teams' rows beside a team's write)."""

    verb: Literal["get", "post", "put", "patch", "delete"]
    may: frozenset[str] = EVERY_MEMBER
    body: Body | None = None
    ok: frozenset[int] = frozenset()
    refused: int = 403
    staff: int = 200
    public: str = ""
    changes: bool = True
    scope: Literal["team", "user"] | None = None  # when not the route's


@dataclass(frozen=True)
class Route:
    """A URL pattern: web or API; which ids its path takes from the World (`kwargs`: URL keyword →
    World attribute) and its query string; 'team' when it shows or changes one team's data, 'user'
    when it is the signed-in user's own (their inbox, their settings, the lists of their teams)."""

    api: bool
    methods: tuple[Method, ...]
    scope: Literal["team", "user", "public"] = "team"
    kwargs: dict[str, str] = field(default_factory=dict)
    query: str = ""


REDIRECT = frozenset({302})


def get(**options: Any) -> Method:
    return Method("get", **options)


def write(
    verb: Literal["post", "put", "patch", "delete"],
    may: frozenset[str],
    body: Body | None = None,
    **options: Any,
) -> Method:
    return Method(verb, may=may, body=body, **options)


def scope_of(route: Route, method: Method) -> str:
    return method.scope or route.scope


def success(route: Route, method: Method) -> frozenset[int]:
    if method.ok:
        return method.ok
    if method.verb == "get":
        return frozenset({200})
    return frozenset({200, 201, 204}) if route.api else REDIRECT


# What site staff outside the team get from a page that reads like a form for writing in the team
# (they may read the team, not write in it), and from the leads' own pages: webhooks (a webhook URL is
# the key to post into the team's chat) are for the team's leads and site superusers
# (roles.permissions.may_manage_team); deliveries and the audit log staff may read, as they see
# everything (roles.permissions.may_read_lead_records).
NOT_A_MEMBER = 403
LEADS_ONLY = 403
STAFF_READ = 200


def world_dict(**values: Any) -> Body:
    """A body whose values name World attributes: "@metric" is the id of the World's metric."""

    def build(world: World) -> dict[str, Any]:
        return {
            name: getattr(world, value[1:]) if isinstance(value, str) and value.startswith("@") else value
            for name, value in values.items()
        }

    return build


def csv_upload(name: str, text: str) -> Body:
    return lambda world: {"file": SimpleUploadedFile(name, text.format(**world.ids()).encode(), "text/csv")}


def workflow_form_with(world: World, *, sla_hours: int) -> dict[str, Any]:
    """The workflow settings form as the lead sees it, with the design stage's SLA changed."""
    current = workflow_selectors.workflow_current(team=Team.objects.get(pk=world.team))
    form = WorkflowForm(
        definition=workflow_selectors.workflow_definition(workflow=current), version=current.version
    )
    data = {name: value for name, value in form.initial.items()} | {
        name: bound.initial for name, bound in form.fields.items() if bound.initial is not None
    }
    return data | {stage_field("design", "sla_hours"): sla_hours}


TEAM = {"team_id": "team"}
# The World's attributes that are one team's objects (and not, say, the name of a chart).
OBJECTS = {"membership", "metric", "bare_metric", "watch", "goal", "strategy", "webhook", "tracking_event"}
KEY = {"key": "key"}

MATRIX: dict[str, Route] = {
    # -------------------------------------------------------------------------------- signing in, the user
    "login": Route(
        api=False, scope="public", methods=(get(public="The sign-in page is where signed-out people go."),)
    ),
    "logout": Route(
        api=False,
        scope="public",
        methods=(
            write(
                "post", NOBODY, ok=REDIRECT, public="Signing out only ends the caller's own session (if any)."
            ),
        ),
    ),
    "set_language": Route(
        api=False,
        scope="public",
        methods=(
            write(
                "post",
                NOBODY,
                body=lambda w: {"language": "en"},
                ok=REDIRECT,
                public="The sign-in page has the language switch: a cookie (signed in, also the choice kept).",
            ),
        ),
    ),
    "password_change": Route(api=False, scope="user", methods=(get(),)),
    "password_change_done": Route(api=False, scope="user", methods=(get(),)),
    "home": Route(api=False, scope="user", methods=(get(),)),
    "queue": Route(api=False, scope="user", methods=(get(),)),
    "board-pick": Route(api=False, scope="user", methods=(get(ok=REDIRECT),)),
    "inbox": Route(api=False, scope="user", methods=(get(),)),
    "inbox-mark-read": Route(api=False, scope="user", methods=(write("post", SIGNED_IN),)),
    "api-token": Route(
        api=True,
        scope="user",
        methods=(
            write(
                "post",
                NOBODY,
                body=lambda w: {"username": "ops", "password": "pw-for-tests"},
                public="Exchanging a username and password for a token is how an API client signs in.",
            ),
            write("delete", SIGNED_IN),
        ),
    ),
    # A new token is shown once, on the page the POST answers.
    "account": Route(
        api=False,
        scope="user",
        methods=(
            get(),
            write("post", SIGNED_IN, body=lambda w: {"action": "rotate"}, ok=frozenset({200})),
        ),
    ),
    "api-account-token": Route(
        api=True, scope="user", methods=(write("post", SIGNED_IN), write("delete", SIGNED_IN))
    ),
    "api-me": Route(api=True, scope="user", methods=(get(),)),
    "api-root": Route(api=True, scope="user", methods=(get(),)),
    "api-ping": Route(api=True, scope="user", methods=(get(),)),
    "api-schema": Route(api=True, scope="user", methods=(get(),)),
    "api-docs": Route(api=True, scope="user", methods=(get(),)),
    "api-redoc": Route(api=True, scope="user", methods=(get(),)),
    "api-notifications": Route(api=True, scope="user", methods=(get(),)),
    "api-notifications-unread": Route(api=True, scope="user", methods=(get(),)),
    "api-notifications-mark-read": Route(
        api=True, scope="user", methods=(write("post", SIGNED_IN, body=lambda w: {"all": True}),)
    ),
    "api-notification-settings": Route(
        api=True, scope="user", methods=(get(), write("put", SIGNED_IN, body=lambda w: {"language": "en"}))
    ),
    "api-watch-presets": Route(api=True, scope="user", methods=(get(),)),
    "team-list": Route(
        api=True,
        scope="user",
        methods=(
            get(),
            write("post", SIGNED_IN, body=lambda w: {"name": "Brand new", "key_prefix": "BRAND"}),
        ),
    ),
    "workflow-list": Route(api=True, scope="user", methods=(get(),)),
    "loop-list": Route(api=True, scope="user", methods=(get(),)),
    # ---------------------------------------------------------------------------- board and requirements
    "board": Route(api=False, kwargs=TEAM, methods=(get(),)),
    "requirement-create": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            get(staff=NOT_A_MEMBER),
            write(
                "post",
                EVERY_MEMBER,
                body=lambda w: {"title": "Coupon reminder", "priority": "P2", "work_type": "base"},
            ),
        ),
    ),
    "requirement": Route(api=False, kwargs=KEY, methods=(get(),)),
    "requirement-edit": Route(
        api=False,
        kwargs=KEY,
        methods=(
            get(staff=NOT_A_MEMBER),
            write(
                "post",
                EVERY_MEMBER,
                body=lambda w: {"title": "Renamed", "priority": "P2", "work_type": "base", **READY_FIELDS},
            ),
        ),
    ),
    "requirement-move": Route(
        api=False,
        kwargs=KEY,
        methods=(write("post", PROPOSE_TO_DESIGN, body=lambda w: {"from_stage": "propose", "to": "design"}),),
    ),
    "requirement-comment": Route(
        api=False, kwargs=KEY, methods=(write("post", EVERY_MEMBER, body=lambda w: {"body": "Looks right"}),)
    ),
    "requirement-card": Route(api=False, kwargs=KEY, methods=(get(),)),
    "tracking-add": Route(
        api=False,
        kwargs=KEY,
        methods=(
            write(
                "post",
                TRACKING_EDITORS,
                body=lambda w: {"tracking-name": "coupon_view", "tracking-trigger": "When the coupon shows."},
            ),
        ),
    ),
    "tracking-event": Route(
        api=False,
        kwargs={"key": "key", "event_id": "tracking_event"},
        methods=(write("post", TRACKING_EDITORS, body=lambda w: {"action": "delete"}),),
    ),
    "requirement-analysis": Route(
        api=False,
        kwargs=KEY,
        methods=(
            write(
                "post",
                ANALYSTS,
                body=lambda w: {
                    "conclusion": "D1 +2pt",
                    "verdict": "improved",
                    "core_metric_moved": "yes",
                    "behaviour_moved": "yes",
                    "feedback_positive": "yes",
                },
            ),
        ),
    ),
    # ---------------------------------------------------------------------------------------- team settings
    "settings-members": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            get(),
            write("post", LEADS, body=lambda w: {"username": "newcomer", "roles": ["ops"]}),
        ),
    ),
    "settings-member-roles": Route(
        api=False,
        kwargs={"team_id": "team", "membership_id": "membership"},
        methods=(write("post", LEADS, body=lambda w: {"roles": ["ops", "pm"]}),),
    ),
    "settings-member-remove": Route(
        api=False, kwargs={"team_id": "team", "membership_id": "membership"}, methods=(write("post", LEADS),)
    ),
    "settings-workflow": Route(
        api=False,
        kwargs=TEAM,
        methods=(get(), write("post", LEADS, body=lambda w: workflow_form_with(w, sla_hours=24))),
    ),
    "settings-webhooks": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            get(may=LEADS, staff=LEADS_ONLY),
            write(
                "post",
                LEADS,
                body=lambda w: {
                    "name": "Ops chat",
                    "url": "https://chat.example.com/hook/2",
                    "format": "generic",
                    "kinds": ["your_turn"],
                    "active": "on",
                },
            ),
        ),
    ),
    "settings-webhook-edit": Route(
        api=False,
        kwargs={"team_id": "team", "webhook_id": "webhook"},
        methods=(
            get(may=LEADS, staff=LEADS_ONLY),
            write(
                "post",
                LEADS,
                body=lambda w: {
                    "name": "Renamed",
                    "url": "https://chat.example.com/hook/1",
                    "format": "generic",
                    "kinds": ["your_turn"],
                },
            ),
        ),
    ),
    "settings-webhook-delete": Route(
        api=False, kwargs={"team_id": "team", "webhook_id": "webhook"}, methods=(write("post", LEADS),)
    ),
    "team-calendar": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            get(),
            write(
                "post",
                LEADS,
                body=lambda w: {
                    "action": "days",
                    "date": "2031-05-06",
                    "is_workday": "0",
                    "name": "Team day",
                },
            ),
        ),
    ),
    "settings-audit": Route(api=False, kwargs=TEAM, methods=(get(may=LEADS, staff=STAFF_READ),)),
    "team-deliveries": Route(api=False, kwargs=TEAM, methods=(get(may=LEADS, staff=STAFF_READ),)),
    # ----------------------------------------------------------------------------- analytics, data loop
    "analytics-dashboard": Route(api=False, kwargs=TEAM, methods=(get(),)),
    "analytics-csv": Route(
        api=False, kwargs={"team_id": "team", "metric": "analytics_metric"}, methods=(get(),)
    ),
    "funnel": Route(api=False, kwargs=TEAM, methods=(get(),)),
    "funnel-csv": Route(api=False, kwargs=TEAM, methods=(get(),)),
    "metrics": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            get(),
            write(
                "post", METRIC_EDITORS, body=lambda w: {"name": "Coupon use", "unit": "%", "direction": "up"}
            ),
        ),
    ),
    "observation-add": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            write("post", METRIC_EDITORS, body=world_dict(metric="@metric", date="2026-02-03", value="12.5")),
        ),
    ),
    "observations-import": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            write(
                "post",
                METRIC_EDITORS,
                body=csv_upload("obs.csv", "metric,date,value\n{metric_name},2026-02-04,13\n"),
            ),
        ),
    ),
    "observations-template": Route(api=False, kwargs=TEAM, methods=(get(),)),
    "metric": Route(
        api=False,
        kwargs={"team_id": "team", "metric_id": "metric"},
        methods=(
            get(),
            write(
                "post", METRIC_EDITORS, body=lambda w: {"name": "Coupon rate", "unit": "%", "direction": "up"}
            ),
        ),
    ),
    "metric-delete": Route(
        api=False,
        kwargs={"team_id": "team", "metric_id": "bare_metric"},
        methods=(write("post", METRIC_EDITORS),),
    ),
    "observation-delete": Route(
        api=False,
        kwargs={"team_id": "team", "metric_id": "metric"},
        methods=(write("post", METRIC_EDITORS, body=world_dict(observation="@observation")),),
    ),
    "watches": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            get(),
            write(
                "post",
                METRIC_EDITORS,
                body=world_dict(
                    name="Coupon drop",
                    metric="@metric",
                    comparison="lt",
                    threshold="5",
                    periods=1,
                    period="day",
                    title="Coupon use fell",
                    priority="P1",
                    owner_role="analyst",
                ),
            ),
        ),
    ),
    "watch": Route(
        api=False,
        kwargs={"team_id": "team", "watch_id": "watch"},
        methods=(
            get(),
            write(
                "post",
                METRIC_EDITORS,
                body=world_dict(
                    name="Coupon drop",
                    metric="@metric",
                    comparison="lt",
                    threshold="4",
                    periods=1,
                    period="day",
                    title="Coupon use fell",
                    priority="P1",
                    owner_role="analyst",
                    is_active="on",
                ),
            ),
        ),
    ),
    "watch-active": Route(
        api=False, kwargs={"team_id": "team", "watch_id": "watch"}, methods=(write("post", METRIC_EDITORS),)
    ),
    "watch-delete": Route(
        api=False, kwargs={"team_id": "team", "watch_id": "watch"}, methods=(write("post", METRIC_EDITORS),)
    ),
    "goals": Route(
        api=False,
        kwargs=TEAM,
        methods=(
            get(),
            write(
                "post",
                GOAL_EDITORS,
                body=world_dict(
                    title="300 orders a day",
                    metric="@metric",
                    target="300",
                    start="2026-01-01",
                    end="2026-06-30",
                ),
            ),
        ),
    ),
    "goal": Route(
        api=False,
        kwargs={"team_id": "team", "goal_id": "goal"},
        methods=(
            get(),
            write("post", GOAL_EDITORS, body=lambda w: {"action": "delete"}),
        ),
    ),
    "goal-strategy-add": Route(
        api=False,
        kwargs={"team_id": "team", "goal_id": "goal"},
        methods=(write("post", GOAL_EDITORS, body=lambda w: {"new-title": "Win back lapsed buyers"}),),
    ),
    "goal-strategy": Route(
        api=False,
        kwargs={"team_id": "team", "goal_id": "goal", "strategy_id": "strategy"},
        methods=(write("post", GOAL_EDITORS, body=lambda w: {"action": "delete"}),),
    ),
    # ------------------------------------------------------------------------------------------------ API
    "team-detail": Route(
        api=True,
        kwargs={"pk": "team"},
        methods=(
            get(),
            write("patch", LEADS, body=lambda w: {"name": "Renamed"}),
            # Teams are not deleted through the API: 400 to every member, 404 to everyone else.
            write("delete", NOBODY, refused=400),
        ),
    ),
    "team-members": Route(
        api=True,
        kwargs={"pk": "team"},
        methods=(
            get(),
            write("post", LEADS, body=lambda w: {"user": "newcomer", "roles": ["ops"]}),
        ),
    ),
    "team-member": Route(
        api=True,
        kwargs={"pk": "team", "membership_id": "membership"},
        methods=(
            write("patch", LEADS, body=lambda w: {"roles": ["ops", "pm"]}),
            write("delete", LEADS),
        ),
    ),
    "team-workflow": Route(
        api=True,
        kwargs={"pk": "team"},
        methods=(
            get(),
            write("patch", LEADS, body=lambda w: {"stages": {"design": {"sla_hours": 24}}}),
        ),
    ),
    "workflow-detail": Route(api=True, kwargs={"pk": "workflow"}, methods=(get(),)),
    # The list is the caller's (their teams' requirements); a new one names its team in the body.
    "requirement-list": Route(
        api=True,
        methods=(
            get(scope="user"),
            write("post", EVERY_MEMBER, body=world_dict(team="@team", title="Coupon reminder")),
        ),
    ),
    "requirement-detail": Route(
        api=True,
        kwargs={"pk": "requirement"},
        methods=(
            get(),
            write("patch", EVERY_MEMBER, body=lambda w: {"title": "Renamed"}),
        ),
    ),
    "requirement-transition": Route(
        api=True,
        kwargs={"pk": "requirement"},
        methods=(write("post", PROPOSE_TO_DESIGN, body=lambda w: {"from": "propose", "to": "design"}),),
    ),
    "requirement-history": Route(api=True, kwargs={"pk": "requirement"}, methods=(get(),)),
    "requirement-available-transitions": Route(api=True, kwargs={"pk": "requirement"}, methods=(get(),)),
    "requirement-comments": Route(
        api=True,
        kwargs={"pk": "requirement"},
        methods=(
            get(),
            write("post", EVERY_MEMBER, body=lambda w: {"body": "Looks right"}),
        ),
    ),
    # Its author (the ops member) edits a comment; nobody else, not even a lead.
    "comment-detail": Route(
        api=True,
        kwargs={"pk": "comment"},
        methods=(
            get(),
            write("patch", frozenset({"ops"}), body=lambda w: {"body": "Edited"}),
        ),
    ),
    "loop-detail": Route(api=True, kwargs={"pk": "loop"}, methods=(get(),)),
    "api-team-webhooks": Route(
        api=True,
        kwargs=TEAM,
        methods=(
            get(may=LEADS, staff=LEADS_ONLY),
            write(
                "post",
                LEADS,
                body=lambda w: {
                    "name": "Ops chat",
                    "url": "https://chat.example.com/hook/2",
                    "format": "generic",
                    "kinds": ["your_turn"],
                },
            ),
        ),
    ),
    "api-team-webhook": Route(
        api=True,
        kwargs={"team_id": "team", "webhook_id": "webhook"},
        methods=(
            write("patch", LEADS, body=lambda w: {"name": "Renamed"}),
            write("delete", LEADS),
        ),
    ),
    "api-team-audit": Route(api=True, kwargs=TEAM, methods=(get(may=LEADS, staff=STAFF_READ),)),
    "api-team-deliveries": Route(api=True, kwargs=TEAM, methods=(get(may=LEADS, staff=STAFF_READ),)),
    "api-team-calendar": Route(
        api=True, kwargs=TEAM, methods=(get(), write("put", LEADS, body=lambda w: {"enabled": True}))
    ),
    "api-team-calendar-days": Route(
        api=True,
        kwargs=TEAM,
        methods=(
            write(
                "post", LEADS, body=lambda w: {"date": "2031-05-06", "is_workday": False, "name": "Team day"}
            ),
        ),
    ),
    "api-team-calendar-day": Route(
        api=True, kwargs={"team_id": "team", "date": "calendar_day"}, methods=(write("delete", LEADS),)
    ),
    "api-team-history-export": Route(api=True, kwargs=TEAM, methods=(get(),)),
    "api-team-history-import": Route(
        api=True,
        kwargs=TEAM,
        methods=(
            write(
                "post",
                LEADS,
                body=lambda w: {
                    "file": SimpleUploadedFile(
                        "history.csv",
                        b"key,title,from,to,timestamp\nOLD-99,Old idea,,propose,2026-01-05T10:00:00Z\n",
                        "text/csv",
                    ),
                    "dry_run": "true",
                },
                changes=False,
            ),
        ),
    ),
    **{
        f"api-analytics-{name}": Route(api=True, query="team={team}", methods=(get(),))
        for name in (
            "cycle-time",
            "time-in-stage",
            "control-chart",
            "cumulative-flow",
            "throughput",
            "wip",
            "sla",
            "rework",
            "loops-per-requirement",
        )
    },
    "api-team-metrics": Route(
        api=True,
        kwargs=TEAM,
        methods=(
            get(),
            write(
                "post", METRIC_EDITORS, body=lambda w: {"name": "Coupon use", "unit": "%", "direction": "up"}
            ),
        ),
    ),
    "api-metric": Route(
        api=True,
        kwargs={"pk": "bare_metric"},
        methods=(
            get(),
            write("patch", METRIC_EDITORS, body=lambda w: {"unit": "‰"}),
            write("delete", METRIC_EDITORS),
        ),
    ),
    "api-metric-observations": Route(
        api=True,
        kwargs={"pk": "metric"},
        methods=(
            get(),
            write("post", METRIC_EDITORS, body=lambda w: {"date": "2026-02-03", "value": "12.5"}),
        ),
    ),
    "api-observation": Route(
        api=True, kwargs={"pk": "observation"}, methods=(write("delete", METRIC_EDITORS),)
    ),
    "api-observations-import": Route(
        api=True,
        kwargs=TEAM,
        methods=(
            write(
                "post",
                METRIC_EDITORS,
                body=csv_upload("obs.csv", "metric,date,value\n{metric_name},2026-02-04,13\n"),
            ),
        ),
    ),
    "api-team-watches": Route(
        api=True,
        kwargs=TEAM,
        methods=(
            get(),
            write(
                "post",
                METRIC_EDITORS,
                body=world_dict(
                    name="Coupon drop",
                    metric="@metric",
                    comparison="lt",
                    threshold="5",
                    title="Coupon use fell",
                    owner_role="analyst",
                ),
            ),
        ),
    ),
    "api-watch": Route(
        api=True,
        kwargs={"pk": "watch"},
        methods=(
            get(),
            write("patch", METRIC_EDITORS, body=lambda w: {"threshold": "4"}),
            write("delete", METRIC_EDITORS),
        ),
    ),
    "api-watch-firings": Route(api=True, kwargs={"pk": "watch"}, methods=(get(),)),
    "api-team-goals": Route(
        api=True,
        kwargs=TEAM,
        methods=(
            get(),
            write(
                "post",
                GOAL_EDITORS,
                body=world_dict(
                    title="300 orders a day",
                    metric="@metric",
                    target="300",
                    start="2026-01-01",
                    end="2026-06-30",
                ),
            ),
        ),
    ),
    "api-goal": Route(
        api=True,
        kwargs={"pk": "goal"},
        methods=(
            get(),
            write("patch", GOAL_EDITORS, body=lambda w: {"target": "250"}),
            write("delete", GOAL_EDITORS),
        ),
    ),
    "api-goal-strategies": Route(
        api=True,
        kwargs={"pk": "goal"},
        methods=(write("post", GOAL_EDITORS, body=lambda w: {"title": "Win back lapsed buyers"}),),
    ),
    "api-strategy": Route(
        api=True,
        kwargs={"pk": "strategy"},
        methods=(
            get(),
            write("patch", GOAL_EDITORS, body=lambda w: {"title": "Renamed"}),
            write("delete", GOAL_EDITORS),
        ),
    ),
    "api-team-funnel": Route(api=True, kwargs=TEAM, methods=(get(),)),
    "api-tracking-plan": Route(
        api=True,
        kwargs={"requirement": "key"},
        methods=(
            get(),
            write(
                "post",
                TRACKING_EDITORS,
                body=lambda w: {"name": "coupon_view", "trigger": "When the coupon shows."},
            ),
        ),
    ),
    "api-tracking-event": Route(
        api=True,
        kwargs={"pk": "tracking_event"},
        methods=(
            write("patch", TRACKING_EDITORS, body=lambda w: {"trigger": "When the order is paid."}),
            write("delete", TRACKING_EDITORS),
        ),
    ),
    "api-requirement-analysis": Route(
        api=True,
        kwargs={"requirement": "requirement"},
        methods=(
            get(),
            write(
                "post",
                ANALYSTS,
                body=lambda w: {
                    "conclusion": "D1 +2pt",
                    "verdict": "improved",
                    "core_metric_moved": True,
                    "behaviour_moved": True,
                    "feedback_positive": True,
                },
            ),
        ),
    ),
}

# The admin site, covered as a family by its namespace (see the module's docstring).
ADMIN_NAMESPACE = "admin"


# ------------------------------------------------------------------------------------------ the patterns


def url_patterns() -> dict[str, str]:
    """Every URL pattern's name (with its namespaces) and route, walking included URLconfs; a pattern
    without a name is named by its route, so it still has to be in the matrix."""
    found: dict[str, str] = {}
    pending: list[tuple[str, str, URLPattern | URLResolver]] = [
        ("", "", pattern) for pattern in get_resolver().url_patterns
    ]
    while pending:
        namespace, route, pattern = pending.pop()
        route += str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            pending.extend((inner, route, child) for child in pattern.url_patterns)
        else:
            found[f"{namespace}{pattern.name or route}"] = route
    return found


def in_admin_family(name: str) -> bool:
    return name.startswith(f"{ADMIN_NAMESPACE}:")


def test_matrix_names_every_url_pattern() -> None:
    patterns = {name for name in url_patterns() if not in_admin_family(name)}

    assert sorted(patterns - set(MATRIX)) == [], "URL patterns missing from MATRIX"
    assert sorted(set(MATRIX) - patterns) == [], "MATRIX entries for URL patterns that no longer exist"


def test_admin_family_is_exactly_the_admin_site() -> None:
    """Whatever is under /admin/ is Django's admin site, and the admin site is nothing else: a view of
    the app's own mounted there would escape both the matrix and the admin's staff check."""
    in_family = {name for name in url_patterns() if in_admin_family(name)}
    under_admin = {name for name, route in url_patterns().items() if route.startswith("admin/")}

    assert "admin:index" in in_family
    assert in_family == under_admin


# ------------------------------------------------------------------------------------------- the data


@dataclass
class World:
    """Team A with a member per role and one of each object; team B, whose lead is the outsider; a
    staff user in no team; and a user in no team, to be added as a member."""

    users: dict[str, User]
    outsider: User
    outsider_team: int
    rival_metric: int
    rival_goal: int
    ops_user: int
    staff: User
    team: int
    key: str
    requirement: int
    membership: int
    workflow: int
    loop: int
    comment: int
    tracking_event: int
    metric: int
    metric_name: str
    bare_metric: int
    observation: int
    watch: int
    goal: int
    strategy: int
    webhook: int
    calendar_day: str
    analytics_metric: str = "cycle-time"
    state: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def ids(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if isinstance(value, int | str)}


def make_user(username: str, **fields: Any) -> User:
    return cast(User, UserFactory(username=username, **fields))


def build_world() -> World:
    lead = make_user("lead")
    team = make_team(lead=lead, name="Growth", key_prefix="GROW", time_zone="UTC")
    users = {
        "lead": lead,
        **{role: add_member(team, [role], username=role) for role in ROLES if role != "lead"},
    }
    outsider = make_user("rival_lead")
    rival = make_team(lead=outsider, name="Rival", key_prefix="RIVAL")
    rival_metric = dataloop_services.metric_create(actor=outsider, team_id=rival.pk, name="Rival orders")
    rival_goal = dataloop_services.goal_create(
        actor=outsider,
        team_id=rival.pk,
        title="Rival goal",
        metric=rival_metric.pk,
        target="10",
        start=dt.date(2026, 1, 1),
        end=dt.date(2026, 6, 30),
    )
    make_user("newcomer")

    ready: dict[str, Any] = {**READY_FIELDS, "design": "https://wiki.example.com/spec"}
    requirement = services.requirement_create(
        team=team, actor=lead, title="Day-2 red packet", launch_date=dt.date(2026, 3, 7), **ready
    )
    verify_tracking(requirement)
    loop = IterationLoop.objects.get(requirement=requirement)
    planned = services.tracking_event_add(
        requirement_id=requirement.pk, actor=lead, name="coupon_open", trigger="When the coupon opens."
    )
    comment = services.comment_create(requirement_id=requirement.pk, actor=users["ops"], body="On it")
    metric = dataloop_services.metric_create(actor=lead, team_id=team.pk, name="Red packet use", unit="%")
    bare = dataloop_services.metric_create(actor=lead, team_id=team.pk, name="Unused metric")
    observation = dataloop_services.observation_record(
        actor=lead, metric_id=metric.pk, date=dt.date(2026, 2, 1), value="10"
    )
    watch = dataloop_services.watch_create(
        actor=lead,
        team_id=team.pk,
        name="Use drop",
        metric=metric.pk,
        comparison="lt",
        threshold="1",
        title="Red packet use fell",
        owner_role="analyst",
    )
    goal = dataloop_services.goal_create(
        actor=lead,
        team_id=team.pk,
        title="200 orders a day",
        metric=metric.pk,
        target="200",
        start=dt.date(2026, 1, 1),
        end=dt.date(2026, 6, 30),
    )
    strategy = dataloop_services.strategy_create(actor=lead, goal_id=goal.pk, title="Red packets")
    webhook = notification_services.webhook_create(
        actor=lead,
        team_id=team.pk,
        name="Team chat",
        url="https://chat.example.com/hook/1",
        format="generic",
        kinds=["your_turn"],
        active=True,
    )
    day = calendar_services.calendar_day_set(
        team=team, actor=lead, date=dt.date(2031, 5, 5), is_workday=False
    )
    for user in [*users.values(), outsider]:
        Token.objects.create(user=user)  # so that revoking or replacing one changes a row
    return World(
        users=users,
        outsider=outsider,
        outsider_team=rival.pk,
        rival_metric=rival_metric.pk,
        rival_goal=rival_goal.pk,
        ops_user=users["ops"].pk,
        staff=make_user("staff", is_staff=True),
        team=team.pk,
        key=requirement.key,
        requirement=requirement.pk,
        membership=Membership.objects.get(team=team, user=users["ops"]).pk,
        workflow=Workflow.objects.get(team=team, is_current=True).pk,
        loop=loop.pk,
        comment=comment.pk,
        tracking_event=planned.pk,
        metric=metric.pk,
        metric_name=metric.name,
        bare_metric=bare.pk,
        observation=observation.pk,
        watch=watch.pk,
        goal=goal.pk,
        strategy=strategy.pk,
        webhook=webhook.pk,
        calendar_day=day.date.isoformat(),
    )


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """Built once for the module inside a transaction that is rolled back at its end; each test runs
    in a savepoint within it (the `db` fixture), so a write one test makes is gone for the next."""
    with django_db_blocker.unblock(), transaction.atomic():
        built = build_world()
        built.state = database_state()
        yield built
        transaction.set_rollback(True)


# The apps whose rows a request could write; not auth and sessions, which signing in writes (last_login,
# the session row).
WATCHED_APPS = ("roles", "workflows", "dataloop", "notifications", "worktime", "authtoken")


def database_state() -> dict[str, list[dict[str, Any]]]:
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for label in WATCHED_APPS
        for model in apps.get_app_config(label).get_models()
    }


def wrote(world: World) -> bool:
    """Whether the test's requests changed a row: every test starts from the World as it was built."""
    return database_state() != world.state


def wrote_nothing(world: World, method: Method) -> bool:
    """A read is not checked (a page may make the team's calendar row on first view, say): writes are
    what a refusal must leave undone, and skipping reads keeps the suite fast."""
    return method.verb == "get" or not wrote(world)


# ------------------------------------------------------------------------------------------ requests


def path_of(name: str, route: Route, world: World) -> str:
    ids = world.ids()
    path = reverse(name, kwargs={kwarg: ids[attribute] for kwarg, attribute in route.kwargs.items()})
    return f"{path}?{route.query.format(**ids)}" if route.query else path


def send(client: Client, name: str, method: Method, world: World, route: Route | None = None) -> Response:
    route = route or MATRIX[name]
    path = path_of(name, route, world)
    body = method.body(world) if method.body else {}
    if method.verb == "get":
        return client.get(path)
    if not route.api or any(isinstance(value, SimpleUploadedFile) for value in body.values()):
        # Forms (and uploads) go as multipart, as a browser sends them.
        return client.generic(
            method.verb.upper(), path, encode_multipart(BOUNDARY, body), content_type=MULTIPART_CONTENT
        )
    return client.generic(method.verb.upper(), path, json.dumps(body), content_type="application/json")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cases(select: Callable[[str, Route, Method], bool]) -> list[Any]:
    return [
        pytest.param(name, method, id=f"{name}-{method.verb}")
        for name, route in MATRIX.items()
        for method in route.methods
        if select(name, route, method)
    ]


def denied_cases() -> list[Any]:
    return [
        pytest.param(name, method, role, id=f"{name}-{method.verb}-{role}")
        for name, route in MATRIX.items()
        for method in route.methods
        if scope_of(route, method) == "team"
        for role in ROLES
        if role not in method.may
    ]


def allowed_role(method: Method) -> str:
    """The first role of ROLES that may, so a lead only where nobody else may: were it always a lead,
    a method refused to everyone but leads by mistake would still pass."""
    return next(role for role in ROLES if role in method.may)


# ---------------------------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("name", "method"), cases(lambda name, route, method: not route.api and not method.public)
)
def test_anonymous_caller_of_a_page_is_sent_to_sign_in(
    world: World, db: None, name: str, method: Method
) -> None:
    response = send(Client(), name, method, world)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert wrote_nothing(world, method)


@pytest.mark.parametrize(
    ("name", "method"), cases(lambda name, route, method: route.api and not method.public)
)
def test_anonymous_caller_of_the_api_gets_401(world: World, db: None, name: str, method: Method) -> None:
    response = send(Client(), name, method, world)

    assert response.status_code == 401, response.content[:300]
    assert response["WWW-Authenticate"] == "Token"
    assert wrote_nothing(world, method)


@pytest.mark.parametrize(("name", "method"), cases(lambda name, route, method: bool(method.public)))
def test_public_method_answers_a_signed_out_caller(world: World, db: None, name: str, method: Method) -> None:
    response = send(Client(), name, method, world)

    assert response.status_code in success(MATRIX[name], method), response.content[:300]


@pytest.mark.parametrize(
    ("name", "method"), cases(lambda name, route, method: scope_of(route, method) == "team")
)
def test_member_of_another_team_gets_404_and_changes_nothing(
    world: World, db: None, name: str, method: Method
) -> None:
    response = send(signed_in(world.outsider), name, method, world)

    assert response.status_code == 404, response.content[:300]
    assert wrote_nothing(world, method)


@pytest.mark.parametrize(("name", "method", "role"), denied_cases())
def test_member_without_the_role_is_refused_and_changes_nothing(
    world: World, db: None, name: str, method: Method, role: str
) -> None:
    response = send(signed_in(world.users[role]), name, method, world)

    assert response.status_code == method.refused, response.content[:300]
    assert wrote_nothing(world, method)


@pytest.mark.parametrize(
    ("name", "method"),
    cases(lambda name, route, method: bool(method.may) and scope_of(route, method) != "public"),
)
def test_member_with_the_role_is_answered(world: World, db: None, name: str, method: Method) -> None:
    response = send(signed_in(world.users[allowed_role(method)]), name, method, world)

    assert response.status_code in success(MATRIX[name], method), response.content[:300]
    assert wrote(world) == (method.verb != "get" and method.changes)


@pytest.mark.parametrize(
    ("name", "method"),
    cases(
        lambda name, route, method: (
            route.kwargs.get("team_id") == "team" and bool(set(route.kwargs.values()) & OBJECTS)
        )
    ),
)
def test_member_of_another_team_naming_their_own_team_still_gets_404(
    world: World, db: None, name: str, method: Method
) -> None:
    """The path names the outsider's own team (where they are lead) and an object of team A."""
    own_team = replace(world, team=world.outsider_team)
    response = send(signed_in(world.outsider), name, method, own_team)

    assert response.status_code == 404, response.content[:300]
    assert wrote_nothing(world, method)


@pytest.mark.parametrize(
    ("name", "method"),
    cases(lambda name, route, method: scope_of(route, method) == "team" and method.verb == "get"),
)
def test_staff_outside_the_team_read_it(world: World, db: None, name: str, method: Method) -> None:
    response = send(signed_in(world.staff), name, method, world)

    assert response.status_code == method.staff, response.content[:300]


@pytest.mark.parametrize(
    ("name", "method"),
    cases(lambda name, route, method: scope_of(route, method) == "team" and method.verb != "get"),
)
def test_staff_outside_the_team_cannot_write_in_it(world: World, db: None, name: str, method: Method) -> None:
    response = send(signed_in(world.staff), name, method, world)

    assert response.status_code == method.refused, response.content[:300]
    assert not wrote(world)


VERBS = ("get", "post", "put", "patch", "delete")


@pytest.mark.parametrize(
    ("name", "verb"),
    [
        pytest.param(name, verb, id=f"{name}-{verb}")
        for name, route in MATRIX.items()
        if route.api
        for verb in VERBS
        if verb not in {method.verb for method in route.methods}
    ],
)
def test_the_api_answers_405_to_a_method_the_matrix_does_not_list(
    world: World, db: None, name: str, verb: Literal["get", "post", "put", "patch", "delete"]
) -> None:
    """So a method added to an API view must be added to the matrix (and so checked) too."""
    response = send(signed_in(world.users["lead"]), name, Method(verb), world)

    assert response.status_code == 405, response.content[:300]


@pytest.mark.parametrize(
    ("name", "attribute"),
    [
        ("team-list", "team"),
        ("requirement-list", "requirement"),
        ("loop-list", "loop"),
        ("workflow-list", "workflow"),
    ],
)
def test_staff_outside_every_team_list_every_teams_rows(
    world: World, db: None, name: str, attribute: str
) -> None:
    response = signed_in(world.staff).get(reverse(name))

    assert response.status_code == 200
    assert getattr(world, attribute) in {row["id"] for row in response.json()["results"]}


@dataclass(frozen=True)
class CrossTeamWrite:
    """A write the outsider may make in their own team (the path names it, or their team's object),
    whose body names an object of team A."""

    name: str
    kwargs: dict[str, str]
    body: Body


# Every write whose body refers to another object by id: metrics, loops, requirements and members.
CROSS_TEAM_WRITES = [
    CrossTeamWrite(
        "api-team-watches",
        {"team_id": "outsider_team"},
        world_dict(
            name="Steal", metric="@metric", comparison="lt", threshold="5", title="Steal", owner_role="ops"
        ),
    ),
    CrossTeamWrite(
        "api-team-watches",
        {"team_id": "outsider_team"},
        world_dict(
            name="Steal",
            metric="@rival_metric",
            comparison="lt",
            threshold="5",
            title="Steal",
            assignee="@ops_user",
        ),
    ),
    CrossTeamWrite(
        "api-team-goals",
        {"team_id": "outsider_team"},
        world_dict(title="Steal", metric="@metric", target="1", start="2026-01-01", end="2026-02-01"),
    ),
    CrossTeamWrite(
        "api-team-goals",
        {"team_id": "outsider_team"},
        lambda w: {
            "title": "Steal",
            "metric": w.rival_metric,
            "target": "1",
            "start": "2026-01-01",
            "end": "2026-02-01",
            "first_level_metrics": [w.metric],
        },
    ),
    CrossTeamWrite(
        "api-goal-strategies", {"pk": "rival_goal"}, lambda w: {"title": "Steal", "requirements": [w.key]}
    ),
    CrossTeamWrite("api-goal-strategies", {"pk": "rival_goal"}, world_dict(title="Steal", metric="@metric")),
    CrossTeamWrite(
        "api-metric-observations",
        {"pk": "rival_metric"},
        world_dict(date="2026-02-03", value="1", loop="@loop"),
    ),
    CrossTeamWrite(
        "requirement-list", {}, world_dict(team="@outsider_team", title="Steal", assignee="@ops_user")
    ),
    CrossTeamWrite(
        "requirement-list",
        {},
        lambda w: {"team": w.outsider_team, "title": "Steal", "watchers": [w.ops_user]},
    ),
    CrossTeamWrite(
        "watches",
        {"team_id": "outsider_team"},
        world_dict(
            name="Steal",
            metric="@metric",
            comparison="lt",
            threshold="5",
            periods=1,
            period="day",
            title="Steal",
            priority="P1",
            owner_role="ops",
        ),
    ),
    CrossTeamWrite(
        "goals",
        {"team_id": "outsider_team"},
        world_dict(title="Steal", metric="@metric", target="1", start="2026-01-01", end="2026-02-01"),
    ),
    CrossTeamWrite(
        "observation-add",
        {"team_id": "outsider_team"},
        world_dict(metric="@metric", date="2026-02-03", value="1"),
    ),
    CrossTeamWrite(
        "goal-strategy-add",
        {"team_id": "outsider_team", "goal_id": "rival_goal"},
        lambda w: {
            "new-title": "Steal",
            "new-metric": w.metric,
        },
    ),
]


@pytest.mark.parametrize(
    "write_", [pytest.param(case, id=f"{case.name}-{n}") for n, case in enumerate(CROSS_TEAM_WRITES)]
)
def test_a_write_in_your_own_team_cannot_name_another_teams_objects(
    world: World, db: None, write_: CrossTeamWrite
) -> None:
    route = replace(MATRIX[write_.name], kwargs=write_.kwargs)
    method = next(method for method in route.methods if method.verb != "get")
    method = replace(method, body=write_.body)
    response = send(signed_in(world.outsider), write_.name, method, world, route)

    assert response.status_code in (400, 404), response.content[:300]
    assert not wrote(world)


# The admin pages without path arguments: the index and each model's list and add pages.
ADMIN_PAGES = sorted(
    name for name in url_patterns() if in_admin_family(name) and name.endswith(("_changelist", ":index"))
)


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_admin_pages_are_for_staff(world: World, db: None, name: str) -> None:
    path = reverse(name)
    superuser = make_user("admin", is_staff=True, is_superuser=True)

    anonymous = Client().get(path)
    member = signed_in(world.users["lead"]).get(path)
    staff = signed_in(superuser).get(path)

    assert (anonymous.status_code, member.status_code, staff.status_code) == (302, 302, 200)
    assert anonymous["Location"].startswith(reverse("admin:login"))
    assert member["Location"].startswith(reverse("admin:login"))
