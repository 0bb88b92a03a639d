"""Team settings in the web UI: the team's chat webhooks. Leads only, since a webhook's URL is the key
to post into the team's chat."""

from __future__ import annotations

import urllib.parse

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput
from roles.models import Team
from roles.views import SignedInRequest, http_errors, settings_context

from . import selectors, services
from .forms import WebhookEditForm, WebhookForm
from .models import Kind, WebhookEndpoint


def _lead_team(request: SignedInRequest, team_id: int) -> Team:
    with http_errors():
        return selectors.team_for_lead(user=request.user, team_id=team_id)


def _webhook(team: Team, webhook_id: int) -> WebhookEndpoint:
    webhook = selectors.webhook_list(team=team).filter(pk=webhook_id).first() if webhook_id < 2**63 else None
    if webhook is None:
        raise Http404
    return webhook


def masked_url(url: str) -> str:
    """Scheme and host only: the path and query hold the robot's token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def _render_list(request: HttpRequest, team: Team, *, form: WebhookForm, status: int = 200) -> HttpResponse:
    kinds = dict(Kind.choices)
    rows = [
        {
            "webhook": webhook,
            "masked_url": masked_url(webhook.url),
            "kind_labels": [kinds.get(kind, kind) for kind in webhook.kinds],
        }
        for webhook in selectors.webhook_list(team=team)
    ]
    context = settings_context(team, tab="webhooks", is_lead=True, rows=rows, form=form, failed=status >= 400)
    return render(request, "settings/webhooks.html", context, status=status)


@login_required
def webhooks(request: SignedInRequest, team_id: int) -> HttpResponse:
    team = _lead_team(request, team_id)
    if request.method != "POST":
        return _render_list(request, team, form=WebhookForm())
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            with http_errors():
                webhook = services.webhook_create(
                    actor=request.user, team_id=team.pk, **form.service_fields()
                )
        except InvalidInput as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, _("Webhook “%(name)s” added.") % {"name": webhook.name})
            return redirect("settings-webhooks", team_id=team.pk)
    return _render_list(request, team, form=form, status=400)


@login_required
def webhook_edit(request: SignedInRequest, team_id: int, webhook_id: int) -> HttpResponse:
    team = _lead_team(request, team_id)
    webhook = _webhook(team, webhook_id)
    has_secret = bool(webhook.secret)
    if request.method != "POST":
        form = WebhookEditForm(
            initial={
                "name": webhook.name,
                "url": webhook.url,
                "format": webhook.format,
                "kinds": webhook.kinds,
                "active": webhook.active,
            },
            has_secret=has_secret,
        )
        status = 200
    else:
        form = WebhookEditForm(request.POST, has_secret=has_secret)
        if form.is_valid():
            try:
                with http_errors():
                    services.webhook_update(
                        actor=request.user, team_id=team.pk, webhook_id=webhook.pk, **form.service_fields()
                    )
            except InvalidInput as exc:
                form.add_service_errors(exc)
            else:
                messages.success(
                    request, _("Webhook “%(name)s” saved.") % {"name": form.cleaned_data["name"]}
                )
                return redirect("settings-webhooks", team_id=team.pk)
        status = 400
    context = settings_context(
        team, tab="webhooks", is_lead=True, webhook=webhook, form=form, failed=status >= 400
    )
    return render(request, "settings/webhook_edit.html", context, status=status)


@login_required
def webhook_delete(request: SignedInRequest, team_id: int, webhook_id: int) -> HttpResponse:
    team = _lead_team(request, team_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    webhook = _webhook(team, webhook_id)
    with http_errors():
        services.webhook_delete(actor=request.user, team_id=team.pk, webhook_id=webhook.pk)
    messages.success(request, _("Webhook “%(name)s” deleted.") % {"name": webhook.name})
    return redirect("settings-webhooks", team_id=team.pk)
