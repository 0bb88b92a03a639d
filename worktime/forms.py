from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

WEEKDAYS = [
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
]


class CalendarForm(forms.Form):
    enabled = forms.BooleanField(label=_("SLAs count working hours only"), required=False)
    work_days = forms.TypedMultipleChoiceField(
        label=_("Work days"),
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    start_time = forms.TimeField(label=_("Work starts"), widget=forms.TimeInput(attrs={"type": "time"}))
    end_time = forms.TimeField(label=_("Work ends"), widget=forms.TimeInput(attrs={"type": "time"}))


class CalendarDayForm(forms.Form):
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    is_workday = forms.TypedChoiceField(
        label=_("This day is"),
        choices=[(0, _("a holiday")), (1, _("a make-up workday"))],
        coerce=lambda value: value in (1, "1"),
    )
    name = forms.CharField(label=_("Name"), max_length=100, required=False)
