"""The lead's dashboard: every flow metric of a team as a chart, its numbers as a table, and a CSV file."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from opsteam.exceptions import InvalidInput, NotFound
from roles.models import Team
from roles.permissions import team_get_for_user
from workflows.models import AarrrStage, Label, Priority
from workflows.selectors import team_members
from worktime.selectors import calendar_definition

from . import charts, selectors
from .params import PERIODS, scope_from_query
from .selectors import Scope


def human(seconds: float | None) -> str:
    """Seconds as days or hours, in the reader's language."""
    if seconds is None:
        return "—"
    if abs(seconds) >= 86_400:
        return _("%(n)s d") % {"n": f"{seconds / 86_400:.1f}"}
    return _("%(n)s h") % {"n": f"{seconds / 3_600:.1f}"}


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _team(request: HttpRequest, team_id: int) -> Team:
    try:
        return team_get_for_user(user=request.user, team_id=team_id)
    except NotFound as exc:
        raise Http404 from exc


def _scope(request: HttpRequest, team: Team) -> tuple[Scope | None, dict[str, list[str]]]:
    query = {key: request.GET.get(key, "") for key in request.GET}
    query["team"] = str(team.pk)
    try:
        return scope_from_query(query, user=request.user), {}
    except InvalidInput as error:
        return None, error.errors


def _stage_names(scope: Scope) -> dict[str, str]:
    return {slug: _(name) for slug, name in selectors.stage_order(scope)}


