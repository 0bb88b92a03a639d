from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OPS = "ops", _("Operations")
    PM = "pm", _("Product manager")
    ENGINEER = "engineer", _("Engineer")
    ANALYST = "analyst", _("Data analyst")
    LEAD = "lead", _("Lead")


ALL_ROLES: frozenset[str] = frozenset(Role.values)


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("“%(value)s” is not a known time zone."), params={"value": value})


key_prefix_validator = RegexValidator(
    r"^[A-Z][A-Z0-9]{1,9}$",
    _("Use 2 to 10 capital letters or digits, starting with a letter (e.g. GROW)."),
)


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100)
    key_prefix = models.CharField(
        _("key prefix"),
        max_length=10,
        unique=True,
        validators=[key_prefix_validator],
        help_text=_("Requirement keys start with it, e.g. GROW-42."),
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[validate_time_zone]
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix})"


class Membership(models.Model):
    """A user's place in a team. One row per user and team; the roles are flags so that
    "every member holding role X" is one indexed query."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("team")
    )
    is_ops = models.BooleanField(_("operations"), default=False)
    is_pm = models.BooleanField(_("product manager"), default=False)
    is_engineer = models.BooleanField(_("engineer"), default=False)
    is_analyst = models.BooleanField(_("data analyst"), default=False)
    is_lead = models.BooleanField(_("lead"), default=False)
    joined_at = models.DateTimeField(_("joined at"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
            models.CheckConstraint(
                condition=models.Q(is_ops=True)
                | models.Q(is_pm=True)
                | models.Q(is_engineer=True)
                | models.Q(is_analyst=True)
                | models.Q(is_lead=True),
                name="membership_has_a_role",
            ),
        ]
        indexes = [models.Index(fields=["team", "user"], name="membership_team_user")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.team.key_prefix}: {', '.join(sorted(self.roles))}"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(role for role in Role.values if getattr(self, role_flag(role)))


def role_flag(role: str) -> str:
    """The Membership field that holds a role."""
    return f"is_{role}"


class LoginThrottle(models.Model):
    """Failed sign-ins of one username, shared by every web and API process through the database.
    The row is deleted at the next successful sign-in."""

    username = models.CharField(_("username"), max_length=150, unique=True)
    failures = models.PositiveIntegerField(_("failures"), default=0)
    last_failure_at = models.DateTimeField(_("last failure at"))
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)

    class Meta:
        verbose_name = _("login throttle")
        verbose_name_plural = _("login throttles")

    def __str__(self) -> str:
        return f"{self.username}: {self.failures}"


class AuditAction(models.TextChoices):
    MEMBER_ADDED = "member_added", _("member added")
    MEMBER_REMOVED = "member_removed", _("member removed")
    ROLES_CHANGED = "roles_changed", _("roles changed")
    TEAM_CHANGED = "team_changed", _("team settings changed")
    LEAD_OVERRIDE = "lead_override", _("lead override")


class AuditEntry(models.Model):
    """Who changed a team's people or settings, or moved a requirement in place of the role that owns
    the stage. Written by the service that makes the change, in its transaction; never edited."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="audit_entries", verbose_name=_("team")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    target = models.CharField(_("target"), max_length=200, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        indexes = [models.Index(fields=["team", "-id"], name="audit_team_newest")]

    def __str__(self) -> str:
        return f"{self.team_id} {self.action} {self.target}"

    def details_text(self) -> str:
        """The details on one line: `name: value` pairs, lists joined by commas, a changed setting as
        `before → after`; the names in the reader's language."""
        labels = {
            "from_stage": gettext("from"),
            "to_stage": gettext("to"),
            "note": gettext("note"),
            "roles": gettext("roles"),
            "before": gettext("before"),
            "after": gettext("after"),
            "name": gettext("name"),
            "time_zone": gettext("time zone"),
        }
        parts = []
        for key, value in self.details.items():
            name = labels.get(key, key)
            if isinstance(value, dict):
                text = f"{value.get('before', '')} → {value.get('after', '')}"
            elif isinstance(value, list):
                text = ", ".join(str(item) for item in value)
            else:
                text = str(value)
            parts.append(f"{name}: {text}")
        return "; ".join(parts)
