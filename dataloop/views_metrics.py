"""The data pages of a team (PRODUCT.md §6): the metric catalogue with its observations and CSV import,
one metric with its chart, and the metric watches with their firings.

Views parse input, call a selector or a service, and render in the team's time zone. Another team's
objects are a 404; a role that may not write gets a 403 with the reason, before any input is read."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone, translation
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from analytics import charts
from opsteam.exceptions import InvalidInput, NotFound, NotPermitted, RoleNotAllowed
from roles.forms import add_service_errors
from roles.models import Team
from roles.permissions import roles_for, team_get_for_user
from roles.views import SignedInRequest
from workflows.selectors import team_members
from workflows.views import role_reason

from . import imports, selectors, services
from .forms_metrics import ImportForm, MetricForm, ObservationForm, WatchActiveForm, WatchForm, today_in
from .models import Comparison, Metric, MetricWatch, Period
from .presets import WATCH_PRESETS
from .services import METRIC_EDITORS, OBSERVATION_WRITERS, WATCH_EDITORS

SPARK_DAYS = 30
SPARK_WIDTH = 100
SPARK_HEIGHT = 24
CHART_PERIODS = (30, 90, 180)
OBSERVATIONS_PER_PAGE = 50
# Units written before the number (¥12.5) and right after it (25%); any other unit follows a space.
PREFIX_UNITS = ("¥", "$", "€", "£")
TIGHT_UNITS = ("%", "‰")
THRESHOLD_COMPARISONS = ("lt", "lte", "gt", "gte")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# ------------------------------------------------------------------------------------------ display


def format_value(value: Decimal | float | str | None, unit: str = "") -> str:
    """A number as people read it, with the metric's unit: 12,345 users, 25.5%, ¥38.2. Whole numbers have
    no decimals, others at most two (four below 1, so a rate such as 0.0035 keeps its digits)."""
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    places = Decimal("0.0001") if 0 < abs(number) < 1 else Decimal("0.01")
    text = f"{number.quantize(places):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    shown = formats.number_format(Decimal(text), use_l10n=True, force_grouping=True)
    if not unit:
        return shown
    if unit in PREFIX_UNITS:
        return f"-{unit}{shown[1:]}" if shown.startswith("-") else f"{unit}{shown}"
    if unit in TIGHT_UNITS:
        return f"{shown}{unit}"
    return f"{shown} {unit}"


def _span(periods: int, period: str) -> str:
    if period == Period.WEEK:
        return ngettext("%(n)d week", "%(n)d weeks", periods) % {"n": periods}
    if period == Period.MONTH:
        return ngettext("%(n)d month", "%(n)d months", periods) % {"n": periods}
    return ngettext("%(n)d day", "%(n)d days", periods) % {"n": periods}


def condition_text(
    *, metric_name: str, unit: str, comparison: str, threshold: Any, periods: int, period: str
) -> str:
    """A watch's condition in words: “D7 retention < 25% for 1 day”, “Churn rate rises for 3 months”."""
    values = {
        "metric": metric_name,
        "op": dict(Comparison.choices).get(comparison, comparison),
        "threshold": format_value(threshold, unit),
        "span": _span(periods, period),
    }
    has_threshold = threshold not in (None, "")
    if comparison == Comparison.RISES:
        if has_threshold:
            return _("%(metric)s rises by more than %(threshold)s for %(span)s") % values
        return _("%(metric)s rises for %(span)s") % values
    if comparison == Comparison.FALLS:
        if has_threshold:
            return _("%(metric)s falls by more than %(threshold)s for %(span)s") % values
        return _("%(metric)s falls for %(span)s") % values
    return _("%(metric)s %(op)s %(threshold)s for %(span)s") % values


def condition_of(watch: MetricWatch) -> str:
    return condition_text(
        metric_name=watch.metric.name,
        unit=watch.metric.unit,
        comparison=watch.comparison,
        threshold=watch.threshold,
        periods=watch.periods,
        period=watch.period,
    )