@login_required
@require_GET
def dashboard(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team(request, team_id)
    scope, errors = _scope(request, team)
    context: dict[str, Any] = {
        "team": team,
        "nav": "analytics",
        "errors": errors,
        "query": request.GET,
        "periods": PERIODS,
        "aarrr_choices": AarrrStage.choices,
        "priority_choices": Priority.choices,
        "members": team_members(team=team),
        "labels": list(Label.objects.filter(team=team).order_by("name").values_list("name", flat=True)),
        "has_calendar": calendar_definition(team=team) is not None,
        "querystring": request.GET.urlencode(),
    }
    if scope is None:
        with timezone.override(team.time_zone):
            return render(request, "analytics/dashboard.html", context, status=400)
    names = _stage_names(scope)
    context.update(_figures(scope, names))
    context["scope"] = scope
    context["last_day"] = (scope.end - dt.timedelta(seconds=1)).astimezone(scope.zone).date()
    with timezone.override(team.time_zone):
        return render(request, "analytics/dashboard.html", context)


def _figures(scope: Scope, names: dict[str, str]) -> dict[str, Any]:
    cycle = selectors.cycle_time(scope)
    stages = selectors.time_in_stage(scope)
    control = selectors.control_chart(scope)
    flow = selectors.cumulative_flow(scope)
    weeks = selectors.throughput(scope)["weeks"]
    wip = selectors.wip(scope, p85=cycle["p85"])
    sla = selectors.sla(scope)["stages"]
    rework = selectors.rework(scope)
    loops = selectors.loops_per_requirement(scope)
    name = lambda slug: names.get(slug, slug)  # noqa: E731
    for row in [*stages["stages"], *flow["stages"], *wip["stages"], *wip["items"], *sla, *rework["stages"]]:
        row["name"] = name(row["stage"])
    zone = scope.zone
    points = control["points"]
    x_labels = _time_labels(scope)
    return {
        "cycle": cycle,
        "stages": stages,
        "bottleneck_name": name(stages["bottleneck"]) if stages["bottleneck"] else "",
        "control": control,
        "flow": flow,
        "flow_rows": [
            {"day": day, "open": [s["open"][i] for s in flow["stages"]], "closed": flow["closed"][i]}
            for i, day in enumerate(flow["days"])
        ],
        "weeks": weeks,
        "wip": wip,
        "sla": sla,
        "rework": rework,
        "loops": loops,
        "charts": {
            "control": charts.scatter_chart(
                chart_id="control-chart",
                title=_("Control chart"),
                desc=_("Cycle time of each loop closed in the period, by the day it closed."),
                points=[
                    charts.Point(
                        x=p["closed_at"].timestamp(),
                        y=p["cycle"],
                        label=f"{p['key']} #{p['loop']} · {p['closed_at'].astimezone(zone):%Y-%m-%d}",
                        href=reverse("requirement", kwargs={"key": p["key"]}),
                    )
                    for p in points
                ],
                hlines=[
                    charts.HLine(y=control[k], label=f"{k} {human(control[k])}")
                    for k in ("p50", "p85")
                    if control[k] is not None
                ],
                line=[(p["closed_at"].timestamp(), p["rolling_average"]) for p in points] or None,
                line_label=_("rolling average"),
                y_unit=_unit(control["p85"]),
                x_labels=x_labels,
                y_format=human,
                empty_text=_("No loop closed in this period."),
            ),
            "stages": charts.bar_chart(
                chart_id="time-in-stage",
                title=_("Time in stage"),
                desc=_("Total time loops closed in the period spent in each stage."),
                bars=[charts.Bar(label=s["name"], value=s["total"] or 0) for s in stages["stages"]],
                highlight=name(stages["bottleneck"]) if stages["bottleneck"] else None,
                y_format=human,
                y_unit=_unit(max((s["total"] or 0 for s in stages["stages"]), default=0)),
                empty_text=_("No loop closed in this period."),
            ),
            "flow": charts.stacked_area_chart(
                chart_id="cumulative-flow",
                title=_("Cumulative flow"),
                desc=_(
                    "Open loops in each stage at the end of each day, and loops closed since the period began."
                ),
                x_labels=flow["days"],
                series=[
                    charts.Series(name=_("closed"), values=[float(n) for n in flow["closed"]]),
                    *[
                        charts.Series(name=s["name"], values=[float(n) for n in s["open"]])
                        for s in reversed(flow["stages"])
                    ],
                ],
                y_format=_count,
                empty_text=_("Nothing in this period."),
            ),
            "throughput": charts.stacked_bar_chart(
                chart_id="throughput",
                title=_("Throughput per week"),
                desc=_("Loops closed each ISO week, by outcome."),
                x_labels=[w["week"] for w in weeks],
                series=[
                    charts.Series(name=_("iterate"), values=[float(w["iterate"]) for w in weeks]),
                    charts.Series(name=_("close"), values=[float(w["close"]) for w in weeks]),
                ],
                y_format=_count,
                empty_text=_("Nothing in this period."),
            ),
            "wip": charts.bar_chart(
                chart_id="wip",
                title=_("Work in progress"),
                desc=_("Open loops in each stage now."),
                bars=[charts.Bar(label=s["name"], value=s["open"]) for s in wip["stages"]],
                y_format=_count,
                empty_text=_("Nothing open."),
            ),
            "sla": charts.bar_chart(
                chart_id="sla",
                title=_("SLA breach rate"),
                desc=_("Share of stage visits ended in the period that took longer than the stage's SLA."),
                bars=[charts.Bar(label=s["name"], value=s["rate"] or 0) for s in sla],
                y_format=percent,
                empty_text=_("No stage visit ended in this period."),
            ),
            "rework": charts.bar_chart(
                chart_id="rework",
                title=_("Rework"),
                desc=_("Backward transitions in the period, by the stage they left."),
                bars=[charts.Bar(label=s["name"], value=s["backward"]) for s in rework["stages"]],
                y_format=_count,
                empty_text=_("No rework in this period."),
            ),
            "loops": charts.bar_chart(
                chart_id="loops-per-requirement",
                title=_("Loops per requirement"),
                desc=_("How many loops the requirements closed in the period took."),
                bars=[
                    charts.Bar(label=str(row["loops"]), value=row["requirements"])
                    for row in loops["distribution"]
                ],
                y_format=_count,
                empty_text=_("No requirement closed in this period."),
            ),
        },
    }


def _unit(seconds: float | None) -> float:
    """Ticks fall on whole days for durations of days, on whole hours below that."""
    return 86_400.0 if (seconds or 0) >= 86_400 else 3_600.0


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _time_labels(scope: Scope) -> list[tuple[float, str]]:
    """A tick at each month's first day in the period (each week's Monday for short periods)."""
    zone = scope.zone
    labels = []
    day = scope.start.astimezone(zone).date()
    end = scope.end.astimezone(zone).date()
    short = (end - day).days <= 45
    while day < end:
        if (short and day.weekday() == 0) or (not short and day.day == 1):
            at = dt.datetime.combine(day, dt.time(0), zone)
            labels.append((at.timestamp(), day.strftime("%m-%d")))
        day += dt.timedelta(days=1)
    return labels


# ---------------------------------------------------------------------------------------------- CSV

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A spreadsheet must not run what a cell holds: text that would start a formula gets a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _rows(metric: str, scope: Scope) -> tuple[list[str], Iterable[list[Any]]]:
    if metric == "cycle-time":
        c = selectors.cycle_time(scope)
        return ["count", "mean_s", "p50_s", "p85_s", "p95_s"], [
            [c["count"], c["mean"], c["p50"], c["p85"], c["p95"]]
        ]
    if metric == "time-in-stage":
        s = selectors.time_in_stage(scope)["stages"]
        columns = ["stage", "loops", "total_s", "mean_s", "p50_s", "p85_s", "p95_s"]
        keys = ["stage", "count", "total", "mean", "p50", "p85", "p95"]
        return columns, ([row[k] for k in keys] for row in s)
    if metric == "control-chart":
        points = selectors.control_chart(scope)["points"]
        return ["key", "loop", "closed_at", "cycle_s", "outcome", "rolling_average_s"], (
            [p["key"], p["loop"], p["closed_at"], p["cycle"], p["outcome"], p["rolling_average"]]
            for p in points
        )
    if metric == "cumulative-flow":
        flow = selectors.cumulative_flow(scope)
        columns = ["day", *[s["stage"] for s in flow["stages"]], "closed"]
        return columns, (
            [day, *[s["open"][i] for s in flow["stages"]], flow["closed"][i]]
            for i, day in enumerate(flow["days"])
        )
    if metric == "throughput":
        weeks = selectors.throughput(scope)["weeks"]
        return ["week", "start", "iterate", "close", "total"], (
            [w["week"], w["start"], w["iterate"], w["close"], w["total"]] for w in weeks
        )
    if metric == "wip":
        items = selectors.wip(scope, limit=100_000)["items"]
        return ["key", "title", "stage", "loop", "started_at", "age_s", "in_stage_s", "over_p85"], (
            [
                i["key"],
                i["title"],
                i["stage"],
                i["loop"],
                i["started_at"],
                i["age"],
                i["in_stage"],
                i["over_p85"],
            ]
            for i in items
        )
    if metric == "sla":
        rows = selectors.sla(scope)["stages"]
        return ["stage", "visits", "breached", "rate"], (
            [r["stage"], r["visits"], r["breached"], r["rate"]] for r in rows
        )
    if metric == "rework":
        rows = selectors.rework(scope)["stages"]
        return ["stage", "backward"], ([r["stage"], r["backward"]] for r in rows)
    if metric == "loops-per-requirement":
        rows = selectors.loops_per_requirement(scope)["distribution"]
        return ["loops", "requirements"], ([r["loops"], r["requirements"]] for r in rows)
    raise Http404


@login_required
@require_GET
def dashboard_csv(request: HttpRequest, team_id: int, metric: str) -> HttpResponse:
    team = _team(request, team_id)
    scope, errors = _scope(request, team)
    if scope is None:
        return HttpResponse(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    columns, rows = _rows(metric, scope)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = scope.end.astimezone(scope.zone).date().isoformat()
    response["Content-Disposition"] = f'attachment; filename="{team.key_prefix}-{metric}-{stamp}.csv"'
    response.write("\ufeff")  # Excel reads UTF-8 (Chinese titles) only with a byte-order mark
    writer = csv.writer(response)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return response
