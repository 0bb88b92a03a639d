"""Goals and the AARRR funnel of a team (PRODUCT.md §6).

Views parse input, call a selector or a service, and render. A team or goal outside the user's teams
is a 404; a member without the role gets a 403 with the reason and nothing is written; bad input
re-renders the page with the errors next to the fields (400)."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from analytics.params import DEFAULT_PERIOD, PERIODS, scope_from_query
from opsteam.exceptions import InvalidInput, NotFound, NotPermitted, RoleNotAllowed
from roles.models import Team
from roles.permissions import roles_for, team_get_for_user
from workflows.forms import add_domain_errors
from workflows.models import AarrrStage
from workflows.selectors import BoardFilters, board_requirements
from workflows.views import role_reason

from . import selectors, services
from .forms_goals import GoalForm, LinkForm, StrategyForm
from .models import Goal, Metric, Strategy


class AuthedRequest(HttpRequest):
    """A request behind login_required: its user is signed in."""

    user: User


# Bar colours of the funnel chart (Okabe–Ito, as the analytics charts).
FUNNEL_COLOURS = {
    "open": "#0072B2",
    "started": "#56B4E9",
    "improved": "#009E73",
    "flat": "#999999",
    "worse": "#D55E00",
    "unjudged": "#CBD2DC",
}


def _team(request: AuthedRequest, team_id: int) -> Team:
    try:
        return team_get_for_user(user=request.user, team_id=team_id)
    except NotFound as exc:
        raise Http404 from exc


def _render(
    request: AuthedRequest, team: Team, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """Render with dates and times in the team's time zone."""
    with timezone.override(team.time_zone):
        return render(request, template, {"team": team, "nav": "data", **context}, status=status)


def denied(error: NotPermitted) -> PermissionDenied:
    """The 403 for a refused role, with the roles that may do it in the reader's words."""
    if isinstance(error, RoleNotAllowed):
        return PermissionDenied(role_reason(error.allowed_roles))
    return PermissionDenied(str(error.message))


def _require_editor(roles: frozenset[str]) -> None:
    if not roles & services.GOAL_EDITORS:
        raise PermissionDenied(role_reason(services.GOAL_EDITORS))


def plain(value: Decimal | None) -> str:
    """A value without trailing zeros: 200, 18.5, 0.25."""
    if value is None:
        return "—"
    text = f"{value.quantize(Decimal('0.01')).normalize():f}"
    return "0" if text == "-0" else text


def progress_percent(progress: float | None) -> int | None:
    """Progress as a whole percentage for the bar (0 … 100; the number beside it may say more)."""
    if progress is None:
        return None
    return max(0, min(100, round(progress * 100)))


def with_unit(value: Decimal | None, unit: str) -> str:
    """A value with its unit: 18.5%, 12840 users, 200."""
    text = plain(value)
    if value is None or not unit:
        return text
    return f"{text}{unit}" if unit in ("%", "‰") else f"{text} {unit}"


def _describe_goal(goal: Goal) -> dict[str, Any]:
    """What a goal row shows: baseline → latest → target (percentages each with their sign, other
    units once, after the target), and the progress bar's width."""
    unit = goal.metric.unit
    each = unit if unit in ("%", "‰") else ""
    progress = getattr(goal, "progress", None)
    return {
        "goal": goal,
        "baseline": with_unit(getattr(goal, "baseline", None), each),
        "latest": with_unit(getattr(goal, "latest_value", None), each),
        "latest_date": getattr(goal, "latest_date", None),
        "target": with_unit(goal.target, unit),
        "progress": progress,
        "progress_text": "—" if progress is None else f"{progress * 100:.0f}%",
        "bar": progress_percent(progress),
        "reached": progress is not None and progress >= 1,
    }


# --------------------------------------------------------------------------------------------- goals


@login_required
@require_http_methods(["GET", "POST"])
def goals(request: AuthedRequest, team_id: int) -> HttpResponse:
    """The team's goals with their progress, and the form that sets a new one."""
    team = _team(request, team_id)
    roles = roles_for(user=request.user, team=team)
    may_edit = bool(roles & services.GOAL_EDITORS)
    if request.method == "POST":
        _require_editor(roles)
    metrics: list[Metric] = list(selectors.metric_list_for_team(team=team)) if may_edit else []
    form = GoalForm(request.POST or None, metrics=metrics)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                goal = services.goal_create(actor=request.user, team_id=team.pk, **form.service_fields())
            except NotPermitted as error:
                raise denied(error) from error
            except InvalidInput as error:
                add_domain_errors(form, error)
            else:
                messages.success(request, _("Goal “%(title)s” is set.") % {"title": goal.title})
                return redirect("goal", team_id=team.pk, goal_id=goal.pk)
    rows = [_describe_goal(goal) for goal in selectors.goal_list_for_team(team=team)]
    context = {
        "data_tab": "goals",
        "rows": rows,
        "may_edit": may_edit,
        "form": form,
        "has_metrics": bool(metrics),
    }
    return _render(request, team, "dataloop/goals.html", context, status)


