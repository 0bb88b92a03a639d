"""Forms of the requirement pages. They check the shape of the input; the services decide the rest,
and their per-field errors are put back on the form next to the fields."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from opsteam.exceptions import DomainError, InvalidInput

from .models import Outcome, Requirement

REQUIREMENT_FIELDS = [
    "title",
    "priority",
    "aarrr_stage",
    "work_type",
    "incident_kind",
    "assignee",
    "due_date",
    "launch_date",
    "hypothesis",
    "target_metric",
    "description",
    "design",
    "watchers",
    "resources_people",
    "resources_budget",
    "resources_other",
]


class MemberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        full = obj.get_full_name()
        return f"{full} ({obj.username})" if full else obj.username


class MembersChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: User) -> str:
        full = obj.get_full_name()
        return f"{full} ({obj.username})" if full else obj.username


class RequirementForm(forms.ModelForm):
    labels_text = forms.CharField(
        label=_("Labels"),
        required=False,
        max_length=1000,
        help_text=_("Separate labels with commas."),
    )

    class Meta:
        model = Requirement
        fields = REQUIREMENT_FIELDS
        field_classes = {"assignee": MemberChoiceField, "watchers": MembersChoiceField}
        widgets = {
            "due_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "launch_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "description": forms.Textarea(attrs={"rows": 6}),
            "hypothesis": forms.Textarea(attrs={"rows": 3}),
            "design": forms.Textarea(attrs={"rows": 3}),
            "resources_other": forms.Textarea(attrs={"rows": 2}),
            "watchers": forms.CheckboxSelectMultiple,
        }

    def __init__(self, *args: Any, team_user_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        members = User.objects.filter(pk__in=team_user_ids).order_by("username")
        self.fields["assignee"].queryset = members  # type: ignore[attr-defined]
        self.fields["watchers"].queryset = members  # type: ignore[attr-defined]
        self.fields["watchers"].required = False
        if self.instance.pk:
            self.initial.setdefault(
                "labels_text", ", ".join(label.name for label in self.instance.labels.all())
            )

    def _post_clean(self) -> None:
        # The services validate the model; the form checks only what it received.
        pass

    def service_fields(self) -> dict[str, Any]:
        data = {name: self.cleaned_data[name] for name in REQUIREMENT_FIELDS if name in self.cleaned_data}
        data["assignee"] = data["assignee"].pk if data.get("assignee") else None
        data["watchers"] = [user.pk for user in data.get("watchers") or []]
        data["labels"] = [n.strip() for n in self.cleaned_data.get("labels_text", "").split(",") if n.strip()]
        return data


def add_domain_errors(form: forms.Form, error: DomainError) -> None:
    """Put a service's errors on the form: next to the field they name, else at the top."""
    errors = error.errors if isinstance(error, InvalidInput) else error.as_dict()
    for name, messages in errors.items():
        target = "labels_text" if name == "labels" else name
        for message in messages:
            form.add_error(target if target in form.fields else None, message)


class MoveForm(forms.Form):
    from_stage = forms.CharField(max_length=32)
    to = forms.CharField(max_length=32)
    note = forms.CharField(label=_("Note"), required=False, max_length=10_000, widget=forms.Textarea)
    outcome = forms.ChoiceField(label=_("Outcome"), choices=[("", "—"), *Outcome.choices], required=False)


class CommentForm(forms.Form):
    body = forms.CharField(
        label=_("Comment"),
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Markdown. Type @ to mention a team member."),
    )
