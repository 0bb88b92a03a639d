"""Forms of the metrics and watches pages. They check the shape of the input; the services decide the
rest, and their per-field errors are put back next to the fields (roles.forms.add_service_errors)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from roles.models import Membership, Role, Team
from workflows.models import AarrrStage, IterationLoop, Priority

from . import imports
from .models import Comparison, Direction, Metric, Period

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _metric_choices(metrics: Sequence[Metric]) -> list[tuple[Any, str]]:
    return [("", "—"), *((metric.pk, metric.name) for metric in metrics)]


class MetricForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    unit = forms.CharField(label=_("Unit"), max_length=20, required=False, help_text=_("e.g. %, users, ¥"))
    direction = forms.ChoiceField(label=_("Direction"), choices=Direction.choices, initial=Direction.UP)
    description = forms.CharField(
        label=_("Description"), max_length=10_000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def service_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("name", "unit", "direction", "description")}


class ObservationForm(forms.Form):
    """One value of a metric on one day. The value is text: the service reads 25%, 1,234.5 and -3."""

    metric = forms.TypedChoiceField(label=_("Metric"), coerce=int)
    date = forms.DateField(label=_("Date"), widget=DATE_WIDGET, input_formats=["%Y-%m-%d"])
    value = forms.CharField(label=_("Value"), max_length=40)
    segment = forms.CharField(
        label=_("Segment"),
        max_length=100,
        required=False,
        help_text=_("Empty for the whole product; e.g. iOS, new users."),
    )
    loop = forms.CharField(
        label=_("Loop"),
        max_length=20,
        required=False,
        help_text=_("A requirement key such as GROW-12 (its current loop) or GROW-12#2."),
    )

    def __init__(self, *args: Any, team: Team, metrics: Sequence[Metric], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "obs_%s")
        super().__init__(*args, **kwargs)
        self.team = team
        self.fields["metric"].choices = _metric_choices(metrics)  # type: ignore[attr-defined]

    def clean_loop(self) -> int | None:
        """The id of the loop a requirement key names in this team, or None when empty."""
        text = self.cleaned_data["loop"].strip()
        if not text:
            return None
        match = imports.LOOP_REFERENCE.match(text)
        if match is None:
            raise forms.ValidationError(_("Not a requirement key such as GROW-12 or GROW-12#2."))
        loops = IterationLoop.objects.filter(
            requirement__team=self.team, requirement__key=match["key"].upper()
        )
        if match["number"]:
            loops = loops.filter(number=int(match["number"]))
        else:
            loops = loops.filter(number=F("requirement__loop_number"))
        loop_id = loops.values_list("pk", flat=True).first()
        if loop_id is None:
            raise forms.ValidationError(_("No such loop in this team."))
        return loop_id

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "metric_id": data["metric"],
            "date": data["date"],
            "value": data["value"],
            "segment": data["segment"],
            "loop_id": data["loop"],
        }


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("Columns: metric, date, value, and optionally segment and loop."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "import_%s")
        super().__init__(*args, **kwargs)

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > imports.MAX_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB.") % {"mb": imports.MAX_BYTES // 2**20}
            )
        return upload.read()


class WatchForm(forms.Form):
    """A metric watch: the condition, and the requirement it opens when it fires."""

    name = forms.CharField(label=_("Name"), max_length=120)
    metric = forms.TypedChoiceField(label=_("Metric"), coerce=int)
    comparison = forms.ChoiceField(label=_("Condition"), choices=Comparison.choices)
    threshold = forms.CharField(
        label=_("Threshold"),
        max_length=40,
        required=False,
        help_text=_("Needed for < ≤ > ≥; for rises / falls, by more than this (empty: any change)."),
    )
    periods = forms.IntegerField(label=_("Periods in a row"), min_value=1, max_value=90, initial=1)
    period = forms.ChoiceField(label=_("Period"), choices=Period.choices, initial=Period.DAY)
    title = forms.CharField(label=_("Requirement title"), max_length=200)
    aarrr_stage = forms.ChoiceField(
        label=_("AARRR stage"), choices=[("", "—"), *AarrrStage.choices], required=False
    )
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices, initial=Priority.P1)
    assignee = forms.TypedChoiceField(label=_("Assignee"), coerce=int, required=False, empty_value=None)
    owner_role = forms.ChoiceField(
        label=_("Owner role"),
        choices=[("", "—"), *Role.choices],
        required=False,
        help_text=_("Everyone in this role is told when the watch fires."),
    )
    description = forms.CharField(
        label=_("Requirement description"),
        max_length=10_000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(
        self, *args: Any, metrics: Sequence[Metric], members: Sequence[Membership], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = _metric_choices(metrics)  # type: ignore[attr-defined]
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "—"),
            *((m.user_id, _member_name(m)) for m in members),
        ]

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["threshold"] = data["threshold"].strip() or None
        return data


def _member_name(membership: Membership) -> str:
    full = membership.user.get_full_name()
    return f"{full} ({membership.user.username})" if full else membership.user.username


class WatchActiveForm(forms.Form):
    is_active = forms.BooleanField(required=False)


def today_in(team: Team) -> dt.date:
    """Today in the team's time zone (the default date of a new observation)."""
    return timezone.localdate(timezone=ZoneInfo(team.time_zone))
