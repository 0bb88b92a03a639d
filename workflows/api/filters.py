from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field

from opsteam.api import MAX_ID
from workflows.models import AarrrStage, IterationLoop, Priority, Requirement, Workflow


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(filters.NumberFilter):
    """An id: a whole number the database can hold. A fraction or a 300-digit number is a 400 with a
    message, not a database overflow."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class RequirementFilter(filters.FilterSet):
    team = IdFilter(field_name="team_id")
    stage = filters.CharFilter(field_name="stage__slug", help_text=_("Stage slug, e.g. design."))
    assignee = IdFilter(field_name="assignee_id")
    aarrr_stage = filters.ChoiceFilter(choices=AarrrStage.choices)
    priority = filters.ChoiceFilter(choices=Priority.choices)
    label = filters.CharFilter(field_name="labels__name", help_text=_("Label name."))
    open = filters.BooleanFilter(
        field_name="closed_at", lookup_expr="isnull", help_text=_("true: open only.")
    )
    due_before = filters.DateFilter(field_name="due_date", lookup_expr="lte")
    due_after = filters.DateFilter(field_name="due_date", lookup_expr="gte")
    q = filters.CharFilter(method="search", help_text=_("Text in the key or title."))

    class Meta:
        model = Requirement
        fields: list[str] = []

    def search(self, queryset: QuerySet[Requirement], name: str, value: str) -> QuerySet[Requirement]:
        value = value.strip()[:200]
        return queryset.filter(Q(key__iexact=value) | Q(title__icontains=value)) if value else queryset


class LoopFilter(filters.FilterSet):
    requirement = IdFilter(field_name="requirement_id")
    team = IdFilter(field_name="requirement__team_id")
    open = filters.BooleanFilter(
        field_name="closed_at", lookup_expr="isnull", help_text=_("true: open only.")
    )

    class Meta:
        model = IterationLoop
        fields: list[str] = []


class WorkflowFilter(filters.FilterSet):
    team = IdFilter(field_name="team_id")

    class Meta:
        model = Workflow
        fields = ["is_current"]
