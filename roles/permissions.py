"""Answers "what may this user do in this team". Reads only; no writes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import OuterRef, QuerySet, Subquery

from opsteam.exceptions import NotFound, NotPermitted

from .models import Membership, Role, Team, role_flag

UserLike = User | AnonymousUser


def roles_for(*, user: UserLike, team: Team | int) -> frozenset[str]:
    """The roles the user holds in the team; empty when not a member."""
    if not user.is_authenticated:
        return frozenset()
    team_id = team if isinstance(team, int) else team.pk
    membership = Membership.objects.filter(user_id=user.pk, team_id=team_id).first()
    return membership.roles if membership else frozenset()


def role_annotations(*, user: UserLike, team_field: str = "team_id") -> dict[str, Any]:
    """Annotations that read the user's role flags in the team of each row (`team_field` names the
    team's id), so the query that reads a row also says who may act on it; `roles_annotated` reads
    them back. Each is an indexed lookup of the (user, team) membership."""
    # An anonymous user is nobody's member: id 0 is no user.
    user_id: int = user.pk if user.is_authenticated else 0
    membership = Membership.objects.filter(team_id=OuterRef(team_field), user_id=user_id)
    return {
        f"actor_{role_flag(role)}": Subquery(membership.values(role_flag(role))[:1]) for role in Role.values
    }


def roles_annotated(row: object) -> frozenset[str]:
    """The roles read by `role_annotations`; empty when the user is not a member of the row's team."""
    return frozenset(role for role in Role.values if getattr(row, f"actor_{role_flag(role)}", None))


def teams_visible_to(*, user: UserLike) -> QuerySet[Team]:
    """Teams the user belongs to; site staff see every team."""
    if not user.is_authenticated:
        return Team.objects.none()
    if user.is_staff:
        return Team.objects.all()
    return Team.objects.filter(memberships__user_id=user.pk)


def can_see_team(*, user: UserLike, team: Team | int) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    team_id = team if isinstance(team, int) else team.pk
    return Membership.objects.filter(user_id=user.pk, team_id=team_id).exists()


def is_lead(*, user: UserLike, team: Team | int) -> bool:
    return Role.LEAD in roles_for(user=user, team=team)


def may_manage_team(*, user: UserLike, team: Team | int) -> bool:
    """Leads, and site superusers, manage members and the workflow."""
    return bool(user.is_authenticated and (user.is_superuser or is_lead(user=user, team=team)))


def team_get_for_user(*, user: UserLike, team_id: int) -> Team:
    """A team the user may see, or NotFound (also for ids no database column can hold)."""
    team = teams_visible_to(user=user).filter(pk=team_id).first() if 0 < team_id < 2**63 else None
    if team is None:
        raise NotFound()
    return team


def may_read_lead_records(*, user: UserLike, team: Team | int) -> bool:
    """The lead-only records (audit log, deliveries) are read by the team's leads, superusers and site
    staff, who see everything (PRODUCT.md); changing anything stays with those who manage."""
    return bool(user.is_authenticated and (user.is_staff or may_manage_team(user=user, team=team)))


def ensure_may_read_lead_records(*, user: User, team: Team, message: str) -> None:
    """NotFound to those who cannot see the team, NotPermitted with `message` to members who are not
    leads (nor staff)."""
    if not can_see_team(user=user, team=team):
        raise NotFound()
    if not may_read_lead_records(user=user, team=team):
        raise NotPermitted(message)


def ensure_may_manage(*, user: User | None, team: Team, message: str) -> None:
    """Leads (and superusers) manage a team: NotFound to those who cannot see it, NotPermitted with
    `message` to members who are not leads. `user=None` is system work (commands, imports)."""
    if user is None:
        return
    if not can_see_team(user=user, team=team):
        raise NotFound()
    if not may_manage_team(user=user, team=team):
        raise NotPermitted(message)
