"""The shape of every analytics API answer, for the OpenAPI schema only: the views return the selectors'
dictionaries as they are (see api.py). Each answer is the `query` it was computed over (params.describe)
and the metric's own keys (selectors.py). Durations are whole seconds, calendar or working time as the
query's `time` says."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from workflows.models import LoopOutcome

# ------------------------------------------------------------------------------------------- helpers


def _seconds(help_text: str | Promise, *, null: bool = False) -> serializers.IntegerField:
    return serializers.IntegerField(allow_null=null, help_text=help_text)


def _count(help_text: str | Promise) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, help_text=help_text)


def _stage() -> serializers.CharField:
    return serializers.CharField(help_text=_("The stage's slug, e.g. design."))


# ------------------------------------------------------------------------------------- the query echo


class AnalyticsFiltersSerializer(serializers.Serializer):
    aarrr = serializers.CharField(
        allow_blank=True, help_text=_("The AARRR stage filtered on; empty when not filtered.")
    )
    label = serializers.CharField(
        allow_blank=True, help_text=_("The label name filtered on; empty when not filtered.")
    )
    assignee = serializers.IntegerField(
        allow_null=True, help_text=_("The assignee's user id filtered on; null when not filtered.")
    )
    priority = serializers.CharField(
        allow_blank=True, help_text=_("The priority filtered on (P0 to P3); empty when not filtered.")
    )


class AnalyticsQuerySerializer(serializers.Serializer):
    teams = serializers.ListField(
        child=serializers.IntegerField(), help_text=_("Ids of the teams the figures cover.")
    )
    start = serializers.DateTimeField(help_text=_("Start of the period (included), in the time zone below."))
    end = serializers.DateTimeField(help_text=_("End of the period (excluded), in the time zone below."))
    time_zone = serializers.CharField(
        help_text=_("IANA time zone days and weeks are cut in: the team's, or UTC for several teams.")
    )
    time = serializers.ChoiceField(
        choices=[("calendar", _("calendar")), ("working", _("working"))],
        help_text=_("Whether durations are calendar time or the team's working time."),
    )
    filters = AnalyticsFiltersSerializer(help_text=_("The filters applied."))


class _AnalyticsResponse(serializers.Serializer):
    query = AnalyticsQuerySerializer(help_text=_("What the figures were computed over."))


# ------------------------------------------------------------------------------------------ metrics


class AnalyticsCycleTimeSerializer(_AnalyticsResponse):
    count = _count(_("Loops closed in the period."))
    mean = _seconds(_("Mean cycle time, seconds; null when no loop closed."), null=True)
    p50 = _seconds(
        _("50th percentile cycle time (nearest rank), seconds; null when no loop closed."), null=True
    )
    p85 = _seconds(
        _("85th percentile cycle time (nearest rank), seconds; null when no loop closed."), null=True
    )
    p95 = _seconds(
        _("95th percentile cycle time (nearest rank), seconds; null when no loop closed."), null=True
    )


class AnalyticsStageTimeSerializer(serializers.Serializer):
    stage = _stage()
    count = _count(_("Loops closed in the period that spent time in this stage."))
    total = _seconds(_("Time those loops spent in this stage, all together, seconds."))
    mean = _seconds(_("Mean time a loop spent in this stage, seconds."))
    p50 = _seconds(_("50th percentile time in this stage (nearest rank), seconds."))
    p85 = _seconds(_("85th percentile time in this stage (nearest rank), seconds."))
    p95 = _seconds(_("95th percentile time in this stage (nearest rank), seconds."))


class AnalyticsTimeInStageSerializer(_AnalyticsResponse):
    stages = AnalyticsStageTimeSerializer(
        many=True,
        help_text=_("Stages in workflow order, then any others by slug; unvisited stages left out."),
    )
    bottleneck = serializers.CharField(
        allow_null=True,
        help_text=_("Slug of the stage with the largest total time; null when no loop closed."),
    )


class AnalyticsControlPointSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("The requirement's key, e.g. GROW-1."))
    loop = serializers.IntegerField(min_value=1, help_text=_("The loop's number within the requirement."))
    closed_at = serializers.DateTimeField(help_text=_("When the loop was iterated or closed (UTC)."))
    cycle = _seconds(_("The loop's cycle time, seconds."))
    outcome = serializers.ChoiceField(
        choices=LoopOutcome.choices, help_text=_("How the loop ended: iterate or close.")
    )
    rolling_average = _seconds(_("Mean cycle time of the points in the window centred here, seconds."))


class AnalyticsControlChartSerializer(_AnalyticsResponse):
    points = AnalyticsControlPointSerializer(
        many=True, help_text=_("One point per closed loop, by close time.")
    )
    p50 = _seconds(_("50th percentile cycle time of the points, seconds; null when none."), null=True)
    p85 = _seconds(_("85th percentile cycle time of the points, seconds; null when none."), null=True)
    window = serializers.IntegerField(
        min_value=5,
        help_text=_("Points the rolling average spans: a fifth of the points, made odd, at least 5."),
    )


class AnalyticsStageSeriesSerializer(serializers.Serializer):
    stage = _stage()
    open = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        help_text=_("Open loops in this stage at the end of each day, one number per entry of `days`."),
    )


class AnalyticsCumulativeFlowSerializer(_AnalyticsResponse):
    days = serializers.ListField(
        child=serializers.DateField(), help_text=_("Each day of the period, in the query's time zone.")
    )
    stages = AnalyticsStageSeriesSerializer(
        many=True, help_text=_("Stages in workflow order, then any others.")
    )
    closed = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        help_text=_(
            "Loops iterated or closed from the start of the period to the end of each day (cumulative)."
        ),
    )


class AnalyticsWeekSerializer(serializers.Serializer):
    week = serializers.CharField(help_text=_("ISO week, e.g. 2026-W10."))
    start = serializers.DateField(help_text=_("The week's Monday, in the query's time zone."))
    iterate = _count(_("Loops ended this week by iterating."))
    close = _count(_("Loops ended this week by closing the requirement."))
    total = _count(_("Loops ended this week."))


class AnalyticsThroughputSerializer(_AnalyticsResponse):
    weeks = AnalyticsWeekSerializer(many=True, help_text=_("Every ISO week that overlaps the period."))


class AnalyticsStageOpenSerializer(serializers.Serializer):
    stage = _stage()
    open = _count(_("Loops open in this stage now."))


class AnalyticsWipItemSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("The requirement's key, e.g. GROW-1."))
    title = serializers.CharField(help_text=_("The requirement's title."))
    stage = _stage()
    loop = serializers.IntegerField(
        min_value=1, help_text=_("The open loop's number within the requirement.")
    )
    started_at = serializers.DateTimeField(help_text=_("When the loop started (UTC)."))
    age = _seconds(_("Time since the loop started, seconds."))
    in_stage = _seconds(_("Time since the loop entered its current stage, seconds."))
    over_p85 = serializers.BooleanField(help_text=_("Whether the age is past the period's p85 cycle time."))


class AnalyticsWipSerializer(_AnalyticsResponse):
    stages = AnalyticsStageOpenSerializer(
        many=True, help_text=_("Stages in workflow order, then any others.")
    )
    total = _count(_("Loops open now."))
    p85 = _seconds(
        _("85th percentile cycle time of the period, seconds; null when no loop closed."), null=True
    )
    items = AnalyticsWipItemSerializer(many=True, help_text=_("The oldest open loops first, at most 200."))


class AnalyticsStageSlaSerializer(serializers.Serializer):
    stage = _stage()
    visits = _count(_("Visits to this stage that ended in the period."))
    breached = _count(_("Those that lasted longer than the stage's SLA."))
    rate = serializers.FloatField(
        allow_null=True, help_text=_("breached / visits, a fraction from 0 to 1; null when no visit ended.")
    )


class AnalyticsSlaSerializer(_AnalyticsResponse):
    stages = AnalyticsStageSlaSerializer(
        many=True, help_text=_("Stages with a visit that ended in the period, in workflow order.")
    )


class AnalyticsStageReworkSerializer(serializers.Serializer):
    stage = _stage()
    backward = _count(_("Backward transitions out of this stage in the period."))


class AnalyticsReworkSerializer(_AnalyticsResponse):
    stages = AnalyticsStageReworkSerializer(
        many=True, help_text=_("Stages in workflow order, then any others.")
    )
    closed_loops = _count(_("Loops closed in the period."))
    loops_with_rework = _count(_("Of those, loops with at least one backward transition."))
    share = serializers.FloatField(
        allow_null=True,
        help_text=_("loops_with_rework / closed_loops, a fraction from 0 to 1; null when no loop closed."),
    )


class AnalyticsLoopCountSerializer(serializers.Serializer):
    loops = serializers.IntegerField(min_value=1, help_text=_("Loops a requirement took."))
    requirements = _count(_("Requirements closed in the period that took that many loops."))


class AnalyticsLoopsPerRequirementSerializer(_AnalyticsResponse):
    distribution = AnalyticsLoopCountSerializer(many=True, help_text=_("By number of loops, ascending."))
    requirements = _count(_("Requirements closed in the period."))
    mean = serializers.FloatField(
        allow_null=True, help_text=_("Mean loops per requirement, to 2 decimals; null when none closed.")
    )
