"""API for a team's working-hours calendar: anyone in the team reads it, leads change it."""

from __future__ import annotations

import datetime as dt

from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsteam.api import LocalTimeField
from opsteam.exceptions import NotFound, NotPermitted
from roles.models import Team
from roles.permissions import may_manage_team, team_get_for_user

from . import selectors, services
from .models import CalendarDay, WorkCalendar


class CalendarDaySerializer(serializers.ModelSerializer):
    class Meta:
        model = CalendarDay
        fields = ["date", "is_workday", "name", "source"]
        read_only_fields = ["source"]


class CalendarSerializer(serializers.ModelSerializer):
    work_days = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=6), max_length=7)
    start_time = LocalTimeField()
    end_time = LocalTimeField()

    class Meta:
        model = WorkCalendar
        fields = ["enabled", "work_days", "start_time", "end_time"]


class CalendarOutSerializer(CalendarSerializer):
    time_zone = serializers.CharField(source="team.time_zone", read_only=True)
    days = serializers.SerializerMethodField()
    missing_years = serializers.SerializerMethodField(
        help_text=gettext_lazy(
            "Years (this one and the next) with no official China calendar: plain weekdays apply."
        )
    )

    class Meta(CalendarSerializer.Meta):
        fields = [*CalendarSerializer.Meta.fields, "time_zone", "days", "missing_years"]

    @extend_schema_field(CalendarDaySerializer(many=True))
    def get_days(self, calendar: WorkCalendar) -> list[dict[str, object]]:
        days = CalendarDay.objects.filter(team_id=calendar.team_id, date__year__gte=timezone.now().year - 1)
        return CalendarDaySerializer(days, many=True).data  # type: ignore[return-value]

    def get_missing_years(self, calendar: WorkCalendar) -> list[int]:
        year = timezone.now().year
        return selectors.calendar_years_missing(team=calendar.team, years=[year, year + 1])


TEAM_ID = OpenApiParameter("team_id", int, OpenApiParameter.PATH)


def _team(request: Request, team_id: int, *, manage: bool) -> Team:
    team = team_get_for_user(user=request.user, team_id=team_id)
    if manage and not may_manage_team(user=request.user, team=team):
        raise NotPermitted(_("Only the team's leads may change its calendar."))
    return team


class CalendarView(APIView):
    @extend_schema(
        parameters=[TEAM_ID],
        responses=CalendarOutSerializer,
        summary=gettext_lazy("The team's working hours"),
    )
    def get(self, request: Request, team_id: int) -> Response:
        team = _team(request, team_id, manage=False)
        calendar = services.calendar_create(team=team)
        return Response(CalendarOutSerializer(calendar).data)

    @extend_schema(parameters=[TEAM_ID], request=CalendarSerializer, responses=CalendarOutSerializer)
    def put(self, request: Request, team_id: int) -> Response:
        team = _team(request, team_id, manage=True)
        current = services.calendar_create(team=team)
        data = CalendarSerializer(current, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = {name: getattr(current, name) for name in CalendarSerializer.Meta.fields}
        calendar = services.calendar_update(
            team=team, actor=request.user, **{**fields, **data.validated_data}
        )
        return Response(CalendarOutSerializer(calendar).data)


class CalendarDaysView(APIView):
    @extend_schema(
        parameters=[TEAM_ID], request=CalendarDaySerializer, responses={201: CalendarDaySerializer}
    )
    def post(self, request: Request, team_id: int) -> Response:
        """Add or change a holiday or a make-up workday (leads)."""
        team = _team(request, team_id, manage=True)
        data = CalendarDaySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        day = services.calendar_day_set(team=team, actor=request.user, **data.validated_data)
        return Response(CalendarDaySerializer(day).data, status=status.HTTP_201_CREATED)


class CalendarDayView(APIView):
    @extend_schema(
        parameters=[TEAM_ID, OpenApiParameter("date", dt.date, OpenApiParameter.PATH)], responses={204: None}
    )
    def delete(self, request: Request, team_id: int, date: str) -> Response:
        team = _team(request, team_id, manage=True)
        try:
            day = dt.date.fromisoformat(date)
        except ValueError as exc:
            raise NotFound() from exc
        services.calendar_day_remove(team=team, actor=request.user, date=day)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("teams/<int:team_id>/calendar/", CalendarView.as_view(), name="api-team-calendar"),
    path("teams/<int:team_id>/calendar/days/", CalendarDaysView.as_view(), name="api-team-calendar-days"),
    path(
        "teams/<int:team_id>/calendar/days/<str:date>/",
        CalendarDayView.as_view(),
        name="api-team-calendar-day",
    ),
]