def _goal(request: AuthedRequest, team_id: int, goal_id: int) -> Goal:
    """The goal if the user may see it and it belongs to the team in the URL, else 404."""
    try:
        goal = selectors.goal_get_for_user(user=request.user, goal_id=goal_id)
    except NotFound as exc:
        raise Http404 from exc
    if goal.team_id != team_id:
        raise Http404
    return goal


def _goal_page(request: AuthedRequest, goal: Goal, *, status: int = 200, **forms: Any) -> HttpResponse:
    """The goal as a tree. Bound forms passed in (with their errors) replace the empty ones."""
    team = goal.team
    roles = roles_for(user=request.user, team=team)
    may_edit = bool(roles & services.GOAL_EDITORS)
    tree = selectors.goal_tree(goal=goal)
    metrics: list[Metric] = list(selectors.metric_list_for_team(team=team)) if may_edit else []
    open_requirements = (
        list(board_requirements(team=team, user=request.user, filters=BoardFilters()).prefetch_related(None))
        if may_edit
        else []
    )
    first_level = [
        {"metric": metric, "latest": with_unit(metric.latest_value, metric.unit), "date": metric.latest_date}
        for metric in tree["first_level"]
    ]
    goal_form = forms.get("goal_form") or GoalForm(
        metrics=metrics,
        initial={
            "title": goal.title,
            "metric": goal.metric_id,
            "target": plain(goal.target),
            "start": goal.start,
            "end": goal.end,
            "description": goal.description,
            "first_level_metrics": [metric.pk for metric in tree["first_level"]],
        },
    )
    strategies = []
    for row in tree["strategies"]:
        strategy: Strategy = row["strategy"]
        bound_edit = forms.get("strategy_form") if forms.get("strategy_id") == strategy.pk else None
        bound_link = forms.get("link_form") if forms.get("link_id") == strategy.pk else None
        strategies.append(
            {
                **row,
                "metric_latest": with_unit(row["metric"].latest_value, row["metric"].unit)
                if row["metric"]
                else "",
                "closed": len(row["requirements"]) - row["open"],
                "edit_form": bound_edit
                or StrategyForm(
                    metrics=metrics,
                    prefix=f"s{strategy.pk}",
                    initial={
                        "title": strategy.title,
                        "metric": strategy.metric_id,
                        "description": strategy.description,
                    },
                ),
                "edit_open": bound_edit is not None,
                "link_form": bound_link or LinkForm(prefix=f"l{strategy.pk}"),
            }
        )
    context = {
        "data_tab": "goals",
        "goal": goal,
        "summary": _describe_goal(goal),
        "first_level": first_level,
        "strategies": strategies,
        "may_edit": may_edit,
        "goal_form": goal_form,
        "goal_form_open": "goal_form" in forms,
        "new_strategy_form": forms.get("new_strategy_form") or StrategyForm(metrics=metrics, prefix="new"),
        "new_strategy_open": "new_strategy_form" in forms,
        "open_requirements": open_requirements,
    }
    return _render(request, team, "dataloop/goal.html", context, status)


@login_required
@require_http_methods(["GET", "POST"])
def goal(request: AuthedRequest, team_id: int, goal_id: int) -> HttpResponse:
    """The goal page; a POST with action=edit changes the goal, action=delete removes it."""
    found = _goal(request, team_id, goal_id)
    if request.method == "GET":
        return _goal_page(request, found)
    roles = roles_for(user=request.user, team=found.team)
    _require_editor(roles)
    action = request.POST.get("action", "")
    try:
        if action == "delete":
            services.goal_delete(actor=request.user, goal_id=found.pk)
            messages.success(request, _("Goal “%(title)s” is deleted.") % {"title": found.title})
            return redirect("goals", team_id=team_id)
        if action != "edit":
            return _goal_page(request, found, status=400)
        metrics = list(selectors.metric_list_for_team(team=found.team))
        form = GoalForm(request.POST, metrics=metrics)
        if form.is_valid():
            try:
                services.goal_update(actor=request.user, goal_id=found.pk, **form.service_fields())
            except InvalidInput as error:
                add_domain_errors(form, error)
            else:
                messages.success(request, _("Goal saved."))
                return redirect("goal", team_id=team_id, goal_id=found.pk)
        return _goal_page(request, found, status=400, goal_form=form)
    except NotPermitted as error:
        raise denied(error) from error
    except NotFound as exc:
        raise Http404 from exc


