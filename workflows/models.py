from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from roles.models import Team


class StageSlug(models.TextChoices):
    """The stages of the default ops iteration loop. Team workflows may rename them."""

    PROPOSE = "propose", _("Propose")
    DESIGN = "design", _("Design")
    BUILD = "build", _("Build")
    INSTRUMENT = "instrument", _("Instrument")
    ANALYZE = "analyze", _("Analyze")
    OPTIMIZE = "optimize", _("Optimize")


class TransitionKind(models.TextChoices):
    FORWARD = "forward", _("forward")
    REWORK = "rework", _("rework")
    ITERATE = "iterate", _("iterate")
    CLOSE = "close", _("close")


class EventKind(models.TextChoices):
    CREATE = "create", _("create")
    FORWARD = "forward", _("forward")
    REWORK = "rework", _("rework")
    OVERRIDE = "override", _("override")
    ITERATE = "iterate", _("iterate")
    CLOSE = "close", _("close")


class AarrrStage(models.TextChoices):
    ACQUISITION = "acquisition", _("Acquisition")
    ACTIVATION = "activation", _("Activation")
    RETENTION = "retention", _("Retention")
    REVENUE = "revenue", _("Revenue")
    REFERRAL = "referral", _("Referral")


class Priority(models.TextChoices):
    P0 = "P0", _("P0 incident")
    P1 = "P1", _("P1 high")
    P2 = "P2", _("P2 normal")
    P3 = "P3", _("P3 low")


class IncidentKind(models.TextChoices):
    """Within P0, incidents rank in this order."""

    SYSTEM_FAILURE = "system_failure", _("System failure")
    CONTENT_VIOLATION = "content_violation", _("Content violation")
    SERVICE_DELAY = "service_delay", _("Service delay")


class WorkType(models.TextChoices):
    BASE = "base", _("Base work")
    INNOVATION = "innovation", _("Innovation work")


class Outcome(models.TextChoices):
    DONE = "done", _("Done")
    WONT_DO = "wont_do", _("Won't do")


class LoopOutcome(models.TextChoices):
    ITERATE = "iterate", _("Iterate")
    CLOSE = "close", _("Close")


class Verdict(models.TextChoices):
    IMPROVED = "improved", _("Improved")
    FLAT = "flat", _("Flat")
    WORSE = "worse", _("Worse")


class TrackingStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    IMPLEMENTED = "implemented", _("Implemented")
    VERIFIED = "verified", _("Verified")


def new_revision() -> int:
    return secrets.randbits(62)


