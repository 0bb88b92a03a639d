"""Team settings in the web UI: the members page, where every member reads who holds which role and
leads add members, change their roles and remove them; the audit log (leads). Also the helpers every
settings page uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput, NotFound, NotPermitted

from . import selectors, services
from .forms import MemberAddForm, MemberRolesForm
from .models import Membership, Role, Team
from .permissions import may_manage_team, may_read_lead_records, team_get_for_user

# ------------------------------------------------------------------------------- shared by the settings


class SignedInRequest(HttpRequest):
    """What a view behind @login_required gets (for the type checker)."""

    user: User


def settings_team(request: HttpRequest, team_id: int) -> Team:
    """The team of a settings page: 404 to anyone who is not a member (nor site staff)."""
    try:
        return team_get_for_user(user=request.user, team_id=team_id)
    except NotFound as exc:
        raise Http404 from exc


def ensure_lead(request: HttpRequest, team: Team, message: str) -> None:
    if not may_manage_team(user=request.user, team=team):
        raise PermissionDenied(message)


@contextmanager
def http_errors() -> Iterator[None]:
    """A service's NotFound is a 404 page and NotPermitted a 403 page with its message."""
    try:
        yield
    except NotFound as exc:
        raise Http404 from exc
    except NotPermitted as exc:
        raise PermissionDenied(str(exc.message)) from exc


def settings_context(team: Team, *, tab: str, is_lead: bool, **extra: Any) -> dict[str, Any]:
    return {"team": team, "nav": "settings", "tab": tab, "is_lead": is_lead, **extra}


# ---------------------------------------------------------------------------------------------- members


def _may_not_manage() -> str:
    return _("Only the team's leads may manage its members.")


@dataclass
class MemberRow:
    membership: Membership
    role_labels: list[Any]
    form: MemberRolesForm | None = None
    errors: list[str] = field(default_factory=list)


def _membership_in_team(team: Team, membership_id: int) -> Membership:
    membership = (
        Membership.objects.filter(team=team, pk=membership_id).select_related("user").first()
        if membership_id < 2**63
        else None
    )
    if membership is None:
        raise Http404
    return membership


def _render_members(
    request: HttpRequest,
    team: Team,
    *,
    add_form: MemberAddForm | None = None,
    row_forms: Mapping[int, MemberRolesForm] | None = None,
    row_errors: Mapping[int, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    is_lead = may_manage_team(user=request.user, team=team)
    memberships = Membership.objects.filter(team=team).select_related("user").order_by("user__username")
    rows = []
    for membership in memberships:
        row = MemberRow(
            membership=membership,
            role_labels=[label for value, label in Role.choices if value in membership.roles],
            errors=list((row_errors or {}).get(membership.pk, [])),
        )
        if is_lead:
            row.form = (row_forms or {}).get(membership.pk) or MemberRolesForm(
                initial={"roles": sorted(membership.roles)}, membership_id=membership.pk
            )
        rows.append(row)
    context = settings_context(
        team,
        tab="members",
        is_lead=is_lead,
        rows=rows,
        role_choices=Role.choices,
        add_form=(add_form or MemberAddForm()) if is_lead else None,
        failed=status >= 400,
    )
    return render(request, "settings/members.html", context, status=status)


@login_required
def members(request: SignedInRequest, team_id: int) -> HttpResponse:
    team = settings_team(request, team_id)
    if request.method != "POST":
        return _render_members(request, team)
    ensure_lead(request, team, _may_not_manage())
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            with http_errors():
                user = services.user_get_by_username_or_id(value=form.cleaned_data["username"].strip())
                services.membership_add(
                    team=team, user=user, roles=form.cleaned_data["roles"], actor=request.user
                )
        except InvalidInput as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, _("%(user)s joined the team.") % {"user": user.username})
            return redirect("settings-members", team_id=team.pk)
    return _render_members(request, team, add_form=form, status=400)


@login_required
def member_roles(request: SignedInRequest, team_id: int, membership_id: int) -> HttpResponse:
    team = settings_team(request, team_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    ensure_lead(request, team, _may_not_manage())
    membership = _membership_in_team(team, membership_id)
    form = MemberRolesForm(request.POST, membership_id=membership.pk)
    if form.is_valid():
        try:
            with http_errors():
                services.membership_set_roles(
                    membership_id=membership.pk, roles=form.cleaned_data["roles"], actor=request.user
                )
        except InvalidInput as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, _("Roles of %(user)s saved.") % {"user": membership.user.username})
            return redirect("settings-members", team_id=team.pk)
    return _render_members(request, team, row_forms={membership.pk: form}, status=400)


@login_required
def member_remove(request: SignedInRequest, team_id: int, membership_id: int) -> HttpResponse:
    team = settings_team(request, team_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    ensure_lead(request, team, _may_not_manage())
    membership = _membership_in_team(team, membership_id)
    try:
        with http_errors():
            services.membership_remove(membership_id=membership.pk, actor=request.user)
    except InvalidInput as exc:
        errors = [message for messages_ in exc.errors.values() for message in messages_]
        return _render_members(request, team, row_errors={membership.pk: errors}, status=400)
    username = membership.user.username
    messages.success(request, _("%(user)s was removed from the team.") % {"user": username})
    if membership.user_id == request.user.pk and not request.user.is_staff:
        # Having left the team, its pages are no longer theirs to see.
        return redirect("home")
    return redirect("settings-members", team_id=team.pk)


# ------------------------------------------------------------------------------------------------ audit

AUDIT_PAGE_SIZE = 50


@login_required
def audit(request: SignedInRequest, team_id: int) -> HttpResponse:
    """The team's audit log, newest first (leads only)."""
    team = settings_team(request, team_id)
    if not may_read_lead_records(user=request.user, team=team):
        raise PermissionDenied(_("Only the team's leads may read its audit log."))
    page = Paginator(selectors.audit_list(team=team), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = settings_context(team, tab="audit", is_lead=True, page=page, entries=page.object_list)
    return render(request, "settings/audit.html", context)
