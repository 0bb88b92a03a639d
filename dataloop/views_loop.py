"""The loop panel's writes on the requirement page: the current loop's tracking plan (add, edit, move an
event's status, delete) and the analysis conclusion. Each POST redirects back to the page with a message;
bad input re-renders the page (400) with the bound form's errors next to its fields; a refused role is a
403 with the reason, and nothing is written."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from opsteam.exceptions import DomainError, InvalidInput, NotFound, NotPermitted
from roles.models import Role
from roles.permissions import roles_for
from workflows import selectors as workflow_selectors
from workflows import services as workflow_services
from workflows.forms import add_domain_errors
from workflows.models import Requirement, TrackingEvent, TrackingStatus
from workflows.views import _requirement_page, role_reason

from . import selectors, services
from .forms_goals import TRACKING_PREFIX, ConclusionForm, TrackingEventForm, event_prefix
from .views_goals import AuthedRequest, denied

# Who writes a loop's conclusion (workflows.services.loop_record_analysis enforces the same).
CONCLUSION_WRITERS = frozenset({Role.ANALYST, Role.LEAD})


def _requirement(request: AuthedRequest, key: str) -> Requirement:
    try:
        return workflow_selectors.requirement_get_for_user(user=request.user, key=key)
    except NotFound as exc:
        raise Http404 from exc


def _back(requirement: Requirement, anchor: str) -> HttpResponse:
    return redirect(reverse("requirement", kwargs={"key": requirement.key}) + anchor)


def _error_text(error: DomainError) -> str:
    if isinstance(error, InvalidInput):
        return " ".join(message for found in error.errors.values() for message in found)
    return str(error.message)


# ----------------------------------------------------------------------------------------- tracking


@login_required
@require_POST
def tracking_add(request: AuthedRequest, key: str) -> HttpResponse:
    """Add an event to the tracking plan of the requirement's current loop."""
    requirement = _requirement(request, key)
    roles = roles_for(user=request.user, team=requirement.team_id)
    if not roles & workflow_services.TRACKING_EDITORS:
        raise PermissionDenied(role_reason(workflow_services.TRACKING_EDITORS))
    members = workflow_selectors.team_members(team=requirement.team_id)
    form = TrackingEventForm(request.POST, members=members, prefix=TRACKING_PREFIX)
    if form.is_valid():
        try:
            event = workflow_services.tracking_event_add(
                requirement_id=requirement.pk, actor=request.user, **form.service_fields()
            )
        except NotPermitted as error:
            raise denied(error) from error
        except DomainError as error:
            add_domain_errors(form, error)
        else:
            messages.success(request, _("“%(name)s” is in the tracking plan.") % {"name": event.name})
            return _back(requirement, "#tracking")
    return _requirement_page(request, requirement.key, status=400, tracking_form=form)


def _event_of(requirement: Requirement, event_id: int) -> TrackingEvent:
    """The event if it is in the requirement's current tracking plan (the one the page shows), else 404."""
    loop = workflow_selectors.requirement_current_loop(requirement=requirement)
    event = next((e for e in selectors.tracking_plan(loop=loop) if e.pk == event_id), None)
    if event is None:
        raise Http404
    return event


@login_required
@require_POST
def tracking_event(request: AuthedRequest, key: str, event_id: int) -> HttpResponse:
    """Change one event of the plan by the form's `action`: edit, status (to `status`) or delete."""
    requirement = _requirement(request, key)
    event = _event_of(requirement, event_id)
    action = request.POST.get("action", "")
    try:
        if action == "status":
            return _set_status(request, requirement, event)
        if action == "edit":
            return _edit(request, requirement, event)
        if action == "delete":
            workflow_services.tracking_event_delete(event_id=event.pk, actor=request.user)
            messages.success(request, _("“%(name)s” is off the tracking plan.") % {"name": event.name})
            return _back(requirement, "#tracking")
    except NotPermitted as error:
        raise denied(error) from error
    except NotFound as exc:
        raise Http404 from exc
    except DomainError as error:
        return _requirement_page(request, requirement.key, status=400, notice=_error_text(error))
    return _requirement_page(request, requirement.key, status=400, notice=_("Choose edit, status or delete."))


def _set_status(request: AuthedRequest, requirement: Requirement, event: TrackingEvent) -> HttpResponse:
    status = request.POST.get("status", "")
    changed = workflow_services.tracking_event_set_status(
        event_id=event.pk, actor=request.user, status=status
    )
    messages.success(
        request,
        _("“%(name)s” is %(status)s.")
        % {"name": changed.name, "status": TrackingStatus(changed.status).label.lower()},
    )
    return _back(requirement, f"#tracking-event-{event.pk}")


def _edit(request: AuthedRequest, requirement: Requirement, event: TrackingEvent) -> HttpResponse:
    roles = roles_for(user=request.user, team=requirement.team_id)
    if not roles & workflow_services.TRACKING_EDITORS:
        raise PermissionDenied(role_reason(workflow_services.TRACKING_EDITORS))
    members = workflow_selectors.team_members(team=requirement.team_id)
    form = TrackingEventForm(request.POST, members=members, prefix=event_prefix(event.pk))
    if form.is_valid():
        try:
            workflow_services.tracking_event_update(
                event_id=event.pk, actor=request.user, **form.service_fields()
            )
        except InvalidInput as error:
            add_domain_errors(form, error)
        else:
            messages.success(request, _("“%(name)s” saved.") % {"name": form.cleaned_data["name"]})
            return _back(requirement, f"#tracking-event-{event.pk}")
    return _requirement_page(
        request, requirement.key, status=400, tracking_edit_form=form, tracking_edit_id=event.pk
    )


# ----------------------------------------------------------------------------------------- analysis


@login_required
@require_POST
def requirement_analysis(request: AuthedRequest, key: str) -> HttpResponse:
    """Write the current loop's conclusion with the target metric's values around the launch date."""
    requirement = _requirement(request, key)
    roles = roles_for(user=request.user, team=requirement.team_id)
    if not roles & CONCLUSION_WRITERS:
        raise PermissionDenied(role_reason(CONCLUSION_WRITERS))
    metrics = list(selectors.metric_list_for_team(team=requirement.team_id))
    form = ConclusionForm(request.POST, metrics=metrics)
    if form.is_valid():
        try:
            services.conclusion_record(
                requirement_id=requirement.pk, actor=request.user, **form.service_fields()
            )
        except NotPermitted as error:
            raise denied(error) from error
        except DomainError as error:
            add_domain_errors(form, error)
        else:
            messages.success(request, _("Analysis conclusion saved."))
            return _back(requirement, "#analysis")
    return _requirement_page(request, requirement.key, status=400, conclusion_form=form)
