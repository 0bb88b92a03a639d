from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils.translation import gettext_lazy as _

from roles.models import Team


def default_work_days() -> list[int]:
    return [0, 1, 2, 3, 4]


class WorkCalendar(models.Model):
    """A team's working week, in the team's time zone. When enabled, SLAs count working time only."""

    team = models.OneToOneField(
        Team, on_delete=models.CASCADE, related_name="work_calendar", verbose_name=_("team")
    )
    enabled = models.BooleanField(_("SLAs count working hours only"), default=False)
    work_days = models.JSONField(_("work days"), default=default_work_days, help_text=_("0 is Monday."))
    start_time = models.TimeField(_("work starts"), default=dt.time(9, 0))
    end_time = models.TimeField(_("work ends"), default=dt.time(18, 0))

    class Meta:
        verbose_name = _("working-hours calendar")
        verbose_name_plural = _("working-hours calendars")

    def __str__(self) -> str:
        return f"{self.team.key_prefix} {self.start_time:%H:%M}-{self.end_time:%H:%M}"


class CalendarDay(models.Model):
    """A dated exception to the week: a holiday (not worked) or a make-up workday (调休补班, worked)."""

    class Source(models.TextChoices):
        CHINA = "china", _("China's official calendar")
        MANUAL = "manual", _("Entered by the team")

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="calendar_days", verbose_name=_("team")
    )
    date = models.DateField(_("date"))
    is_workday = models.BooleanField(_("worked"))
    name = models.CharField(_("name"), max_length=100, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices, default=Source.MANUAL)

    class Meta:
        verbose_name = _("calendar day")
        verbose_name_plural = _("calendar days")
        ordering = ["team", "date"]
        constraints = [models.UniqueConstraint(fields=["team", "date"], name="calendar_day_unique")]

    def __str__(self) -> str:
        return f"{self.date} {'worked' if self.is_workday else 'off'} {self.name}"
