"""API plumbing shared by every app: the exception handler and pagination."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers, status
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import Conflict, DomainError, NotFound, NotPermitted

# The largest id SQLite and PostgreSQL (bigint) hold: a larger one in input is a 400, not an overflow.
MAX_ID = 2**63 - 1

# Viewsets route any path segment to their id (DRF's default leaves out dots), so that a malformed id
# such as "1.5" is the view's JSON 404 rather than Django's HTML page.
ANY_SEGMENT = r"[^/]+"


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

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> Any:
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF trusts the position inside a cursor; one edited by hand to "abc" for an id (or a NUL,
        which PostgreSQL refuses) would fail the query with a 500. It is an invalid cursor: 404."""
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        field = self.model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            field.to_python(cursor.position)
        except DjangoValidationError as exc:
            raise drf_exceptions.NotFound(self.invalid_cursor_message) from exc
        if "\x00" in cursor.position:
            raise drf_exceptions.NotFound(self.invalid_cursor_message)
        return cursor


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

    def _resolve_path_parameters(self, variables: list[str]) -> list[dict[str, Any]]:
        # An id routed by ANY_SEGMENT is documented as its model field says (an integer), as
        # drf-spectacular does for DRF's default pattern, not as a string matching the pattern.
        routed = self.path_regex
        self.path_regex = re.sub(r"(\(\?P<\w+>)" + re.escape(ANY_SEGMENT) + r"\)", r"\1[^/.]+)", routed)
        try:
            return super()._resolve_path_parameters(variables)
        finally:
            self.path_regex = routed

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code in (400, 401, 403, 404):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=str(ERROR_DESCRIPTIONS[code])), str(code)
                )
        return responses


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2})?$", "example": "09:00"})
class LocalTimeField(serializers.TimeField):
    """A wall-clock time in the team's or person's time zone (no offset), e.g. 09:00."""
