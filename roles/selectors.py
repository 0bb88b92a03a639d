"""Reads for teams and accounts: the audit log, a user's API token."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from .models import AuditEntry, Team
from .permissions import ensure_may_read_lead_records, team_get_for_user


def team_for_audit(*, user: User, team_id: int) -> Team:
    """The team whose audit log the user reads: NotFound when it is not visible, NotPermitted when the
    user is not one of its leads."""
    team = team_get_for_user(user=user, team_id=team_id)
    ensure_may_read_lead_records(
        user=user, team=team, message=_("Only the team's leads may read its audit log.")
    )
    return team


def audit_list(*, team: Team) -> QuerySet[AuditEntry]:
    """The team's audit entries, newest first, with their actors."""
    return AuditEntry.objects.filter(team=team).select_related("actor").order_by("-id")


def token_created_at(*, user: User) -> dt.datetime | None:
    """When the user's API token was made; None when they have none."""
    return Token.objects.filter(user=user).values_list("created", flat=True).first()