def _axis_unit(unit: str) -> str:
    """Chart ticks carry only a short unit (%, ¥); a word unit is said in the chart's description."""
    return unit if unit in PREFIX_UNITS + TIGHT_UNITS else ""


# ------------------------------------------------------------------------------------------ helpers


@contextmanager
def domain_errors() -> Iterator[None]:
    """A service's NotFound is a 404 page, a role it refuses a 403 page that names who may."""
    try:
        yield
    except NotFound as exc:
        raise Http404 from exc
    except RoleNotAllowed as exc:
        raise PermissionDenied(role_reason(exc.allowed_roles)) from exc
    except NotPermitted as exc:
        raise PermissionDenied(str(exc.message)) from exc


def _team(request: SignedInRequest, team_id: int) -> Team:
    with domain_errors():
        return team_get_for_user(user=request.user, team_id=team_id)


def _require(roles: frozenset[str], allowed: frozenset[str]) -> None:
    if not roles & allowed:
        raise PermissionDenied(role_reason(allowed))


def _metric(request: SignedInRequest, team: Team, metric_id: int) -> Metric:
    with domain_errors():
        metric = selectors.metric_get_for_user(user=request.user, metric_id=metric_id)
    if metric.team_id != team.pk:
        raise Http404
    return metric


def _watch(request: SignedInRequest, team: Team, watch_id: int) -> MetricWatch:
    with domain_errors():
        watch = selectors.watch_get_for_user(user=request.user, watch_id=watch_id)
    if watch.team_id != team.pk:
        raise Http404
    return watch


def _render(
    request: SignedInRequest, team: Team, template: str, context: Mapping[str, Any], status: int = 200
) -> HttpResponse:
    """Render with dates and times in the team's time zone."""
    with timezone.override(team.time_zone):
        return render(request, template, {"team": team, "nav": "data", **context}, status=status)


# ------------------------------------------------------------------------------------------ metrics


def _sparklines(team: Team, today: dt.date) -> dict[int, dict[str, Any]]:
    """Each metric's whole-product values of the last 30 days as polyline points, from one query."""
    start = today - dt.timedelta(days=SPARK_DAYS - 1)
    series: dict[int, list[tuple[dt.date, Decimal]]] = {}
    rows = (
        selectors.observation_list_for_team(team=team)
        .filter(segment="", date__gte=start, date__lte=today)
        .order_by("metric_id", "date")
        .values_list("metric_id", "date", "value")
    )
    for metric_id, day, value in rows:
        series.setdefault(metric_id, []).append((day, value))
    return {metric_id: _spark(values, start) for metric_id, values in series.items()}


def _spark(values: list[tuple[dt.date, Decimal]], start: dt.date) -> dict[str, Any]:
    low = min(value for _day, value in values)
    high = max(value for _day, value in values)
    pad = 2.0
    coordinates = []
    for day, value in values:
        x = (day - start).days / (SPARK_DAYS - 1) * SPARK_WIDTH
        share = float((high - value) / (high - low)) if high != low else 0.5
        y = pad + share * (SPARK_HEIGHT - 2 * pad)
        coordinates.append((round(x, 1), round(y, 1)))
    return {
        "points": " ".join(f"{x},{y}" for x, y in coordinates),
        "last_x": str(coordinates[-1][0]),
        "last_y": str(coordinates[-1][1]),
        "count": len(values),
    }