@login_required
@require_POST
def strategy_add(request: AuthedRequest, team_id: int, goal_id: int) -> HttpResponse:
    found = _goal(request, team_id, goal_id)
    _require_editor(roles_for(user=request.user, team=found.team))
    metrics = list(selectors.metric_list_for_team(team=found.team))
    form = StrategyForm(request.POST, metrics=metrics, prefix="new")
    if form.is_valid():
        try:
            strategy = services.strategy_create(actor=request.user, goal_id=found.pk, **form.service_fields())
        except NotPermitted as error:
            raise denied(error) from error
        except InvalidInput as error:
            add_domain_errors(form, error)
        else:
            messages.success(request, _("Strategy “%(title)s” added.") % {"title": strategy.title})
            return redirect(reverse("goal", kwargs={"team_id": team_id, "goal_id": found.pk}) + "#strategies")
    return _goal_page(request, found, status=400, new_strategy_form=form)


@login_required
@require_POST
def strategy(request: AuthedRequest, team_id: int, goal_id: int, strategy_id: int) -> HttpResponse:
    """Change a strategy by its form's `action`: edit, delete, link (requirements by key) or unlink."""
    found = _goal(request, team_id, goal_id)
    try:
        chosen = selectors.strategy_get_for_user(user=request.user, strategy_id=strategy_id)
    except NotFound as exc:
        raise Http404 from exc
    if chosen.goal_id != found.pk:
        raise Http404
    _require_editor(roles_for(user=request.user, team=found.team))
    action = request.POST.get("action", "")
    here = reverse("goal", kwargs={"team_id": team_id, "goal_id": found.pk}) + f"#strategy-{chosen.pk}"
    try:
        if action == "delete":
            services.strategy_delete(actor=request.user, strategy_id=chosen.pk)
            messages.success(request, _("Strategy “%(title)s” deleted.") % {"title": chosen.title})
            return redirect(reverse("goal", kwargs={"team_id": team_id, "goal_id": found.pk}) + "#strategies")
        if action == "edit":
            return _strategy_edit(request, found, chosen, here)
        if action in ("link", "unlink"):
            return _strategy_link(request, found, chosen, here, action)
    except NotPermitted as error:
        raise denied(error) from error
    except NotFound as exc:
        raise Http404 from exc
    return _goal_page(request, found, status=400)


def _strategy_edit(request: AuthedRequest, goal: Goal, chosen: Strategy, here: str) -> HttpResponse:
    metrics = list(selectors.metric_list_for_team(team=goal.team))
    form = StrategyForm(request.POST, metrics=metrics, prefix=f"s{chosen.pk}")
    if form.is_valid():
        try:
            services.strategy_update(actor=request.user, strategy_id=chosen.pk, **form.service_fields())
        except InvalidInput as error:
            add_domain_errors(form, error)
        else:
            messages.success(request, _("Strategy saved."))
            return redirect(here)
    return _goal_page(request, goal, status=400, strategy_form=form, strategy_id=chosen.pk)


def _strategy_link(
    request: AuthedRequest, goal: Goal, chosen: Strategy, here: str, action: str
) -> HttpResponse:
    """Add requirements (by key) to the strategy, or take one (by id) off it."""
    current = list(chosen.requirements.values_list("pk", flat=True))
    if action == "unlink":
        raw = request.POST.get("requirement", "")
        if not (raw.isascii() and raw.isdigit()) or int(raw) not in current:
            messages.error(request, _("That requirement is not on this strategy."))
            return _goal_page(request, goal, status=400)
        services.strategy_link(actor=request.user, strategy_id=chosen.pk, remove=[int(raw)])
        messages.success(request, _("Requirement taken off the strategy."))
        return redirect(here)
    form = LinkForm(request.POST, prefix=f"l{chosen.pk}")
    if form.is_valid():
        keys: list[str] = form.cleaned_data["keys"]
        try:
            services.strategy_link(actor=request.user, strategy_id=chosen.pk, add=keys)
        except InvalidInput as error:
            for message in error.errors.get("requirements", []) + error.errors.get("detail", []):
                form.add_error("keys", message)
        else:
            messages.success(
                request,
                _("Linked to the strategy: %(keys)s.") % {"keys": ", ".join(keys)},
            )
            return redirect(here)
    return _goal_page(request, goal, status=400, link_form=form, link_id=chosen.pk)


