"""API input and output shapes. Input serializers check types and sizes; the services check the rest."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from opsteam.api import MAX_ID
from roles.models import Membership, Role, Team
from workflows import engine
from workflows.markdown import render
from workflows.models import (
    AarrrStage,
    Comment,
    IncidentKind,
    IterationLoop,
    Outcome,
    Priority,
    Requirement,
    Stage,
    StageEvent,
    Transition,
    Workflow,
    WorkType,
)
from workflows.services import COMMENT_LIMIT, NOTE_LIMIT, TEXT_LIMITS

User = get_user_model()


@lru_cache(maxsize=512)
def _markdown(text: str) -> str:
    """Rendered Markdown, remembered: a pure function of the text, and the most expensive part of a
    page of requirements, which lists ask for again and again."""
    return render(text) if text else ""


class UserBriefSerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "name"]

    def get_name(self, user: Any) -> str:
        return user.get_full_name() or user.username


# --------------------------------------------------------------------------------------------- teams


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "key_prefix", "time_zone", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"key_prefix": {"validators": []}}  # uniqueness is the service's answer


class TeamUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["name", "time_zone"]
        extra_kwargs = {"name": {"required": False}, "time_zone": {"required": False}}


class MembershipSerializer(serializers.ModelSerializer):
    user = UserBriefSerializer(read_only=True)
    roles = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["id", "user", "roles", "joined_at"]

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=Role.choices)))
    def get_roles(self, membership: Membership) -> list[str]:
        return sorted(membership.roles)


class MembershipAddSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150, help_text=_("Username or user id."))
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), allow_empty=False, max_length=5
    )

    def validate_user(self, value: str) -> str:
        # The lookup reads any digits as an id: "²" or a 30-digit number is no user, not a crash.
        if value.isdigit() and not (value.isascii() and int(value) <= MAX_ID):
            raise serializers.ValidationError(_("No active user “%(value)s”.") % {"value": value})
        return value


class MembershipRolesSerializer(serializers.Serializer):
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), allow_empty=False, max_length=5
    )


class MeTeamSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    key_prefix = serializers.CharField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices))


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()
    teams = MeTeamSerializer(many=True)


# ------------------------------------------------------------------------------------------- workflows


class StageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Stage
        fields = ["slug", "name", "order", "owner_roles", "sla_hours"]


class TransitionSerializer(serializers.ModelSerializer):
    from_stage = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    to = serializers.SerializerMethodField(help_text=_("A stage slug, or iterate / close."))

    class Meta:
        model = Transition
        fields = ["from_stage", "to", "kind", "allowed_roles", "required_fields"]

    def get_to(self, transition: Transition) -> str:
        if transition.kind in engine.LOOP_EXITS:
            return transition.kind
        return transition.to_stage.slug if transition.to_stage else ""


class WorkflowSerializer(serializers.ModelSerializer):
    stages = StageSerializer(many=True, read_only=True)
    transitions = TransitionSerializer(many=True, read_only=True)

    class Meta:
        model = Workflow
        fields = ["id", "team", "name", "version", "is_current", "created_at", "stages", "transitions"]


class StageChangeSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False)
    sla_hours = serializers.IntegerField(min_value=1, max_value=24 * 365, required=False, allow_null=True)
    owner_roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), allow_empty=False, required=False
    )


class TransitionChangeSerializer(serializers.Serializer):
    # "from" is a Python keyword: the field is declared below under its JSON name.
    to = serializers.CharField(max_length=32)
    allowed_roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), allow_empty=False, required=False
    )
    required_fields = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(engine.GUARD_FIELDS)), required=False
    )


TransitionChangeSerializer._declared_fields["from"] = serializers.CharField(max_length=32)


class WorkflowChangeSerializer(serializers.Serializer):
    stages = serializers.DictField(child=StageChangeSerializer(), required=False)
    transitions = TransitionChangeSerializer(many=True, required=False)


# ---------------------------------------------------------------------------------------- requirements


class RequirementSerializer(serializers.ModelSerializer):
    stage = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    stage_name = serializers.CharField(source="stage.name", read_only=True)
    loop = serializers.IntegerField(source="loop_number", read_only=True)
    workflow_version = serializers.IntegerField(source="workflow.version", read_only=True)
    labels = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    watchers = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    description_html = serializers.SerializerMethodField()
    # Read-only fields lose `allow_blank`, and with it the "" their schema must allow: declared here.
    aarrr_stage = serializers.ChoiceField(choices=AarrrStage.choices, allow_blank=True, read_only=True)
    incident_kind = serializers.ChoiceField(choices=IncidentKind.choices, allow_blank=True, read_only=True)
    outcome = serializers.ChoiceField(choices=Outcome.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Requirement
        fields = [
            "id",
            "key",
            "team",
            "title",
            "description",
            "description_html",
            "hypothesis",
            "target_metric",
            "aarrr_stage",
            "priority",
            "incident_kind",
            "work_type",
            "assignee",
            "watchers",
            "labels",
            "due_date",
            "launch_date",
            "design",
            "resources_people",
            "resources_budget",
            "resources_other",
            "stage",
            "stage_name",
            "loop",
            "stage_entered_at",
            "workflow_version",
            "created_by",
            "created_at",
            "updated_at",
            "closed_at",
            "outcome",
        ]
        read_only_fields = fields

    def get_description_html(self, requirement: Requirement) -> str:
        return _markdown(requirement.description)

    def to_representation(self, instance: Requirement) -> dict[str, Any]:
        # The fields above describe the shape (and the OpenAPI schema); the answer itself is written
        # directly, which is several times cheaper than DRF's field-by-field walk for a page of 30.
        # tests/workflows/test_requirement_representation.py holds it to DRF's output byte for byte.
        return requirement_representation(instance)


_BUDGET = serializers.DecimalField(max_digits=12, decimal_places=2)


def _when(value: Any) -> str | None:
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in the current time zone, UTC as Z)."""
    if value is None:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def requirement_representation(r: Requirement) -> dict[str, Any]:
    """RequirementSerializer's answer for one requirement, with its stage and workflow selected and its
    labels and watchers prefetched (or read)."""
    return {
        "id": r.pk,
        "key": r.key,
        "team": r.team_id,
        "title": r.title,
        "description": r.description,
        "description_html": _markdown(r.description),
        "hypothesis": r.hypothesis,
        "target_metric": r.target_metric,
        "aarrr_stage": r.aarrr_stage,
        "priority": r.priority,
        "incident_kind": r.incident_kind,
        "work_type": r.work_type,
        "assignee": r.assignee_id,
        "watchers": [user.pk for user in r.watchers.all()],
        "labels": [label.name for label in r.labels.all()],
        "due_date": None if r.due_date is None else r.due_date.isoformat(),
        "launch_date": None if r.launch_date is None else r.launch_date.isoformat(),
        "design": r.design,
        "resources_people": r.resources_people,
        "resources_budget": None
        if r.resources_budget is None
        else _BUDGET.to_representation(r.resources_budget),
        "resources_other": r.resources_other,
        "stage": r.stage.slug,
        "stage_name": r.stage.name,
        "loop": r.loop_number,
        "stage_entered_at": _when(r.stage_entered_at),
        "workflow_version": r.workflow.version,
        "created_by": r.created_by_id,
        "created_at": _when(r.created_at),
        "updated_at": _when(r.updated_at),
        "closed_at": _when(r.closed_at),
        "outcome": r.outcome,
    }


