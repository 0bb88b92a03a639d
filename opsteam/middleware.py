"""Project middleware: the signed-in user's chosen language wins over the browser's Accept-Language; the
Content-Security-Policy header."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

SESSION_KEY = "opsteam_language"


class UserLanguageMiddleware:
    """After LocaleMiddleware and AuthenticationMiddleware: activate the language the user chose
    (kept in the session at login and when they switch, so it costs no query)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        if language and translation.check_for_language(language):
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


def csp_header_value(policy: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{directive} {' '.join(sources)}".strip() for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    """Sends settings.OPSTEAM_CSP as the Content-Security-Policy of every response, with the directives
    of OPSTEAM_CSP_PATH_OVERRIDES replaced for paths under their prefix. The header values are built once,
    at start-up; a response that already has the header keeps it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.default = csp_header_value(settings.OPSTEAM_CSP)
        self.overrides = [
            (prefix, csp_header_value({**settings.OPSTEAM_CSP, **directives}))
            for prefix, directives in settings.OPSTEAM_CSP_PATH_OVERRIDES.items()
        ]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self._policy_for(request.path)
        return response

    def _policy_for(self, path: str) -> str:
        for prefix, value in self.overrides:
            if path.startswith(prefix):
                return value
        return self.default
