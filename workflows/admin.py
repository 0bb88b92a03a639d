from django.contrib import admin
from django.http import HttpRequest

from .models import IterationLoop, Label, Requirement, Stage, StageEvent, TrackingEvent, Transition, Workflow


class StageInline(admin.TabularInline):
    model = Stage
    extra = 0


class TransitionInline(admin.TabularInline):
    model = Transition
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):  # type: ignore[no-untyped-def]
        # Offer only the stages of the workflow being edited.
        if db_field.name in ("from_stage", "to_stage") and request.resolver_match:
            workflow_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = Stage.objects.filter(workflow_id=workflow_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["team", "name", "version", "is_current", "created_at"]
    list_filter = ["team", "is_current"]
    inlines = [StageInline, TransitionInline]


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class LoopInline(ReadOnlyInline):
    model = IterationLoop
    fields = [
        "number",
        "started_at",
        "closed_at",
        "outcome",
        "verdict",
        "core_metric_moved",
        "behaviour_moved",
        "feedback_positive",
        "metric_name",
        "metric_before",
        "metric_after",
    ]


class EventInline(ReadOnlyInline):
    model = StageEvent
    fields = ["loop", "from_stage", "to_stage", "kind", "actor", "at", "note"]


@admin.register(Requirement)
class RequirementAdmin(admin.ModelAdmin):
    """Read-only: requirements change through the services (web UI and API), which keep the event log."""

    list_display = ["key", "title", "team", "stage", "loop_number", "priority", "assignee", "closed_at"]
    list_filter = ["team", "priority", "aarrr_stage", "stage__slug"]
    search_fields = ["key", "title"]
    list_select_related = ["team", "stage", "assignee"]
    inlines = [LoopInline, EventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(StageEvent)
class StageEventAdmin(admin.ModelAdmin):
    list_display = ["requirement", "loop", "from_stage", "to_stage", "kind", "actor", "at"]
    list_filter = ["kind"]
    list_select_related = ["requirement", "loop", "actor"]
    search_fields = ["requirement__key"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "team"]
    list_filter = ["team"]


@admin.register(TrackingEvent)
class TrackingEventAdmin(admin.ModelAdmin):
    """Read-only: tracking plans change on the requirement page or through the API, as roles allow."""

    list_display = ["name", "loop", "status", "owner", "status_changed_at"]
    list_filter = ["status"]
    search_fields = ["name", "loop__requirement__key"]
    list_select_related = ["loop__requirement", "owner"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
