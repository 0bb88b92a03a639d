"""Writes for teams and memberships. Each service is one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from opsteam.exceptions import InvalidInput, NotFound

from .models import ALL_ROLES, AuditAction, AuditEntry, Membership, Role, Team, role_flag
from .permissions import ensure_may_manage


def _clean_roles(roles: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(roles)
    unknown = sorted(chosen - ALL_ROLES)
    if unknown:
        raise InvalidInput({"roles": [_("Unknown role: %(roles)s.") % {"roles": ", ".join(unknown)}]})
    if not chosen:
        raise InvalidInput({"roles": [_("Choose at least one role.")]})
    return chosen


def _role_fields(roles: frozenset[str]) -> dict[str, bool]:
    return {role_flag(role): role in roles for role in Role.values}


def _check_manager(*, actor: User | None, team: Team) -> None:
    ensure_may_manage(user=actor, team=team, message=_("Only the team's leads may manage its members."))


def audit_record(
    *,
    team_id: int,
    actor: User | None,
    action: AuditAction,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one audit entry. Caller is inside the transaction of the change it records, so the entry and
    the change commit or roll back together. `actor=None` is system work (commands, imports)."""
    return AuditEntry.objects.create(
        team_id=team_id, actor=actor, action=action, target=target[:200], details=details or {}
    )


def team_create(*, name: str, key_prefix: str, creator: User, time_zone: str = "") -> Team:
    """Create a team with the creator as its first lead. Call workflows.services.team_setup to also
    give it the default workflow (which is what every public entry point does)."""
    team = Team(name=(name or "").strip(), key_prefix=(key_prefix or "").strip().upper())
    if time_zone:
        team.time_zone = time_zone
    try:
        team.full_clean()
    except ValidationError as exc:
        raise InvalidInput(exc.message_dict) from exc
    with transaction.atomic():
        try:
            with transaction.atomic():
                team.save()
        except IntegrityError as exc:
            raise InvalidInput({"key_prefix": [_("A team with this key prefix already exists.")]}) from exc
        Membership.objects.create(user=creator, team=team, **_role_fields(frozenset({Role.LEAD})))
    return team


def team_update(*, team_id: int, actor: User, name: str | None = None, time_zone: str | None = None) -> Team:
    with transaction.atomic():
        team = Team.objects.select_for_update().filter(pk=team_id).first()
        if team is None:
            raise NotFound()
        _check_manager(actor=actor, team=team)
        before = {"name": team.name, "time_zone": team.time_zone}
        if name is not None:
            team.name = name.strip()
        if time_zone is not None:
            team.time_zone = time_zone
        try:
            team.full_clean(validate_unique=False)
        except ValidationError as exc:
            raise InvalidInput(exc.message_dict) from exc
        changed = [field for field, value in before.items() if getattr(team, field) != value]
        if changed:
            team.save(update_fields=changed)
            audit_record(
                team_id=team.pk,
                actor=actor,
                action=AuditAction.TEAM_CHANGED,
                target=team.name,
                details={
                    field: {"before": before[field], "after": getattr(team, field)} for field in changed
                },
            )
    return team


def membership_add(*, team: Team, user: User, roles: Iterable[str], actor: User | None) -> Membership:
    chosen = _clean_roles(roles)
    with transaction.atomic():
        locked = Team.objects.select_for_update().get(pk=team.pk)
        _check_manager(actor=actor, team=locked)
        if Membership.objects.filter(team=locked, user=user).exists():
            raise InvalidInput({"user": [_("%(user)s is already a member.") % {"user": user}]})
        membership = Membership.objects.create(team=locked, user=user, **_role_fields(chosen))
        audit_record(
            team_id=locked.pk,
            actor=actor,
            action=AuditAction.MEMBER_ADDED,
            target=user.username,
            details={"roles": sorted(chosen)},
        )
    return membership


def membership_set_roles(*, membership_id: int, roles: Iterable[str], actor: User | None) -> Membership:
    chosen = _clean_roles(roles)
    with transaction.atomic():
        membership = _lock_membership(membership_id)
        _check_manager(actor=actor, team=membership.team)
        if Role.LEAD not in chosen and membership.is_lead:
            _ensure_another_lead(membership)
        before = membership.roles
        for field, value in _role_fields(chosen).items():
            setattr(membership, field, value)
        membership.save(update_fields=list(_role_fields(chosen)))
        if before != chosen:
            audit_record(
                team_id=membership.team_id,
                actor=actor,
                action=AuditAction.ROLES_CHANGED,
                target=membership.user.username,
                details={"before": sorted(before), "after": sorted(chosen)},
            )
    return membership


def membership_remove(*, membership_id: int, actor: User | None) -> None:
    with transaction.atomic():
        membership = _lock_membership(membership_id)
        _check_manager(actor=actor, team=membership.team)
        if membership.is_lead:
            _ensure_another_lead(membership)
        audit_record(
            team_id=membership.team_id,
            actor=actor,
            action=AuditAction.MEMBER_REMOVED,
            target=membership.user.username,
            details={"roles": sorted(membership.roles)},
        )
        membership.delete()


def _lock_membership(membership_id: int) -> Membership:
    """Lock the team first, then the membership: every membership write takes the locks in that order."""
    team_id = Membership.objects.filter(pk=membership_id).values_list("team_id", flat=True).first()
    if team_id is None:
        raise NotFound()
    Team.objects.select_for_update().get(pk=team_id)
    membership = (
        Membership.objects.select_for_update().select_related("team", "user").filter(pk=membership_id)
    )
    found = membership.first()
    if found is None:
        raise NotFound()
    return found


def _ensure_another_lead(membership: Membership) -> None:
    """Caller holds the team's lock."""
    others = Membership.objects.filter(team_id=membership.team_id, is_lead=True).exclude(pk=membership.pk)
    if not others.exists():
        raise InvalidInput({"roles": [_("A team must keep at least one lead.")]})


def user_get_by_username_or_id(*, value: str | int) -> User:
    User = get_user_model()
    text = str(value)
    if text.isascii() and text.isdigit():
        user = User.objects.filter(is_active=True, pk=int(text)).first() if len(text) <= 18 else None
    else:
        user = User.objects.filter(is_active=True, username=text[:150]).first()
    if user is None:
        raise InvalidInput({"user": [_("No active user “%(value)s”.") % {"value": value}]})
    return user


def token_rotate(*, user: User) -> Token:
    """Replace the user's API token with a new one; the old key stops working at once."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def token_revoke(*, user: User) -> bool:
    """Delete the user's API token; True when there was one."""
    deleted, _per_model = Token.objects.filter(user=user).delete()
    return deleted > 0
