from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from roles.models import Team
from roles.permissions import ensure_may_manage, ensure_may_read_lead_records, team_get_for_user

from .models import Delivery, Kind, Notification, NotificationSettings, WebhookEndpoint


def notification_list_for_user(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient=user).select_related("requirement", "team")


def unread_count(*, user: User) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def settings_for_user(*, user: User) -> NotificationSettings:
    """The person's settings, or the defaults (unsaved) when they never chose."""
    return NotificationSettings.objects.filter(user=user).first() or NotificationSettings(
        user=user, email_kinds=list(Kind.values)
    )


def team_for_lead(*, user: User, team_id: int, reading: bool = False) -> Team:
    """A team the user may see and manage: 404 when not visible, 403 when not a lead. `reading`: only
    to read its deliveries, which site staff may too (not its webhooks: their URLs are the keys to the
    team's chat)."""
    team = team_get_for_user(user=user, team_id=team_id)
    message = _("Only the team's leads may do this.")
    if reading:
        ensure_may_read_lead_records(user=user, team=team, message=message)
    else:
        ensure_may_manage(user=user, team=team, message=message)
    return team


def webhook_list(*, team: Team) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(team=team)


def delivery_list(*, team: Team) -> QuerySet[Delivery]:
    return Delivery.objects.filter(team=team).select_related("recipient", "webhook")
