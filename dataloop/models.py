"""The data side of the loop (PRODUCT.md §6): a team's metric catalogue and observations, metric watches
that open requirements, and goals broken into strategies carried out by requirements. Tracking plans and
analysis conclusions belong to loops and live in workflows; this app reads and writes them through
workflows' selectors and services, never the reverse."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from roles.models import Role, Team
from workflows.models import AarrrStage, IterationLoop, Priority, Requirement


class Direction(models.TextChoices):
    UP = "up", _("Good when it goes up")
    DOWN = "down", _("Good when it goes down")


class Source(models.TextChoices):
    MANUAL = "manual", _("Entered by hand")
    API = "api", _("API")
    IMPORT = "import", _("CSV import")


class Comparison(models.TextChoices):
    LT = "lt", "<"
    LTE = "lte", "≤"
    GT = "gt", ">"
    GTE = "gte", "≥"
    RISES = "rises", _("rises")
    FALLS = "falls", _("falls")


class Period(models.TextChoices):
    DAY = "day", _("days")
    WEEK = "week", _("weeks")
    MONTH = "month", _("months")


class Metric(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="metrics", verbose_name=_("team"))
    name = models.CharField(_("name"), max_length=100)
    unit = models.CharField(_("unit"), max_length=20, blank=True, help_text=_("e.g. %, users, ¥"))
    direction = models.CharField(
        _("direction"), max_length=4, choices=Direction.choices, default=Direction.UP
    )
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("metric")
        verbose_name_plural = _("metrics")
        ordering = ["team", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="metric_unique_name")]

    def __str__(self) -> str:
        return self.name


class Observation(models.Model):
    """One value of a metric on one day, for the whole product (empty segment) or one segment. A second
    value for the same metric, day and segment replaces the first: imports are idempotent."""

    metric = models.ForeignKey(
        Metric, on_delete=models.CASCADE, related_name="observations", verbose_name=_("metric")
    )
    date = models.DateField(_("date"))
    segment = models.CharField(_("segment"), max_length=100, blank=True)
    value = models.DecimalField(_("value"), max_digits=18, decimal_places=4)
    loop = models.ForeignKey(
        IterationLoop,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="observations",
        verbose_name=_("loop"),
    )
    source = models.CharField(_("source"), max_length=8, choices=Source.choices, default=Source.MANUAL)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now=True)

    class Meta:
        verbose_name = _("observation")
        verbose_name_plural = _("observations")
        ordering = ["metric", "-date", "segment"]
        constraints = [
            models.UniqueConstraint(fields=["metric", "date", "segment"], name="observation_unique_day"),
        ]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.date} {self.segment or '*'} = {self.value}"


class MetricWatch(models.Model):
    """Opens a requirement from its template when the metric has met the condition for `periods`
    consecutive periods; never a second one while the one it opened is open."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="watches", verbose_name=_("team"))
    name = models.CharField(_("name"), max_length=120)
    metric = models.ForeignKey(
        Metric, on_delete=models.CASCADE, related_name="watches", verbose_name=_("metric")
    )
    comparison = models.CharField(_("comparison"), max_length=5, choices=Comparison.choices)
    threshold = models.DecimalField(_("threshold"), max_digits=18, decimal_places=4, null=True, blank=True)
    periods = models.PositiveSmallIntegerField(_("consecutive periods"), default=1)
    period = models.CharField(_("period"), max_length=5, choices=Period.choices, default=Period.DAY)
    is_active = models.BooleanField(_("active"), default=True)
    # The requirement template.
    title = models.CharField(_("requirement title"), max_length=200)
    aarrr_stage = models.CharField(_("AARRR stage"), max_length=16, choices=AarrrStage.choices, blank=True)
    priority = models.CharField(_("priority"), max_length=2, choices=Priority.choices, default=Priority.P1)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assignee"),
    )
    owner_role = models.CharField(_("owner role"), max_length=16, choices=Role.choices, blank=True)
    description = models.TextField(_("description"), blank=True)
    # State, written only by the evaluation under the watch's row lock.
    open_requirement = models.ForeignKey(
        Requirement, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    fired_through = models.DateField(null=True, blank=True, editable=False)
    evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("metric watch")
        verbose_name_plural = _("metric watches")
        ordering = ["team", "name"]
        indexes = [models.Index(fields=["metric", "is_active"], name="watch_metric_active")]

    def __str__(self) -> str:
        return self.name


class WatchFiring(models.Model):
    """Each time a watch fired: the streak of periods that made it fire and the requirement it opened.
    One firing per watch and streak end, whatever runs the evaluation and how often."""

    watch = models.ForeignKey(
        MetricWatch, on_delete=models.CASCADE, related_name="firings", verbose_name=_("watch")
    )
    streak_start = models.DateField(_("first period"))
    streak_end = models.DateField(_("last period"))
    values = models.JSONField(_("values"), default=list)
    requirement = models.ForeignKey(
        Requirement, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("requirement")
    )
    fired_at = models.DateTimeField(_("fired at"), default=timezone.now)

    class Meta:
        verbose_name = _("watch firing")
        verbose_name_plural = _("watch firings")
        ordering = ["-fired_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["watch", "streak_end"], name="watch_fires_once")]

    def __str__(self) -> str:
        return f"{self.watch_id} {self.streak_start}…{self.streak_end}"


class Goal(models.Model):
    """An objective with a target value of its core metric over a period, e.g. 200 orders a day by June."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="goals", verbose_name=_("team"))
    title = models.CharField(_("objective"), max_length=200)
    metric = models.ForeignKey(
        Metric, on_delete=models.PROTECT, related_name="goals", verbose_name=_("core metric")
    )
    target = models.DecimalField(_("target"), max_digits=18, decimal_places=4)
    start = models.DateField(_("start"))
    end = models.DateField(_("end"))
    description = models.TextField(_("description"), blank=True)
    first_level_metrics = models.ManyToManyField(
        Metric, blank=True, related_name="+", verbose_name=_("first-level metrics")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("goal")
        verbose_name_plural = _("goals")
        ordering = ["team", "-end", "title"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gte=models.F("start")), name="goal_period")
        ]

    def __str__(self) -> str:
        return self.title


class Strategy(models.Model):
    goal = models.ForeignKey(
        Goal, on_delete=models.CASCADE, related_name="strategies", verbose_name=_("goal")
    )
    title = models.CharField(_("strategy"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    metric = models.ForeignKey(
        Metric,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("first-level metric it moves"),
    )
    requirements = models.ManyToManyField(
        Requirement, blank=True, related_name="strategies", verbose_name=_("requirements")
    )
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("strategy")
        verbose_name_plural = _("strategies")
        ordering = ["goal", "order", "id"]

    def __str__(self) -> str:
        return self.title
