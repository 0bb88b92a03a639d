"""The inbox in the web UI."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from opsteam.exceptions import NotFound, NotPermitted

from . import selectors, services
from .models import Delivery


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    unread_only = request.GET.get("unread") == "1"
    queryset = selectors.notification_list_for_user(user=request.user)
    if unread_only:
        queryset = queryset.filter(read_at__isnull=True)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    return render(request, "notifications/inbox.html", {"page": page, "unread_only": unread_only})


@login_required
@require_POST
def mark_read(request: HttpRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("id") if i.isascii() and i.isdigit() and len(i) < 19]
    services.notification_mark_read(user=request.user, notification_ids=ids or None)
    return redirect("inbox")


def unread(request: HttpRequest) -> dict[str, int]:
    """Context processor: the unread count in the header of every page (one query)."""
    if not request.user.is_authenticated:
        return {}
    return {"unread_notifications": selectors.unread_count(user=request.user)}


@login_required
def deliveries(request: HttpRequest, team_id: int) -> HttpResponse:
    """Leads: the team's outgoing email and chat messages, failed ones first, with their errors."""
    try:
        team = selectors.team_for_lead(user=request.user, team_id=team_id, reading=True)
    except NotFound as exc:
        raise Http404 from exc
    except NotPermitted as exc:
        raise PermissionDenied(str(exc.message)) from exc
    queryset = selectors.delivery_list(team=team).order_by(
        Case(When(status=Delivery.Status.FAILED, then=0), default=1), "-created_at"
    )
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    return render(request, "notifications/deliveries.html", {"team": team, "nav": "settings", "page": page})