# -------------------------------------------------------------------------------------------- funnel


FUNNEL_COLUMNS = ("open", "closed", "loops_started", "loops_closed", "improved", "flat", "worse")


def _funnel_scope(request: AuthedRequest, team: Team) -> tuple[Any, dict[str, list[str]]]:
    query = {name: request.GET.get(name, "") for name in ("period", "start", "end")}
    query["team"] = str(team.pk)
    try:
        return scope_from_query(query, user=request.user), {}
    except InvalidInput as error:
        return None, error.errors
    except NotFound as exc:
        raise Http404 from exc


def _stage_label(row: dict[str, Any]) -> str:
    return str(row["label"]) if row["label"] is not None else _("No AARRR stage")


def _bars(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage, three horizontal bars on one scale: requirements open at the end of the period, loops
    started in it, and loops closed in it split by verdict (improved, flat, worse, none yet)."""
    top = max([1, *(max(r["open"], r["loops_started"], r["loops_closed"]) for r in rows)])

    def width(n: int) -> float:
        return round(100 * n / top, 2)

    bars = []
    for row in rows:
        unjudged = max(row["loops_closed"] - row["improved"] - row["flat"] - row["worse"], 0)
        segments = []
        x = 0.0
        for key, count, name in (
            ("improved", row["improved"], _("improved")),
            ("flat", row["flat"], _("flat")),
            ("worse", row["worse"], _("worse")),
            ("unjudged", unjudged, _("no verdict")),
        ):
            if count:
                segments.append(
                    {
                        "x": x,
                        "width": width(count),
                        "colour": FUNNEL_COLOURS[key],
                        "title": f"{name}: {count}",
                    }
                )
                x = round(x + width(count), 2)
        bars.append(
            {
                "row": row,
                "open_width": width(row["open"]),
                "started_width": width(row["loops_started"]),
                "segments": segments,
            }
        )
    return bars


@login_required
@require_GET
def funnel(request: AuthedRequest, team_id: int) -> HttpResponse:
    """Per AARRR stage over a period: requirements open and closed, loops started and closed, verdicts."""
    team = _team(request, team_id)
    scope, errors = _funnel_scope(request, team)
    context: dict[str, Any] = {
        "data_tab": "funnel",
        "errors": errors,
        "periods": PERIODS,
        "period": request.GET.get("period") or str(DEFAULT_PERIOD),
        "query": request.GET,
        "querystring": request.GET.urlencode(),
        "colours": FUNNEL_COLOURS,
    }
    if scope is None:
        return _render(request, team, "dataloop/funnel.html", context, status=400)
    rows = selectors.funnel(team=team, start=scope.start, end=scope.end)
    for row in rows:
        row["name"] = _stage_label(row)
        row["board_query"] = f"aarrr={row['stage']}" if row["stage"] in AarrrStage.values else ""
    totals = {column: sum(row[column] for row in rows) for column in FUNNEL_COLUMNS}
    context.update(
        {
            "scope": scope,
            "first_day": scope.start.astimezone(scope.zone).date(),
            "last_day": (scope.end - dt.timedelta(seconds=1)).astimezone(scope.zone).date(),
            "rows": rows,
            "totals": totals,
            "bars": _bars(rows),
        }
    )
    return _render(request, team, "dataloop/funnel.html", context)


@login_required
@require_GET
def funnel_csv(request: AuthedRequest, team_id: int) -> HttpResponse:
    team = _team(request, team_id)
    scope, errors = _funnel_scope(request, team)
    if scope is None:
        return HttpResponse(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    rows = selectors.funnel(team=team, start=scope.start, end=scope.end)
    first = scope.start.astimezone(scope.zone).date().isoformat()
    last = (scope.end - dt.timedelta(seconds=1)).astimezone(scope.zone).date().isoformat()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{team.key_prefix}-funnel-{first}-{last}.csv"'
    response.write("\ufeff")  # Excel reads UTF-8 (Chinese names) only with a byte-order mark
    writer = csv.writer(response)
    writer.writerow(
        [
            "aarrr_stage",
            "name",
            "requirements_open",
            "requirements_closed",
            "loops_started",
            "loops_closed",
            "improved",
            "flat",
            "worse",
            "start",
            "end",
        ]
    )
    for row in rows:
        writer.writerow(
            [row["stage"], _stage_label(row), *(row[column] for column in FUNNEL_COLUMNS), first, last]
        )
    return response
