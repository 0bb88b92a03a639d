"""Admin for site staff. Watches' state and firings are written only by the evaluation: read-only here."""

from django.contrib import admin
from django.http import HttpRequest

from .models import Goal, Metric, MetricWatch, Observation, Strategy, WatchFiring


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "unit", "direction"]
    list_filter = ["team", "direction"]
    search_fields = ["name"]


@admin.register(Observation)
class ObservationAdmin(admin.ModelAdmin):
    list_display = ["metric", "date", "segment", "value", "source", "loop", "recorded_by"]
    list_filter = ["metric__team", "source"]
    search_fields = ["metric__name", "segment"]
    date_hierarchy = "date"
    list_select_related = ["metric", "loop__requirement", "recorded_by"]
    raw_id_fields = ["loop"]


class FiringInline(admin.TabularInline):
    model = WatchFiring
    extra = 0
    can_delete = False
    fields = ["streak_start", "streak_end", "values", "requirement", "fired_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(MetricWatch)
class MetricWatchAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "metric", "comparison", "threshold", "periods", "period", "is_active"]
    list_filter = ["team", "is_active", "period"]
    search_fields = ["name", "title"]
    readonly_fields = ["open_requirement", "fired_through", "evaluated_at"]
    raw_id_fields = ["assignee"]
    inlines = [FiringInline]


class StrategyInline(admin.StackedInline):
    model = Strategy
    extra = 0
    raw_id_fields = ["requirements"]


@admin.register(Goal)
class GoalAdmin(admin.ModelAdmin):
    list_display = ["title", "team", "metric", "target", "start", "end"]
    list_filter = ["team"]
    search_fields = ["title"]
    filter_horizontal = ["first_level_metrics"]
    inlines = [StrategyInline]