class RequirementWriteSerializer(serializers.Serializer):
    """Create (team and title required) and update (every field optional)."""

    team = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(
        max_length=TEXT_LIMITS["description"], allow_blank=True, required=False
    )
    hypothesis = serializers.CharField(max_length=TEXT_LIMITS["hypothesis"], allow_blank=True, required=False)
    target_metric = serializers.CharField(max_length=200, allow_blank=True, required=False)
    aarrr_stage = serializers.ChoiceField(choices=AarrrStage.choices, allow_blank=True, required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    incident_kind = serializers.ChoiceField(choices=IncidentKind.choices, allow_blank=True, required=False)
    work_type = serializers.ChoiceField(choices=WorkType.choices, required=False)
    assignee = serializers.IntegerField(min_value=1, max_value=MAX_ID, allow_null=True, required=False)
    watchers = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), max_length=100, required=False
    )
    labels = serializers.ListField(child=serializers.CharField(max_length=50), max_length=30, required=False)
    due_date = serializers.DateField(allow_null=True, required=False)
    launch_date = serializers.DateField(allow_null=True, required=False)
    design = serializers.CharField(max_length=TEXT_LIMITS["design"], allow_blank=True, required=False)
    resources_people = serializers.CharField(max_length=200, allow_blank=True, required=False)
    resources_budget = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, allow_null=True, required=False
    )
    resources_other = serializers.CharField(
        max_length=TEXT_LIMITS["resources_other"], allow_blank=True, required=False
    )


class RequirementUpdateSerializer(RequirementWriteSerializer):
    team = None  # type: ignore[assignment]
    title = serializers.CharField(max_length=200, required=False)


class TransitionRequestSerializer(serializers.Serializer):
    to = serializers.CharField(
        max_length=32, help_text=_("A stage slug, or iterate / close out of optimize.")
    )
    note = serializers.CharField(max_length=NOTE_LIMIT, allow_blank=True, required=False, default="")
    outcome = serializers.ChoiceField(
        choices=Outcome.choices,
        allow_blank=True,
        required=False,
        default="",
        help_text=_("Required to close."),
    )


TransitionRequestSerializer._declared_fields = {
    "from": serializers.CharField(
        max_length=32, help_text=_("The stage you saw the requirement in; 409 if it has moved since.")
    ),
    **TransitionRequestSerializer._declared_fields,
}


class AvailableTransitionSerializer(serializers.Serializer):
    to = serializers.CharField(source="target")
    kind = serializers.CharField()
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    missing_fields = serializers.ListField(child=serializers.CharField())


class StageEventSerializer(serializers.ModelSerializer):
    loop = serializers.IntegerField(source="loop.number", read_only=True)
    actor = UserBriefSerializer(read_only=True)

    class Meta:
        model = StageEvent
        fields = ["id", "loop", "from_stage", "to_stage", "kind", "actor", "at", "note"]


class LoopSerializer(serializers.ModelSerializer):
    requirement_key = serializers.CharField(source="requirement.key", read_only=True)
    team = serializers.IntegerField(source="requirement.team_id", read_only=True)

    class Meta:
        model = IterationLoop
        fields = [
            "id",
            "requirement",
            "requirement_key",
            "team",
            "number",
            "started_at",
            "closed_at",
            "outcome",
            "conclusion",
            "verdict",
            "core_metric_moved",
            "behaviour_moved",
            "feedback_positive",
            "metric_name",
            "metric_before",
            "metric_after",
        ]


class CommentSerializer(serializers.ModelSerializer):
    author = UserBriefSerializer(read_only=True)
    body_html = serializers.SerializerMethodField()

    class Meta:
        model = Comment
        fields = ["id", "requirement", "author", "body", "body_html", "created_at", "edited_at"]
        read_only_fields = ["id", "requirement", "author", "body_html", "created_at", "edited_at"]
        extra_kwargs = {"body": {"max_length": COMMENT_LIMIT}}

    def get_body_html(self, comment: Comment) -> str:
        return _markdown(comment.body)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
