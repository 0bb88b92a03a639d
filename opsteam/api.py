"""API plumbing shared by every app: the exception handler and pagination."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import Conflict, DomainError, NotFound, NotPermitted


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
        body["detail"] = str(exc.message)
        if hasattr(exc, "allowed_roles"):
            body["allowed_roles"] = list(exc.allowed_roles)
        return Response(body, status=_status_for(exc))
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, drf_exceptions.ValidationError):
        if isinstance(response.data, list):
            response.data = {"non_field_errors": response.data}
        response.data.setdefault("detail", str(_("Invalid input.")))
    return response


class CursorPage(CursorPagination):
    """Stable under inserts: a cursor, not an offset."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"


class ErrorSerializer(serializers.Serializer):
    """Every error: `detail` says what went wrong; invalid input adds a list of messages per field."""

    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False)


ERROR_DESCRIPTIONS = {
    400: _("Invalid input: a list of messages per field, and `detail`."),
    401: _("Not signed in, or the token is wrong or revoked."),
    403: _("Signed in but not allowed: the message names the roles that may."),
    404: _("Absent, or not in one of your teams."),
    409: _("The requirement moved meanwhile: `current_stage` and `moved_by` say where and who."),
    429: _("Too many attempts; wait and try again."),
}


class ErrorResponses:
    @staticmethod
    def of(*codes: int) -> dict[int, OpenApiResponse]:
        return {
            code: OpenApiResponse(ErrorSerializer, description=str(ERROR_DESCRIPTIONS[code]))
            for code in codes
        }


class AutoSchema(SpectacularAutoSchema):
    """Documents the errors every endpoint can answer with, besides what each view declares."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code in (400, 401, 403, 404):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=str(ERROR_DESCRIPTIONS[code])), str(code)
                )
        return responses