class Workflow(models.Model):
    """One version of a team's workflow. Versions are never edited once requirements use them:
    a change makes a new version, and a requirement keeps the version it started with."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="workflows", verbose_name=_("team"))
    name = models.CharField(_("name"), max_length=100)
    version = models.PositiveIntegerField(_("version"))
    is_current = models.BooleanField(_("current"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    # A new random value whenever one of its stages or transitions is saved or deleted (the admin edits
    # them in place): a move keeps the version's stages and transitions per process under this value
    # (workflows.selectors.workflow_stages_and_transitions). Random, not counted, so that a workflow
    # id used again after a rolled-back transaction never meets the old one's cache entry.
    revision = models.BigIntegerField(_("revision"), default=new_revision, editable=False)

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        ordering = ["team", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["team", "version"], name="workflow_unique_version"),
            models.UniqueConstraint(
                fields=["team"], condition=models.Q(is_current=True), name="workflow_one_current_per_team"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team.key_prefix} {self.name} v{self.version}"


class Stage(models.Model):
    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="stages", verbose_name=_("workflow")
    )
    slug = models.SlugField(_("slug"), max_length=32)
    name = models.CharField(_("name"), max_length=64)
    order = models.PositiveSmallIntegerField(_("order"))
    owner_roles = models.JSONField(_("owner roles"), default=list)
    sla_hours = models.PositiveIntegerField(_("SLA in hours"), null=True, blank=True)

    class Meta:
        verbose_name = _("stage")
        verbose_name_plural = _("stages")
        ordering = ["workflow", "order"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "slug"], name="stage_unique_slug"),
            models.UniqueConstraint(fields=["workflow", "order"], name="stage_unique_order"),
        ]

    def __str__(self) -> str:
        return self.name


def workflow_revise(workflow_id: int) -> None:
    """Give the workflow a new revision: its stages or transitions changed in place."""
    Workflow.objects.filter(pk=workflow_id).update(revision=new_revision())


class Transition(models.Model):
    """An allowed move. `to_stage` is empty for close; for iterate it is the stage the next loop opens at."""

    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="transitions", verbose_name=_("workflow")
    )
    from_stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="+", verbose_name=_("from"))
    to_stage = models.ForeignKey(
        Stage, on_delete=models.CASCADE, related_name="+", null=True, blank=True, verbose_name=_("to")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=TransitionKind.choices)
    allowed_roles = models.JSONField(_("roles allowed"), default=list)
    required_fields = models.JSONField(_("required fields"), default=list, blank=True)

    class Meta:
        verbose_name = _("transition")
        verbose_name_plural = _("transitions")
        ordering = ["workflow", "from_stage__order", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "from_stage", "to_stage", "kind"], name="transition_unique"
            ),
        ]

    def __str__(self) -> str:
        target = self.to_stage.slug if self.to_stage_id and self.kind != TransitionKind.ITERATE else self.kind
        return f"{self.from_stage.slug} → {target}"


class Label(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="labels", verbose_name=_("team"))
    name = models.CharField(_("name"), max_length=50)

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="label_unique_name")]

    def __str__(self) -> str:
        return self.name


class Requirement(models.Model):
    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, related_name="requirements", verbose_name=_("team")
    )
    workflow = models.ForeignKey(
        Workflow, on_delete=models.PROTECT, related_name="requirements", verbose_name=_("workflow")
    )
    number = models.PositiveIntegerField(_("number"))
    key = models.CharField(_("key"), max_length=24, unique=True)
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True, help_text=_("Markdown."))
    hypothesis = models.TextField(_("hypothesis"), blank=True)
    target_metric = models.CharField(_("target metric"), max_length=200, blank=True)
    aarrr_stage = models.CharField(_("AARRR stage"), max_length=16, choices=AarrrStage.choices, blank=True)
    priority = models.CharField(_("priority"), max_length=2, choices=Priority.choices, default=Priority.P2)
    incident_kind = models.CharField(
        _("incident kind"), max_length=20, choices=IncidentKind.choices, blank=True
    )
    work_type = models.CharField(
        _("work type"), max_length=16, choices=WorkType.choices, default=WorkType.BASE
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_requirements",
        verbose_name=_("assignee"),
    )
    watchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="watched_requirements", verbose_name=_("watchers")
    )
    labels = models.ManyToManyField(Label, blank=True, related_name="requirements", verbose_name=_("labels"))
    due_date = models.DateField(_("due date"), null=True, blank=True)
    launch_date = models.DateField(_("launch date"), null=True, blank=True)
    design = models.TextField(_("design"), blank=True, help_text=_("A link to the spec, or the spec itself."))
    resources_people = models.CharField(_("people needed"), max_length=200, blank=True)
    resources_budget = models.DecimalField(
        _("budget needed"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    resources_other = models.TextField(_("other resources"), blank=True)
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+", verbose_name=_("stage"))
    loop_number = models.PositiveIntegerField(_("loop"), default=1)
    stage_entered_at = models.DateTimeField(_("in stage since"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="created_requirements",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices, blank=True)
    # When the current stage visit passes its SLA (100 %) and escalates (200 %), in the team's working
    # time if it has a calendar; sla_next_at is the next reminder still to send, so the sweep is one
    # indexed query. All three are set with the stage, in the same transaction.
    sla_due_at = models.DateTimeField(_("SLA due at"), null=True, blank=True)
    sla_escalate_at = models.DateTimeField(_("escalates at"), null=True, blank=True)
    sla_next_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("requirement")
        verbose_name_plural = _("requirements")
        ordering = ["team", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["team", "number"], name="requirement_unique_number"),
        ]
        indexes = [
            models.Index(fields=["team", "stage", "closed_at"], name="requirement_board"),
            models.Index(fields=["assignee", "closed_at"], name="requirement_assignee"),
            models.Index(
                fields=["sla_next_at"],
                condition=models.Q(sla_next_at__isnull=False),
                name="requirement_sla_next",
            ),
            models.Index(
                fields=["due_date"], condition=models.Q(closed_at__isnull=True), name="requirement_due"
            ),
            # A team's open requirements, a few hundred among thousands closed: the board reads them in
            # its card order, the requirements list newest first (its first page without a sort).
            models.Index(
                fields=["team", "priority", "stage_entered_at", "id"],
                condition=models.Q(closed_at__isnull=True),
                name="requirement_open_board",
            ),
            models.Index(
                fields=["team", "-id"],
                condition=models.Q(closed_at__isnull=True),
                name="requirement_open_newest",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


class IterationLoop(models.Model):
    requirement = models.ForeignKey(
        Requirement, on_delete=models.PROTECT, related_name="loops", verbose_name=_("requirement")
    )
    number = models.PositiveIntegerField(_("number"))
    started_at = models.DateTimeField(_("started at"))
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=LoopOutcome.choices, blank=True)
    conclusion = models.TextField(_("analysis conclusion"), blank=True)
    verdict = models.CharField(_("verdict"), max_length=16, choices=Verdict.choices, blank=True)
    # The three checks of a conclusion (PRODUCT.md §6); None until the analyst answers them.
    core_metric_moved = models.BooleanField(_("core metric moved"), null=True, blank=True)
    behaviour_moved = models.BooleanField(_("user behaviour moved"), null=True, blank=True)
    feedback_positive = models.BooleanField(_("user feedback positive"), null=True, blank=True)
    # The target metric's values around the launch date, as read when the conclusion was written.
    metric_name = models.CharField(_("metric"), max_length=100, blank=True)
    metric_before = models.DecimalField(_("before"), max_digits=18, decimal_places=4, null=True, blank=True)
    metric_after = models.DecimalField(_("after"), max_digits=18, decimal_places=4, null=True, blank=True)
    analyzed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("analysed by"),
    )
    analyzed_at = models.DateTimeField(_("analysed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("iteration loop")
        verbose_name_plural = _("iteration loops")
        ordering = ["requirement", "number"]
        constraints = [
            models.UniqueConstraint(fields=["requirement", "number"], name="loop_unique_number"),
        ]
        indexes = [models.Index(fields=["closed_at"], name="loop_closed_at")]

    def __str__(self) -> str:
        return f"{self.requirement.key} loop {self.number}"


class StageEventQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        raise TypeError("Stage events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Stage events are append-only.")


class StageEvent(models.Model):
    """One transition, immutable. Stages are stored by slug so the log outlives workflow versions
    and history imported from other trackers reads the same. `to_stage` is empty for close."""

    requirement = models.ForeignKey(
        Requirement, on_delete=models.PROTECT, related_name="events", verbose_name=_("requirement")
    )
    # Indexed by event_loop_stage below (it also covers the time-in-stage read).
    loop = models.ForeignKey(
        IterationLoop, on_delete=models.PROTECT, related_name="events", verbose_name=_("loop"), db_index=False
    )
    from_stage = models.CharField(_("from"), max_length=32, blank=True)
    to_stage = models.CharField(_("to"), max_length=32, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        verbose_name=_("actor"),
    )
    at = models.DateTimeField(_("at"))
    # When the stage this event leaves was entered: the time of the requirement's event before this one
    # (empty for a creation). The visit the event ends is [since, at), readable from this one row; every
    # writer of the log sets it, and the log checks in the tests hold it to the event before.
    since = models.DateTimeField(_("in stage since"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    # What opened the requirement when no person did, e.g. "watch:12" for a metric watch.
    origin = models.CharField(_("origin"), max_length=64, blank=True)

    objects = StageEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("stage event")
        verbose_name_plural = _("stage events")
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["requirement", "at", "id"], name="event_requirement_at"),
            # A loop's events; on PostgreSQL it also carries what time in stage sums per loop and stage,
            # so that read never visits the table.
            models.Index(
                fields=["loop", "from_stage"], include=["kind", "at", "since"], name="event_loop_stage"
            ),
            models.Index(fields=["at"], name="event_at"),
            # Analytics: the latest loop start / close of each requirement before a period begins.
            models.Index(
                fields=["requirement", "at"],
                name="event_loop_start",
                condition=models.Q(kind__in=["create", "iterate"]),
            ),
            models.Index(fields=["requirement", "at"], name="event_close", condition=models.Q(kind="close")),
            # Analytics on PostgreSQL: the loops closed in a period, and its backward moves.
            models.Index(
                fields=["at"], name="event_loop_end", condition=models.Q(kind__in=["iterate", "close"])
            ),
            models.Index(
                fields=["at"], name="event_backward", condition=models.Q(kind__in=["rework", "override"])
            ),
        ]

    def __str__(self) -> str:
        return f"{self.requirement_id} {self.from_stage or '∅'} → {self.to_stage or self.kind} ({self.kind})"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise TypeError("Stage events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise TypeError("Stage events are append-only.")


class Comment(models.Model):
    requirement = models.ForeignKey(
        Requirement, on_delete=models.CASCADE, related_name="comments", verbose_name=_("requirement")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("author"),
    )
    body = models.TextField(_("comment"), help_text=_("Markdown."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    edited_at = models.DateTimeField(_("edited at"), null=True, blank=True)

    class Meta:
        verbose_name = _("comment")
        verbose_name_plural = _("comments")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["requirement", "created_at"], name="comment_requirement")]

    def __str__(self) -> str:
        return f"{self.requirement_id}: {self.body[:40]}"


class TrackingEvent(models.Model):
    """One event of a loop's tracking plan: what is logged, when, with which properties, and whether it
    is planned, implemented in the product, or verified in the data."""

    loop = models.ForeignKey(
        IterationLoop, on_delete=models.CASCADE, related_name="tracking_events", verbose_name=_("loop")
    )
    name = models.CharField(_("event name"), max_length=100)
    trigger = models.CharField(_("trigger"), max_length=300, help_text=_("When the event is logged."))
    properties = models.JSONField(_("properties"), default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("owner"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=TrackingStatus.choices, default=TrackingStatus.PLANNED
    )
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tracking event")
        verbose_name_plural = _("tracking events")
        ordering = ["loop", "id"]
        constraints = [models.UniqueConstraint(fields=["loop", "name"], name="tracking_event_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class StageReminder(models.Model):
    """The overdue reminder (level 1, at 100 % of the SLA) and the escalation (level 2, at 200 %) of one
    visit to a stage. The unique constraint is what makes every sweep send each of them once."""

    loop = models.ForeignKey(IterationLoop, on_delete=models.CASCADE, related_name="+")
    visit = models.ForeignKey(StageEvent, on_delete=models.PROTECT, related_name="+")
    level = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["visit", "level"], name="stage_reminder_once")]

    def __str__(self) -> str:
        return f"visit {self.visit_id} level {self.level}"


def _revise(sender: Any, instance: Stage | Transition, **kwargs: Any) -> None:
    workflow_revise(instance.workflow_id)


def _revise_saved(sender: Any, instance: Workflow, created: bool, **kwargs: Any) -> None:
    # A full save writes back the revision the instance was read with, which may be older than the
    # one a stage edited meanwhile gave it (two admins at once): a saved workflow gets a new one.
    if not created:
        workflow_revise(instance.pk)


for _model in (Stage, Transition):
    models.signals.post_save.connect(_revise, sender=_model, dispatch_uid=f"revise-{_model.__name__}")
    models.signals.post_delete.connect(_revise, sender=_model, dispatch_uid=f"revise-{_model.__name__}-del")
models.signals.post_save.connect(_revise_saved, sender=Workflow, dispatch_uid="revise-Workflow")