def _metrics_page(
    request: SignedInRequest,
    team: Team,
    roles: frozenset[str],
    *,
    metrics: list[Metric] | None = None,
    metric_form: MetricForm | None = None,
    observation_form: ObservationForm | None = None,
    import_form: ImportForm | None = None,
    import_problems: Sequence[str] = (),
    status: int = 200,
) -> HttpResponse:
    if metrics is None:
        metrics = list(selectors.metric_list_for_team(team=team))
    today = today_in(team)
    sparks = _sparklines(team, today)
    may_edit = bool(roles & METRIC_EDITORS)
    may_record = bool(roles & OBSERVATION_WRITERS)
    if may_record and observation_form is None:
        wanted = request.GET.get("metric", "")
        chosen = next((m.pk for m in metrics if str(m.pk) == wanted), "")
        observation_form = ObservationForm(
            team=team, metrics=metrics, initial={"date": today, "metric": chosen}
        )
    rows = [
        {
            "metric": metric,
            "latest": format_value(metric.latest_value, metric.unit),  # type: ignore[attr-defined]
            "spark": sparks.get(metric.pk),
        }
        for metric in metrics
    ]
    context = {
        "data_tab": "metrics",
        "rows": rows,
        "spark_days": SPARK_DAYS,
        "spark_width": SPARK_WIDTH,
        "spark_height": SPARK_HEIGHT,
        "may_edit": may_edit,
        "may_record": may_record,
        "metric_form": (metric_form or MetricForm()) if may_edit else None,
        "observation_form": observation_form if may_record else None,
        "import_form": (import_form or ImportForm()) if may_record else None,
        "import_problems": import_problems,
        "write_reason": "" if may_record else role_reason(OBSERVATION_WRITERS),
        "failed": status >= 400,
    }
    return _render(request, team, "dataloop/metrics.html", context, status)


@login_required
@require_http_methods(["GET", "POST"])
def metrics(request: SignedInRequest, team_id: int) -> HttpResponse:
    """The catalogue; a POST adds a metric."""
    team = _team(request, team_id)
    roles = roles_for(user=request.user, team=team)
    if request.method != "POST":
        return _metrics_page(request, team, roles)
    _require(roles, METRIC_EDITORS)
    form = MetricForm(request.POST)
    if form.is_valid():
        try:
            with domain_errors():
                metric = services.metric_create(
                    actor=request.user,
                    team_id=team.pk,
                    **form.service_fields(),
                )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Metric “%(name)s” added.") % {"name": metric.name})
            return redirect("metrics", team_id=team.pk)
    return _metrics_page(request, team, roles, metric_form=form, status=400)


@login_required
@require_POST
def observation_add(request: SignedInRequest, team_id: int) -> HttpResponse:
    team = _team(request, team_id)
    roles = roles_for(user=request.user, team=team)
    _require(roles, OBSERVATION_WRITERS)
    metrics = list(selectors.metric_list_for_team(team=team))
    form = ObservationForm(request.POST, team=team, metrics=metrics)
    if form.is_valid():
        try:
            with domain_errors():
                observation = services.observation_record(
                    actor=request.user,
                    **form.service_fields(),
                )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            metric = next(m for m in metrics if m.pk == observation.metric_id)
            messages.success(
                request,
                _("Recorded %(metric)s = %(value)s on %(date)s.")
                % {
                    "metric": metric.name + (f" ({observation.segment})" if observation.segment else ""),
                    "value": format_value(observation.value, metric.unit),
                    "date": observation.date.isoformat(),
                },
            )
            return redirect("metrics", team_id=team.pk)
    return _metrics_page(request, team, roles, metrics=metrics, observation_form=form, status=400)


@login_required
@require_POST
def observations_import(request: SignedInRequest, team_id: int) -> HttpResponse:
    """A CSV of observations: all rows or none; every problem row is listed with its line."""
    team = _team(request, team_id)
    roles = roles_for(user=request.user, team=team)
    _require(roles, OBSERVATION_WRITERS)
    form = ImportForm(request.POST, request.FILES)
    problems: list[str] = []
    if form.is_valid():
        try:
            with domain_errors():
                counts = services.observations_import(
                    actor=request.user,
                    team_id=team.pk,
                    content=form.cleaned_data["file"],
                )
        except imports.ObservationsRejected as exc:
            problems = [str(row) for row in exc.as_dict()["rows"]]
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Import done: %(created)d added, %(updated)d updated, %(unchanged)d unchanged.") % counts,
            )
            return redirect("metrics", team_id=team.pk)
    return _metrics_page(request, team, roles, import_form=form, import_problems=problems, status=400)


