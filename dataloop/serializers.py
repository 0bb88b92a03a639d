"""API shapes of the data loop. Input serializers check types and sizes; the services check the rest."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from opsteam.api import MAX_ID
from roles.models import Role
from workflows.api.serializers import UserBriefSerializer
from workflows.markdown import render
from workflows.models import AarrrStage, IterationLoop, Priority, TrackingEvent, TrackingStatus, Verdict

from .models import (
    Comparison,
    Direction,
    Goal,
    Metric,
    MetricWatch,
    Observation,
    Period,
    Strategy,
    WatchFiring,
)


def _id(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


# ------------------------------------------------------------------------------------------- metrics


class MetricSerializer(serializers.ModelSerializer):
    latest_value = serializers.DecimalField(
        max_digits=18,
        decimal_places=4,
        read_only=True,
        allow_null=True,
        help_text=_("Latest whole-product value."),
    )
    latest_date = serializers.DateField(read_only=True, allow_null=True)
    observation_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Metric
        fields = [
            "id",
            "team",
            "name",
            "unit",
            "direction",
            "description",
            "latest_value",
            "latest_date",
            "observation_count",
        ]
        read_only_fields = ["id", "team"]


class MetricWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    unit = serializers.CharField(max_length=20, required=False, allow_blank=True)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class MetricUpdateSerializer(MetricWriteSerializer):
    name = serializers.CharField(max_length=100, required=False)


class ObservationSerializer(serializers.ModelSerializer):
    requirement_key = serializers.CharField(
        source="loop.requirement.key", read_only=True, allow_null=True, default=None
    )
    loop_number = serializers.IntegerField(
        source="loop.number", read_only=True, allow_null=True, default=None
    )
    recorded_by = UserBriefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Observation
        fields = [
            "id",
            "metric",
            "date",
            "segment",
            "value",
            "loop",
            "requirement_key",
            "loop_number",
            "source",
            "recorded_by",
            "recorded_at",
        ]


class ObservationWriteSerializer(serializers.Serializer):
    date = serializers.DateField()
    value = serializers.DecimalField(max_digits=18, decimal_places=4)
    segment = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    loop = _id(required=False, allow_null=True, default=None, help_text=_("A loop id of the same team."))


class ObservationImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class ObservationImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=_("CSV with columns metric, date, value and optionally segment, loop (e.g. GROW-12#2).")
    )


# ------------------------------------------------------------------------------------------- watches


class WatchSerializer(serializers.ModelSerializer):
    metric_name = serializers.CharField(source="metric.name", read_only=True)
    open_requirement_key = serializers.CharField(
        source="open_requirement.key", read_only=True, allow_null=True, default=None
    )
    firing_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = MetricWatch
        fields = [
            "id",
            "team",
            "name",
            "metric",
            "metric_name",
            "comparison",
            "threshold",
            "periods",
            "period",
            "is_active",
            "title",
            "aarrr_stage",
            "priority",
            "assignee",
            "owner_role",
            "description",
            "open_requirement",
            "open_requirement_key",
            "fired_through",
            "evaluated_at",
            "firing_count",
            "created_at",
        ]


class WatchWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    metric = _id()
    comparison = serializers.ChoiceField(choices=Comparison.choices)
    threshold = serializers.DecimalField(max_digits=18, decimal_places=4, required=False, allow_null=True)
    periods = serializers.IntegerField(min_value=1, max_value=90, required=False)
    period = serializers.ChoiceField(choices=Period.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    title = serializers.CharField(max_length=200)
    aarrr_stage = serializers.ChoiceField(choices=AarrrStage.choices, required=False, allow_blank=True)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    assignee = _id(required=False, allow_null=True)
    owner_role = serializers.ChoiceField(choices=Role.choices, required=False, allow_blank=True)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class WatchUpdateSerializer(WatchWriteSerializer):
    name = serializers.CharField(max_length=120, required=False)
    metric = _id(required=False)
    comparison = serializers.ChoiceField(choices=Comparison.choices, required=False)
    title = serializers.CharField(max_length=200, required=False)


class WatchFiringSerializer(serializers.ModelSerializer):
    requirement_key = serializers.CharField(
        source="requirement.key", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = WatchFiring
        fields = ["id", "streak_start", "streak_end", "values", "requirement", "requirement_key", "fired_at"]


class WatchPresetSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    metric = serializers.CharField(help_text=_("The metric's name in the default catalogue."))
    comparison = serializers.ChoiceField(choices=Comparison.choices)
    threshold = serializers.CharField(allow_blank=True)
    periods = serializers.IntegerField()
    period = serializers.ChoiceField(choices=Period.choices)
    title = serializers.CharField()
    aarrr_stage = serializers.CharField()
    priority = serializers.CharField()
    owner_role = serializers.CharField()
    description = serializers.CharField()


# --------------------------------------------------------------------------------------------- goals


class StrategyRequirementSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()
    title = serializers.CharField()
    stage = serializers.CharField(source="stage.slug")
    loop_number = serializers.IntegerField(help_text=_("The loop it is in (how many loops it has taken)."))
    closed = serializers.SerializerMethodField()

    def get_closed(self, requirement: Any) -> bool:
        return requirement.closed_at is not None


class StrategySerializer(serializers.ModelSerializer):
    requirements = StrategyRequirementSerializer(many=True, read_only=True)

    class Meta:
        model = Strategy
        fields = ["id", "goal", "title", "description", "metric", "order", "requirements"]


class StrategyWriteSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    metric = _id(required=False, allow_null=True)
    order = serializers.IntegerField(min_value=0, max_value=1000, required=False)
    requirements = serializers.ListField(
        child=serializers.CharField(max_length=30),
        required=False,
        max_length=500,
        help_text=_("Requirement ids or keys of the goal's team."),
    )

    def validate_requirements(self, values: list[str]) -> list[Any]:
        return [int(v) if v.isascii() and v.isdigit() and len(v) < 19 else v for v in values]


class StrategyUpdateSerializer(StrategyWriteSerializer):
    title = serializers.CharField(max_length=200, required=False)


class GoalSerializer(serializers.ModelSerializer):
    metric_name = serializers.CharField(source="metric.name", read_only=True)
    baseline = serializers.DecimalField(
        max_digits=18, decimal_places=4, read_only=True, allow_null=True, default=None
    )
    latest_value = serializers.DecimalField(
        max_digits=18, decimal_places=4, read_only=True, allow_null=True, default=None
    )
    latest_date = serializers.DateField(read_only=True, allow_null=True, default=None)
    progress = serializers.FloatField(
        read_only=True,
        allow_null=True,
        default=None,
        help_text=_(
            "From the baseline (the value at the start) to the target: 0 to 1, above 1 when exceeded."
        ),
    )

    class Meta:
        model = Goal
        fields = [
            "id",
            "team",
            "title",
            "metric",
            "metric_name",
            "target",
            "start",
            "end",
            "description",
            "first_level_metrics",
            "baseline",
            "latest_value",
            "latest_date",
            "progress",
        ]


class GoalTreeSerializer(GoalSerializer):
    first_level = MetricSerializer(many=True, read_only=True)
    strategies = serializers.SerializerMethodField()

    class Meta(GoalSerializer.Meta):
        fields = [*GoalSerializer.Meta.fields, "first_level", "strategies"]

    def get_strategies(self, goal: Goal) -> list[dict[str, Any]]:
        return [StrategySerializer(row["strategy"]).data for row in self.context["strategies"]]


class GoalWriteSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    metric = _id()
    target = serializers.DecimalField(max_digits=18, decimal_places=4)
    start = serializers.DateField()
    end = serializers.DateField()
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    first_level_metrics = serializers.ListField(child=_id(), required=False, max_length=50)


class GoalUpdateSerializer(GoalWriteSerializer):
    title = serializers.CharField(max_length=200, required=False)
    metric = _id(required=False)
    target = serializers.DecimalField(max_digits=18, decimal_places=4, required=False)
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)


# -------------------------------------------------------------------------------------------- funnel


class FunnelRowSerializer(serializers.Serializer):
    stage = serializers.CharField(help_text=_("AARRR stage; empty for requirements without one."))
    open = serializers.IntegerField(help_text=_("Requirements open at the end of the period."))
    closed = serializers.IntegerField(help_text=_("Requirements closed in the period."))
    loops_started = serializers.IntegerField()
    loops_closed = serializers.IntegerField()
    improved = serializers.IntegerField(help_text=_("Loops closed in the period with this verdict."))
    flat = serializers.IntegerField()
    worse = serializers.IntegerField()


class FunnelSerializer(serializers.Serializer):
    team = serializers.IntegerField()
    start = serializers.DateField()
    end = serializers.DateField(help_text=_("Last day, included."))
    stages = FunnelRowSerializer(many=True)


# ------------------------------------------------------------------------------ tracking and analysis


class TrackingEventSerializer(serializers.ModelSerializer):
    owner = UserBriefSerializer(read_only=True, allow_null=True)
    loop_number = serializers.IntegerField(source="loop.number", read_only=True)

    class Meta:
        model = TrackingEvent
        fields = [
            "id",
            "loop",
            "loop_number",
            "name",
            "trigger",
            "properties",
            "owner",
            "status",
            "status_changed_at",
            "created_at",
        ]


class TrackingPlanSerializer(serializers.Serializer):
    loop = serializers.IntegerField()
    loop_number = serializers.IntegerField()
    total = serializers.IntegerField()
    planned = serializers.IntegerField()
    implemented = serializers.IntegerField()
    verified = serializers.IntegerField()
    complete = serializers.BooleanField(
        help_text=_("At least one event, all verified: instrument → analyze may go.")
    )
    events = TrackingEventSerializer(many=True)


class TrackingEventWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    trigger = serializers.CharField(max_length=300)
    properties = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    owner = _id(required=False, allow_null=True)


class TrackingEventUpdateSerializer(TrackingEventWriteSerializer):
    name = serializers.CharField(max_length=100, required=False)
    trigger = serializers.CharField(max_length=300, required=False)
    status = serializers.ChoiceField(
        choices=TrackingStatus.choices,
        required=False,
        help_text=_(
            "planned → implemented (engineer, analyst, lead) → verified (analyst, lead); back to planned."
        ),
    )


class ConclusionWriteSerializer(serializers.Serializer):
    conclusion = serializers.CharField(max_length=20_000)
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    core_metric_moved = serializers.BooleanField(help_text=_("Did the core metric move?"))
    behaviour_moved = serializers.BooleanField(help_text=_("Did user behaviour move?"))
    feedback_positive = serializers.BooleanField(help_text=_("Is user feedback positive?"))
    metric = _id(
        required=False,
        allow_null=True,
        help_text=_("The metric to read before/after; by default the one named by the target metric."),
    )


class ReadingSerializer(serializers.Serializer):
    metric = serializers.IntegerField(allow_null=True)
    metric_name = serializers.CharField(allow_blank=True)
    launch_date = serializers.DateField(allow_null=True)
    days = serializers.IntegerField(help_text=_("Days either side of the launch date."))
    before = serializers.DecimalField(max_digits=18, decimal_places=4, allow_null=True)
    after = serializers.DecimalField(max_digits=18, decimal_places=4, allow_null=True)
    before_days = serializers.IntegerField(help_text=_("Days with data before the launch."))
    after_days = serializers.IntegerField(help_text=_("Days with data from the launch on."))
    change = serializers.DecimalField(max_digits=18, decimal_places=4, allow_null=True)
    relative = serializers.FloatField(allow_null=True, help_text=_("Change over the before value."))


class LoopAnalysisSerializer(serializers.ModelSerializer):
    requirement_key = serializers.CharField(source="requirement.key", read_only=True)
    conclusion_html = serializers.SerializerMethodField()
    analyzed_by = UserBriefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = IterationLoop
        fields = [
            "id",
            "requirement",
            "requirement_key",
            "number",
            "conclusion",
            "conclusion_html",
            "verdict",
            "core_metric_moved",
            "behaviour_moved",
            "feedback_positive",
            "metric_name",
            "metric_before",
            "metric_after",
            "analyzed_by",
            "analyzed_at",
        ]

    def get_conclusion_html(self, loop: IterationLoop) -> str:
        return render(loop.conclusion)


class AnalysisSerializer(serializers.Serializer):
    loop = LoopAnalysisSerializer()
    reading = ReadingSerializer(help_text=_("The target metric around the launch date, read now."))
