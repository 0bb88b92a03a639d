"""The inbox in the web UI."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import selectors, services


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