@login_required
@require_GET
def import_template(request: SignedInRequest, team_id: int) -> HttpResponse:
    """An example file with the columns and a few of the team's metrics, ready to fill in."""
    team = _team(request, team_id)
    metrics = [m for m in selectors.metric_list_for_team(team=team) if not m.name.startswith(FORMULA_START)]
    yesterday = (today_in(team) - dt.timedelta(days=1)).isoformat()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{team.key_prefix}-observations.csv"'
    response.write("\ufeff")  # Excel reads UTF-8 (Chinese names) only with a byte-order mark
    writer = csv.writer(response)
    writer.writerow([*imports.REQUIRED_COLUMNS, *imports.OPTIONAL_COLUMNS])
    for metric in metrics[:3]:
        value = metric.latest_value  # type: ignore[attr-defined]
        example = f"{value.normalize():f}" if value is not None else "0"
        writer.writerow([metric.name, yesterday, example, "", ""])
    if metrics:
        writer.writerow([metrics[0].name, yesterday, "0", "iOS", ""])
    return response


# ------------------------------------------------------------------------------------------- metric


def _days(request: SignedInRequest) -> int:
    wanted = request.GET.get("days", "")
    return int(wanted) if wanted in {str(days) for days in CHART_PERIODS} else selectors.SERIES_DAYS


def _day_labels(start: dt.date, end: dt.date) -> list[tuple[float, str]]:
    """A tick at each Monday for short periods, at each month's first day for long ones."""
    short = (end - start).days <= 45
    labels = []
    day = start
    while day <= end:
        if (short and day.weekday() == 0) or (not short and day.day == 1):
            labels.append((float(day.toordinal()), day.strftime("%m-%d")))
        day += dt.timedelta(days=1)
    return labels


