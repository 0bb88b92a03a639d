"""Forms of the goal pages and of the loop panel on the requirement page. They check the shape of the
input; the services decide the rest, and their per-field errors go back on the form next to the fields.

Choices (metrics, members) come from lists the view has already read, so a form costs no query."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from roles.models import Membership
from workflows.models import Verdict

from .imports import parse_decimal
from .models import Metric

TRACKING_PREFIX = "tracking"  # the add-event form's prefix on the requirement page
YES_NO = [("yes", _("Yes")), ("no", _("No"))]
KEY_SEPARATORS = re.compile(r"[\s,，;；]+")


def metric_choices(metrics: Iterable[Metric], *, blank: str | None = None) -> list[tuple[Any, str]]:
    choices: list[tuple[Any, str]] = [("", blank)] if blank is not None else []
    return choices + [
        (metric.pk, f"{metric.name} ({metric.unit})" if metric.unit else metric.name) for metric in metrics
    ]


def member_choices(members: Iterable[Membership]) -> list[tuple[Any, str]]:
    return [("", "—")] + [(m.user_id, m.user.get_full_name() or m.user.get_username()) for m in members]


def event_prefix(event_id: int) -> str:
    """The prefix of one event's edit form: several sit on the requirement page at once."""
    return f"event{event_id}"


def _yes_no(value: str) -> bool:
    return value == "yes"


class GoalForm(forms.Form):
    title = forms.CharField(label=_("Objective"), max_length=200, help_text=_("e.g. 200 orders a day"))
    metric = forms.TypedChoiceField(label=_("Core metric"), coerce=int)
    target = forms.CharField(
        label=_("Target"), max_length=40, help_text=_("The value of the core metric to reach.")
    )
    start = forms.DateField(
        label=_("Start"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    end = forms.DateField(label=_("End"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    first_level_metrics = forms.TypedMultipleChoiceField(
        label=_("First-level metrics"),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The metrics that add up to the core metric: traffic, conversion, repurchase …"),
    )
    description = forms.CharField(
        label=_("Description"), required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, metrics: Sequence[Metric], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = metric_choices(metrics, blank="—")  # type: ignore[attr-defined]
        self.fields["first_level_metrics"].choices = metric_choices(metrics)  # type: ignore[attr-defined]

    def clean_target(self) -> str:
        target: str = self.cleaned_data["target"]
        if parse_decimal(target) is None:
            raise forms.ValidationError(_("Enter a number."))
        return target

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", _("The end comes before the start."))
        return cleaned

    def service_fields(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class StrategyForm(forms.Form):
    title = forms.CharField(label=_("Strategy"), max_length=200)
    metric = forms.TypedChoiceField(
        label=_("First-level metric it moves"), coerce=int, required=False, empty_value=None
    )
    description = forms.CharField(
        label=_("Description"), required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, metrics: Sequence[Metric], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = metric_choices(metrics, blank="—")  # type: ignore[attr-defined]

    def service_fields(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class LinkForm(forms.Form):
    """Requirements named by key, separated by commas or spaces."""

    keys = forms.CharField(
        label=_("Requirement keys"), max_length=1000, help_text=_("e.g. GROW-12; several: GROW-12, GROW-15")
    )

    def clean_keys(self) -> list[str]:
        keys = [part.upper() for part in KEY_SEPARATORS.split(self.cleaned_data["keys"]) if part]
        if not keys:
            raise forms.ValidationError(_("Name at least one requirement."))
        if len(keys) > 50:
            raise forms.ValidationError(_("At most 50 at a time."))
        return keys


class TrackingEventForm(forms.Form):
    name = forms.CharField(label=_("Event name"), max_length=100, help_text=_("e.g. red_packet_open"))
    trigger = forms.CharField(label=_("Trigger"), max_length=300, help_text=_("When the event is logged."))
    properties = forms.CharField(
        label=_("Properties"),
        required=False,
        max_length=6000,
        help_text=_("Property names separated by commas, e.g. user_id, amount."),
    )
    owner = forms.TypedChoiceField(label=_("Owner"), coerce=int, required=False, empty_value=None)

    def __init__(self, *args: Any, members: Iterable[Membership], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = member_choices(members)  # type: ignore[attr-defined]

    def service_fields(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class ConclusionForm(forms.Form):
    conclusion = forms.CharField(
        label=_("Analysis conclusion"),
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_("Markdown. What the data says, and what to do next."),
    )
    verdict = forms.ChoiceField(label=_("Verdict"), choices=Verdict.choices, widget=forms.RadioSelect)
    core_metric_moved = forms.TypedChoiceField(
        label=_("Did the core metric move?"), choices=YES_NO, coerce=_yes_no, widget=forms.RadioSelect
    )
    behaviour_moved = forms.TypedChoiceField(
        label=_("Did user behaviour move?"), choices=YES_NO, coerce=_yes_no, widget=forms.RadioSelect
    )
    feedback_positive = forms.TypedChoiceField(
        label=_("Is user feedback positive?"), choices=YES_NO, coerce=_yes_no, widget=forms.RadioSelect
    )
    metric = forms.TypedChoiceField(
        label=_("Metric read before and after the launch"),
        coerce=int,
        required=False,
        empty_value=None,
        help_text=_("Its mean over the 7 days before the launch date and the 7 days from it is saved."),
    )

    def __init__(self, *args: Any, metrics: Sequence[Metric], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = metric_choices(metrics, blank="—")  # type: ignore[attr-defined]

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["metric_id"] = data.pop("metric")
        return data
