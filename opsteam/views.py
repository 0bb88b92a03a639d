from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from notifications import selectors as notification_selectors
from notifications import services as notification_services
from opsteam.exceptions import InvalidInput
from roles import selectors as role_selectors
from roles import services as role_services
from roles.views import SignedInRequest
from workflows.selectors import team_overview_for_user

from .middleware import SESSION_KEY


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"teams": team_overview_for_user(user=request.user)})


@login_required
def account(request: SignedInRequest) -> HttpResponse:
    """The signed-in user's account: their API token, which they create, replace or revoke. A new key
    is shown once, in the response to the POST that made it (never kept in the session)."""
    user = request.user
    new_token = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "rotate":
            new_token = role_services.token_rotate(user=user).key
        elif action == "revoke":
            role_services.token_revoke(user=user)
            messages.success(request, _("Your API token was revoked."))
            return redirect("account")
        else:
            return HttpResponseBadRequest()
    token_created = None
    if not new_token:
        token_created = role_selectors.token_created_at(user=user)
    context = {"new_token": new_token, "token_created": token_created}
    return render(request, "registration/account.html", context)


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch (cookie), and for a signed-in user also their remembered choice."""
    response = django_set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated:
        try:
            notification_services.language_set(user=request.user, language=language)
        except InvalidInput:
            return response
        request.session[SESSION_KEY] = language
    return response


@receiver(user_logged_in)
def _remember_language_in_session(
    sender: object, request: HttpRequest | None, user: object, **kwargs: object
) -> None:
    """At login the user's chosen language goes into the session, so each page can use it for free."""
    if request is None or not hasattr(request, "session"):
        return
    chosen = notification_selectors.settings_for_user(user=user)
    if chosen.language:
        request.session[SESSION_KEY] = chosen.language


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404: JSON under /api/ (so API clients always get JSON), the usual page elsewhere."""
    if _wants_json(request):
        return JsonResponse({"detail": str(_("Not found.")), "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception or Http404())


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 for requests Django refuses before any view (e.g. too many fields): JSON under /api/."""
    if _wants_json(request):
        return JsonResponse({"detail": str(_("Bad request.")), "code": "bad_request"}, status=400)
    return defaults.bad_request(request, exception or Exception())


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": str(_("Server error.")), "code": "server_error"}, status=500)
    return defaults.server_error(request)
