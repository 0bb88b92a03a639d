"""The team's working-hours calendar in the web UI: members read it, leads change it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput, NotFound
from roles.models import Team
from roles.permissions import may_manage_team, team_get_for_user

from . import selectors, services
from .forms import CalendarDayForm, CalendarForm
from .models import CalendarDay


def _team(request: HttpRequest, team_id: int) -> Team:
    try:
        return team_get_for_user(user=request.user, team_id=team_id)
    except NotFound as exc:
        raise Http404 from exc


@login_required
def calendar(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team(request, team_id)
    is_lead = may_manage_team(user=request.user, team=team)
    current = services.calendar_create(team=team)
    form = CalendarForm(
        initial={
            "enabled": current.enabled,
            "work_days": current.work_days,
            "start_time": current.start_time,
            "end_time": current.end_time,
        }
    )
    day_form = CalendarDayForm()
    if request.method == "POST":
        if not is_lead:
            raise PermissionDenied
        if request.POST.get("action") == "days":
            day_form = CalendarDayForm(request.POST)
            if day_form.is_valid():
                services.calendar_day_set(team=team, actor=request.user, **day_form.cleaned_data)
                messages.success(request, _("Saved."))
                return redirect("team-calendar", team_id=team.pk)
        elif request.POST.get("action") == "remove":
            try:
                day = dt.date.fromisoformat(request.POST.get("date", ""))
            except ValueError as exc:
                raise Http404 from exc
            services.calendar_day_remove(team=team, actor=request.user, date=day)
            messages.success(request, _("Removed."))
            return redirect("team-calendar", team_id=team.pk)
        else:
            form = CalendarForm(request.POST)
            if form.is_valid():
                try:
                    services.calendar_update(team=team, actor=request.user, **form.cleaned_data)
                except InvalidInput as exc:
                    for field, errors in exc.errors.items():
                        for error in errors:
                            form.add_error(field if field in form.fields else None, error)
                else:
                    messages.success(request, _("Saved."))
                    return redirect("team-calendar", team_id=team.pk)
    year = timezone.now().astimezone(ZoneInfo(team.time_zone)).year
    return render(
        request,
        "worktime/calendar.html",
        {
            "team": team,
            "nav": "settings",
            "calendar": current,
            "is_lead": is_lead,
            "form": form,
            "day_form": day_form,
            "days": CalendarDay.objects.filter(team=team, date__year__in=[year, year + 1]),
            "missing_years": selectors.calendar_years_missing(team=team, years=[year, year + 1]),
        },
    )
