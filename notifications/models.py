from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from roles.models import Team

# workflows imports this app (to notify), so its models are named by string here.


class Kind(models.TextChoices):
    YOUR_TURN = "your_turn", _("Your turn")
    MENTIONED = "mentioned", _("Mentioned")
    STAGE_OVERDUE = "stage_overdue", _("Stage overdue")
    ESCALATION = "escalation", _("Escalation")
    DUE_SOON = "due_soon", _("Due tomorrow")
    DUE_TODAY = "due_today", _("Due today")
    DAILY_DIGEST = "daily_digest", _("Daily digest")
    WATCH_FIRED = "watch_fired", _("Metric watch fired")


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    WEBHOOK = "webhook", _("Team chat")


class Notification(models.Model):
    """One line in a person's in-app inbox."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("recipient"),
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team"))
    requirement = models.ForeignKey(
        "workflows.Requirement",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requirement"),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    text = models.CharField(_("text"), max_length=300)
    body = models.TextField(_("details"), blank=True)
    link = models.CharField(_("link"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at", "-created_at"], name="notification_inbox")]

    def __str__(self) -> str:
        return f"{self.recipient} {self.kind}: {self.text}"


class WebhookEndpoint(models.Model):
    """A team chat robot the team's leads configured."""

    class Format(models.TextChoices):
        GENERIC = "generic", _("Generic JSON")
        WECOM = "wecom", _("WeCom robot (企业微信)")
        DINGTALK = "dingtalk", _("DingTalk robot (钉钉)")
        FEISHU = "feishu", _("Feishu bot (飞书)")
        SLACK = "slack", _("Slack incoming webhook")

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhooks", verbose_name=_("team"))
    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=500)
    format = models.CharField(_("format"), max_length=16, choices=Format.choices, default=Format.GENERIC)
    secret = models.CharField(_("signing secret"), max_length=200, blank=True)
    kinds = models.JSONField(_("kinds posted"), default=list)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")
        ordering = ["team", "name"]

    def __str__(self) -> str:
        return f"{self.team.key_prefix} {self.name} ({self.format})"


class NotificationSettings(models.Model):
    """A person's choices: which kinds reach them by email, and quiet hours (email and chat wait)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings"
    )
    email_kinds = models.JSONField(_("kinds sent by email"), default=list)
    quiet_start = models.TimeField(_("quiet hours start"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet hours end"), null=True, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, default="Asia/Shanghai")
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES, blank=True)

    class Meta:
        verbose_name = _("notification settings")
        verbose_name_plural = _("notification settings")

    def __str__(self) -> str:
        return str(self.user)


class Delivery(models.Model):
    """One outgoing message on an external channel: an email to a person, or a post to a webhook.
    It may carry several notifications, so one sweep sends one message per person or webhook."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team"))
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    webhook = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    notifications = models.ManyToManyField(Notification, related_name="deliveries")
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    not_before = models.DateTimeField(_("not before"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["not_before"], condition=models.Q(status="pending"), name="delivery_pending"
            ),
            models.Index(fields=["team", "status"], name="delivery_team_status"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.status} ({self.attempts})"


class SentMarker(models.Model):
    """Once-only markers for due-date reminders and daily digests (e.g. due:42:2026-03-09:today)."""

    key = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key
