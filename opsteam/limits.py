"""Request bodies too large to read are refused with 413 before a view (or the CSRF check) parses them:
JSON with a message under /api/, a short page elsewhere. Without this, Django's RequestDataTooBig
reaches the visitor as a bare "Bad Request (400)" page with nothing said about the size.

Form bodies are held to DATA_UPLOAD_MAX_MEMORY_SIZE. A multipart body carries files, which that
setting does not count, so it has its own, larger cap: OPSTEAM_UPLOAD_MAX_SIZE (default 21 MB, room for
the 20 MB history file of an import and its form fields)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html
from django.utils.translation import gettext as _

DEFAULT_UPLOAD_MAX_SIZE = 21 * 2**20


def body_limit(request: HttpRequest) -> int | None:
    """The most bytes this request's body may hold, or None for no limit."""
    if request.META.get("CONTENT_TYPE", "").lower().startswith("multipart/"):
        return int(getattr(settings, "OPSTEAM_UPLOAD_MAX_SIZE", DEFAULT_UPLOAD_MAX_SIZE))
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return None if limit is None else int(limit)


def declared_length(request: HttpRequest) -> int | None:
    """The Content-Length the client sent; None when absent or not a number (Django then reads none)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def too_large(request: HttpRequest, limit: int | None) -> HttpResponse:
    if limit is None:
        message = _("The request is too large.")
    else:
        message = _("The request is too large: at most %(size)s.") % {"size": _size(limit)}
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": "request_too_large"}, status=413)
    page = format_html(
        '<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        "<body><h1>{title}</h1><p>{message}</p></body></html>",
        title=_("Too large (413)"),
        message=message,
    )
    return HttpResponse(page, status=413)


def _size(limit: int) -> str:
    if limit >= 2**20:
        return _("%(n).1f MB") % {"n": limit / 2**20}
    return _("%(n)d KB") % {"n": max(limit // 2**10, 1)}


class RequestSizeLimitMiddleware:
    """Early in MIDDLEWARE (before CsrfViewMiddleware, which reads the form): refuse by Content-Length,
    and turn a body found too large while a view parses it (no or a lying Content-Length) into the
    same answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit(request)
        length = declared_length(request)
        if limit is not None and length is not None and length > limit:
            return too_large(request, limit)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return too_large(request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return None
