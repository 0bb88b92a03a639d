"""The analytics query: team, period, filters and clock, from a request's query string (API and pages)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput
from roles.permissions import team_get_for_user, teams_visible_to
from workflows.models import AarrrStage, Priority

from .selectors import Filters, Scope

PERIODS = (30, 90, 180)
DEFAULT_PERIOD = 90
MAX_DAYS = 3 * 366


def _int(value: str, name: str, errors: dict[str, list[str]]) -> int | None:
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        errors[name] = [_("Enter a whole number.")]
        return None
    return int(value)


def _date(value: str, name: str, errors: dict[str, list[str]]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        errors[name] = [_("Enter a date as YYYY-MM-DD.")]
        return None


def scope_from_query(
    query: Mapping[str, Any], *, user: User | AnonymousUser, now: dt.datetime | None = None
) -> Scope:
    """Raise InvalidInput (a message per parameter) or NotFound (a team the user cannot see)."""
    errors: dict[str, list[str]] = {}
    get = lambda name: str(query.get(name, "") or "").strip()  # noqa: E731
    team_id = _int(get("team"), "team", errors)
    period = get("period") or str(DEFAULT_PERIOD)
    if period not in {*(str(p) for p in PERIODS), "custom"}:
        errors["period"] = [_("Choose 30, 90, 180 or custom.")]
    start_date = _date(get("start"), "start", errors)
    end_date = _date(get("end"), "end", errors)
    aarrr = get("aarrr")
    if aarrr and aarrr not in AarrrStage.values:
        errors["aarrr"] = [_("Unknown AARRR stage.")]
    priority = get("priority")
    if priority and priority not in Priority.values:
        errors["priority"] = [_("Unknown priority.")]
    assignee = _int(get("assignee"), "assignee", errors)
    label = get("label")
    if len(label) > 50:
        errors["label"] = [_("A label is 1 to 50 characters.")]
    time = get("time") or "calendar"
    if time not in ("calendar", "working"):
        errors["time"] = [_("Choose calendar or working.")]
    if period == "custom" and not errors:
        if start_date is None:
            errors["start"] = [_("A custom period needs a start date.")]
        if end_date is None:
            errors["end"] = [_("A custom period needs an end date.")]
        if start_date and end_date and not start_date <= end_date <= start_date + dt.timedelta(days=MAX_DAYS):
            errors["end"] = [_("The end is on or after the start, and at most three years later.")]
    if errors:
        raise InvalidInput(errors)

    if team_id is not None:
        teams: tuple = (team_get_for_user(user=user, team_id=team_id),)
    else:
        teams = tuple(teams_visible_to(user=user).order_by("name"))
        if not teams:
            raise InvalidInput({"team": [_("You are not in any team.")]})
    zone = ZoneInfo(teams[0].time_zone) if len(teams) == 1 else ZoneInfo("UTC")
    now = now or timezone.now()
    if period == "custom":
        assert start_date is not None and end_date is not None
        first, last = start_date, end_date
    else:
        last = now.astimezone(zone).date()
        first = last - dt.timedelta(days=int(period) - 1)
    return Scope(
        teams=teams,
        start=dt.datetime.combine(first, dt.time(0), zone),
        end=dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), zone),
        filters=Filters(aarrr_stage=aarrr, label=label, assignee_id=assignee, priority=priority),
        working=time == "working",
        now=now,
    )


def describe(scope: Scope) -> dict[str, Any]:
    """What the answer was computed over, echoed at the top of every analytics response."""
    f = scope.filters
    return {
        "teams": [team.pk for team in scope.teams],
        "start": scope.start.isoformat(),
        "end": scope.end.isoformat(),
        "time_zone": str(scope.zone),
        "time": "working" if scope.working else "calendar",
        "filters": {
            "aarrr": f.aarrr_stage,
            "label": f.label,
            "assignee": f.assignee_id,
            "priority": f.priority,
        },
    }