def _metric_chart(
    metric: Metric,
    rows: list[tuple[dt.date, Decimal]],
    watches: list[MetricWatch],
    start: dt.date,
    end: dt.date,
) -> SafeString:
    unit = _axis_unit(metric.unit)
    thresholds = {
        (watch.comparison, watch.threshold)
        for watch in watches
        if watch.is_active and watch.comparison in THRESHOLD_COMPARISONS and watch.threshold is not None
    }
    symbols = dict(Comparison.choices)
    points = [
        charts.Point(x=float(day.toordinal()), y=float(value), label=day.isoformat()) for day, value in rows
    ]
    description = _("%(metric)s each day for the whole product, %(start)s to %(end)s.") % {
        "metric": metric.name,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    if metric.unit and not unit:
        description += " " + _("Unit: %(unit)s.") % {"unit": metric.unit}
    return charts.scatter_chart(
        chart_id="metric-chart",
        title=metric.name,
        desc=description,
        points=points,
        hlines=[
            charts.HLine(y=float(threshold), label=f"{symbols[comparison]} {format_value(threshold, unit)}")
            for comparison, threshold in sorted(thresholds)
        ],
        line=[(point.x, point.y) for point in points] if len(points) > 1 else None,
        x_labels=_day_labels(start, end),
        y_format=lambda value: format_value(value, unit),
        empty_text=_("No whole-product observation in this period."),
    )


def _metric_page(
    request: SignedInRequest,
    team: Team,
    metric: Metric,
    roles: frozenset[str],
    *,
    form: MetricForm | None = None,
    delete_errors: Sequence[str] = (),
    status: int = 200,
) -> HttpResponse:
    days = _days(request)
    today = today_in(team)
    start = today - dt.timedelta(days=days - 1)
    series = selectors.daily_series(metric=metric, start=start, end=today)
    watches = list(selectors.watch_list_for_team(team=team).filter(metric=metric))
    page = Paginator(selectors.observation_list(metric=metric), OBSERVATIONS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    may_edit = bool(roles & METRIC_EDITORS)
    if may_edit and form is None:
        form = MetricForm(
            initial={
                "name": metric.name,
                "unit": metric.unit,
                "direction": metric.direction,
                "description": metric.description,
            }
        )
    context = {
        "data_tab": "metrics",
        "metric": metric,
        "days": days,
        "periods": CHART_PERIODS,
        "chart": _metric_chart(metric, series, watches, start, today),
        "series_count": len(series),
        "page": page,
        "observations": [
            {"observation": o, "value": format_value(o.value, metric.unit)} for o in page.object_list
        ],
        "watches": [{"watch": w, "condition": condition_of(w)} for w in watches],
        "may_edit": may_edit,
        "may_record": bool(roles & OBSERVATION_WRITERS),
        "form": form if may_edit else None,
        "write_reason": "" if may_edit else role_reason(METRIC_EDITORS),
        "delete_errors": delete_errors,
        "failed": status >= 400,
    }
    return _render(request, team, "dataloop/metric.html", context, status)


@login_required
@require_http_methods(["GET", "POST"])
def metric(request: SignedInRequest, team_id: int, metric_id: int) -> HttpResponse:
    """One metric; a POST changes its name, unit, direction or description."""
    team = _team(request, team_id)
    found = _metric(request, team, metric_id)
    roles = roles_for(user=request.user, team=team)
    if request.method != "POST":
        return _metric_page(request, team, found, roles)
    _require(roles, METRIC_EDITORS)
    form = MetricForm(request.POST)
    if form.is_valid():
        try:
            with domain_errors():
                services.metric_update(
                    actor=request.user,
                    metric_id=found.pk,
                    **form.service_fields(),
                )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Saved."))
            return redirect("metric", team_id=team.pk, metric_id=found.pk)
    return _metric_page(request, team, found, roles, form=form, status=400)


@login_required
@require_POST
def metric_delete(request: SignedInRequest, team_id: int, metric_id: int) -> HttpResponse:
    team = _team(request, team_id)
    found = _metric(request, team, metric_id)
    roles = roles_for(user=request.user, team=team)
    _require(roles, METRIC_EDITORS)
    try:
        with domain_errors():
            services.metric_delete(actor=request.user, metric_id=found.pk)
    except InvalidInput as exc:
        refused = [message for messages_ in exc.errors.values() for message in messages_]
        return _metric_page(request, team, found, roles, delete_errors=refused, status=400)
    messages.success(request, _("Metric “%(name)s” deleted.") % {"name": found.name})
    return redirect("metrics", team_id=team.pk)


@login_required
@require_POST
def observation_delete(request: SignedInRequest, team_id: int, metric_id: int) -> HttpResponse:
    """Delete one of the metric's observations (its id is in the form)."""
    team = _team(request, team_id)
    found = _metric(request, team, metric_id)
    roles = roles_for(user=request.user, team=team)
    _require(roles, OBSERVATION_WRITERS)
    wanted = request.POST.get("observation", "")
    if not wanted.isdigit() or len(wanted) > 18:
        raise Http404
    with domain_errors():
        observation = selectors.observation_get_for_user(user=request.user, observation_id=int(wanted))
        if observation.metric_id != found.pk:
            raise NotFound()
        services.observation_delete(actor=request.user, observation_id=observation.pk)
    messages.success(
        request,
        _("Deleted the value of %(date)s%(segment)s.")
        % {
            "date": observation.date.isoformat(),
            "segment": f" ({observation.segment})" if observation.segment else "",
        },
    )
    return redirect("metric", team_id=team.pk, metric_id=found.pk)


# ------------------------------------------------------------------------------------------ watches


def _names_of(msgid: str) -> set[str]:
    """A preset's metric name in every language the site speaks (the catalogue holds it in the language
    the team was created in), folded for comparison."""
    names = {msgid.casefold()}
    for code, _label in settings.LANGUAGES:
        with translation.override(code):
            names.add(_(msgid).casefold())
    return names


def _preset_metric(preset: Mapping[str, object], metrics: Sequence[Metric]) -> Metric | None:
    names = _names_of(str(preset["metric"]))
    return next((metric for metric in metrics if metric.name.casefold() in names), None)


def _presets(metrics: Sequence[Metric]) -> list[dict[str, Any]]:
    rows = []
    for preset in WATCH_PRESETS:
        found = _preset_metric(preset, metrics)
        rows.append(
            {
                "key": preset["key"],
                "name": _(str(preset["name"])),
                "metric_found": found is not None,
                "metric_name": found.name if found else _(str(preset["metric"])),
                "condition": condition_text(
                    metric_name=found.name if found else _(str(preset["metric"])),
                    unit=found.unit if found else "",
                    comparison=str(preset["comparison"]),
                    threshold=preset["threshold"],
                    periods=int(str(preset["periods"])),
                    period=str(preset["period"]),
                ),
            }
        )
    return rows


def _preset_initial(key: str, metrics: Sequence[Metric]) -> dict[str, Any] | None:
    preset = next((p for p in WATCH_PRESETS if p["key"] == key), None)
    if preset is None:
        return None
    found = _preset_metric(preset, metrics)
    return {
        "name": _(str(preset["name"])),
        "metric": found.pk if found else "",
        "comparison": preset["comparison"],
        "threshold": preset["threshold"],
        "periods": preset["periods"],
        "period": preset["period"],
        "title": _(str(preset["title"])),
        "aarrr_stage": preset["aarrr_stage"],
        "priority": preset["priority"],
        "owner_role": preset["owner_role"],
        "description": _(str(preset["description"])),
        "is_active": True,
    }


def _open_requirement(watch: MetricWatch) -> Any:
    requirement = watch.open_requirement
    return requirement if requirement is not None and not requirement.is_closed else None


def _watches_page(
    request: SignedInRequest,
    team: Team,
    roles: frozenset[str],
    *,
    form: WatchForm | None = None,
    status: int = 200,
) -> HttpResponse:
    watches = list(selectors.watch_list_for_team(team=team))
    may_edit = bool(roles & WATCH_EDITORS)
    presets: list[dict[str, Any]] = []
    preset_missing = ""
    if may_edit:
        metrics = list(selectors.metric_list_for_team(team=team))
        presets = _presets(metrics)
        if form is None:
            initial = _preset_initial(request.GET.get("preset", ""), metrics)
            if initial is not None and not initial["metric"]:
                preset_missing = next(p["metric_name"] for p in presets if p["key"] == request.GET["preset"])
            form = WatchForm(
                initial=initial or {"is_active": True},
                metrics=metrics,
                members=team_members(team=team),
            )
    context = {
        "data_tab": "watches",
        "rows": [
            {"watch": w, "condition": condition_of(w), "open_requirement": _open_requirement(w)}
            for w in watches
        ],
        "may_edit": may_edit,
        "presets": presets,
        "preset_chosen": request.GET.get("preset", ""),
        "preset_missing": preset_missing,
        "form": form if may_edit else None,
        "write_reason": "" if may_edit else role_reason(WATCH_EDITORS),
        "failed": status >= 400,
    }
    return _render(request, team, "dataloop/watches.html", context, status)


@login_required
@require_http_methods(["GET", "POST"])
def watches(request: SignedInRequest, team_id: int) -> HttpResponse:
    """The team's watches; `?preset=key` fills the form from a preset; a POST creates a watch."""
    team = _team(request, team_id)
    roles = roles_for(user=request.user, team=team)
    if request.method != "POST":
        return _watches_page(request, team, roles)
    _require(roles, WATCH_EDITORS)
    form = WatchForm(
        request.POST, metrics=list(selectors.metric_list_for_team(team=team)), members=team_members(team=team)
    )
    if form.is_valid():
        try:
            with domain_errors():
                watch = services.watch_create(
                    actor=request.user,
                    team_id=team.pk,
                    **form.service_fields(),
                )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Watch “%(name)s” created.") % {"name": watch.name})
            return redirect("watch", team_id=team.pk, watch_id=watch.pk)
    return _watches_page(request, team, roles, form=form, status=400)


def _watch_initial(watch: MetricWatch) -> dict[str, Any]:
    return {
        "name": watch.name,
        "metric": watch.metric_id,
        "comparison": watch.comparison,
        "threshold": f"{watch.threshold.normalize():f}" if watch.threshold is not None else "",
        "periods": watch.periods,
        "period": watch.period,
        "title": watch.title,
        "aarrr_stage": watch.aarrr_stage,
        "priority": watch.priority,
        "assignee": watch.assignee_id or "",
        "owner_role": watch.owner_role,
        "description": watch.description,
        "is_active": watch.is_active,
    }


def _watch_page(
    request: SignedInRequest,
    team: Team,
    watch: MetricWatch,
    roles: frozenset[str],
    *,
    form: WatchForm | None = None,
    status: int = 200,
) -> HttpResponse:
    may_edit = bool(roles & WATCH_EDITORS)
    if may_edit and form is None:
        form = WatchForm(
            initial=_watch_initial(watch),
            metrics=list(selectors.metric_list_for_team(team=team)),
            members=team_members(team=team),
        )
    unit = watch.metric.unit
    firings = [
        {
            "firing": firing,
            "values": [format_value(value, unit) for value in firing.values],
        }
        for firing in selectors.watch_firings(watch=watch)
    ]
    context = {
        "data_tab": "watches",
        "watch": watch,
        "condition": condition_of(watch),
        "open_requirement": _open_requirement(watch),
        "firings": firings,
        "may_edit": may_edit,
        "form": form if may_edit else None,
        "write_reason": "" if may_edit else role_reason(WATCH_EDITORS),
        "failed": status >= 400,
    }
    return _render(request, team, "dataloop/watch.html", context, status)


@login_required
@require_http_methods(["GET", "POST"])
def watch(request: SignedInRequest, team_id: int, watch_id: int) -> HttpResponse:
    """One watch with its firings; a POST changes it."""
    team = _team(request, team_id)
    found = _watch(request, team, watch_id)
    roles = roles_for(user=request.user, team=team)
    if request.method != "POST":
        return _watch_page(request, team, found, roles)
    _require(roles, WATCH_EDITORS)
    form = WatchForm(
        request.POST, metrics=list(selectors.metric_list_for_team(team=team)), members=team_members(team=team)
    )
    if form.is_valid():
        try:
            with domain_errors():
                services.watch_update(
                    actor=request.user,
                    watch_id=found.pk,
                    **form.service_fields(),
                )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Saved."))
            return redirect("watch", team_id=team.pk, watch_id=found.pk)
    return _watch_page(request, team, found, roles, form=form, status=400)


@login_required
@require_POST
def watch_active(request: SignedInRequest, team_id: int, watch_id: int) -> HttpResponse:
    """Switch a watch on or off."""
    team = _team(request, team_id)
    found = _watch(request, team, watch_id)
    _require(roles_for(user=request.user, team=team), WATCH_EDITORS)
    form = WatchActiveForm(request.POST)
    form.is_valid()  # a checkbox: absent means off
    active = bool(form.cleaned_data.get("is_active"))
    with domain_errors():
        services.watch_update(actor=request.user, watch_id=found.pk, is_active=active)
    if active:
        messages.success(request, _("Watch “%(name)s” is on.") % {"name": found.name})
    else:
        messages.success(request, _("Watch “%(name)s” is off: it opens nothing.") % {"name": found.name})
    return redirect("watch", team_id=team.pk, watch_id=found.pk)


@login_required
@require_POST
def watch_delete(request: SignedInRequest, team_id: int, watch_id: int) -> HttpResponse:
    team = _team(request, team_id)
    found = _watch(request, team, watch_id)
    _require(roles_for(user=request.user, team=team), WATCH_EDITORS)
    with domain_errors():
        services.watch_delete(actor=request.user, watch_id=found.pk)
    messages.success(request, _("Watch “%(name)s” deleted.") % {"name": found.name})
    return redirect("watches", team_id=team.pk)
