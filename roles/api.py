"""API of the accounts slice: the caller's own API token, and (leads) a team's audit log."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsteam.api import CursorPage, ErrorResponses

from . import selectors, services
from .models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default="", read_only=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "action", "actor", "target", "details", "created_at"]


class AuditPage(CursorPage):
    ordering = "-id"


class AuditListView(ListAPIView):
    """The team's audit log (leads): membership and role changes, team settings changes and lead
    overrides, newest first."""

    serializer_class = AuditEntrySerializer
    pagination_class = AuditPage
    filter_backends: list[Any] = []

    @extend_schema(parameters=[OpenApiParameter("team_id", int, OpenApiParameter.PATH)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AuditEntry]:
        team = selectors.team_for_audit(user=self.request.user, team_id=self.kwargs["team_id"])
        return selectors.audit_list(team=team)


class NewTokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


class AccountTokenView(APIView):
    """The caller's own API token: POST replaces it with a new one (the old key stops working at once),
    DELETE revokes it."""

    @extend_schema(
        request=None,
        responses={201: NewTokenSerializer},
        summary=_("Replace your API token"),
    )
    def post(self, request: Request) -> Response:
        token = services.token_rotate(user=request.user)
        return Response({"token": token.key}, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **ErrorResponses.of(401)}, summary=_("Revoke your API token"))
    def delete(self, request: Request) -> Response:
        services.token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("teams/<int:team_id>/audit/", AuditListView.as_view(), name="api-team-audit"),
    path("account/token/", AccountTokenView.as_view(), name="api-account-token"),
]
