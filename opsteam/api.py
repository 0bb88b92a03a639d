"""API plumbing shared by every app: the exception handler and pagination."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import Conflict, DomainError, InvalidInput, NotFound, NotPermitted


def _status_for(exc: DomainError) -> int:
    if isinstance(exc, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, NotPermitted):
        return status.HTTP_403_FORBIDDEN
    if isinstance(exc, Conflict):
        return status.HTTP_409_CONFLICT
    return status.HTTP_400_BAD_REQUEST


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Domain errors become JSON with a message per field; DRF's own errors keep its format,
    which is already a message per field (or `detail`)."""
    if isinstance(exc, DomainError):
        body: dict[str, Any] = dict(exc.as_dict())
        body["code"] = exc.code
        if isinstance(exc, Conflict):
            body["current_stage"] = exc.current
            body["moved_by"] = exc.moved_by
        if isinstance(exc, InvalidInput) or "detail" not in body:
            body["detail"] = str(exc.message)
        if hasattr(exc, "allowed_roles"):
            body["allowed_roles"] = list(exc.allowed_roles)
        return Response(body, status=_status_for(exc))
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    return drf_exception_handler(exc, context)


class CursorPage(CursorPagination):
    """Stable under inserts: a cursor, not an offset."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"
