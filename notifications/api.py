"""API for the inbox, personal notification settings, and (leads) webhooks and deliveries."""

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

from opsteam.api import CursorPage, LocalTimeField

from . import selectors, services
from .models import Delivery, Kind, Notification, NotificationSettings, WebhookEndpoint


class NotificationSerializer(serializers.ModelSerializer):
    requirement_key = serializers.CharField(source="requirement.key", default="", read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "team",
            "requirement",
            "requirement_key",
            "kind",
            "text",
            "body",
            "link",
            "created_at",
            "read_at",
        ]


class MarkReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, max_length=500
    )
    all = serializers.BooleanField(default=False, help_text=_("Mark every unread notification read."))


class UnreadSerializer(serializers.Serializer):
    unread = serializers.IntegerField()


class SettingsSerializer(serializers.ModelSerializer):
    email_kinds = serializers.ListField(child=serializers.ChoiceField(choices=Kind.choices), max_length=20)
    quiet_start = LocalTimeField(allow_null=True, required=False)
    quiet_end = LocalTimeField(allow_null=True, required=False)

    class Meta:
        model = NotificationSettings
        fields = ["email_kinds", "quiet_start", "quiet_end", "time_zone", "language"]


class WebhookSerializer(serializers.ModelSerializer):
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=Kind.choices), max_length=20)
    secret = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True)
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "format", "secret", "has_secret", "kinds", "active"]

    def get_has_secret(self, webhook: WebhookEndpoint) -> bool:
        return bool(webhook.secret)


class DeliverySerializer(serializers.ModelSerializer):
    recipient = serializers.CharField(source="recipient.username", default="", read_only=True)
    webhook = serializers.CharField(source="webhook.name", default="", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "recipient",
            "webhook",
            "status",
            "attempts",
            "last_error",
            "not_before",
            "created_at",
            "sent_at",
        ]


class NotificationPage(CursorPage):
    ordering = "-id"


class NotificationListView(ListAPIView):
    """Your inbox, newest first; `?unread=true` for the unread ones only."""

    serializer_class = NotificationSerializer
    pagination_class = NotificationPage
    filter_backends: list[Any] = []

    @extend_schema(parameters=[OpenApiParameter("unread", bool, description=_("true: unread only."))])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Notification]:
        queryset = selectors.notification_list_for_user(user=self.request.user)
        if self.request.query_params.get("unread") in ("true", "1"):
            queryset = queryset.filter(read_at__isnull=True)
        return queryset


class UnreadCountView(APIView):
    @extend_schema(responses=UnreadSerializer)
    def get(self, request: Request) -> Response:
        return Response({"unread": selectors.unread_count(user=request.user)})


class MarkReadView(APIView):
    @extend_schema(
        request=MarkReadSerializer, responses=UnreadSerializer, summary=_("Mark notifications read")
    )
    def post(self, request: Request) -> Response:
        data = MarkReadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = None if data.validated_data["all"] else data.validated_data.get("ids", [])
        services.notification_mark_read(user=request.user, notification_ids=ids)
        return Response({"unread": selectors.unread_count(user=request.user)})


class SettingsView(APIView):
    @extend_schema(responses=SettingsSerializer, summary=_("Your notification settings"))
    def get(self, request: Request) -> Response:
        return Response(SettingsSerializer(selectors.settings_for_user(user=request.user)).data)

    @extend_schema(request=SettingsSerializer, responses=SettingsSerializer)
    def put(self, request: Request) -> Response:
        current = selectors.settings_for_user(user=request.user)
        data = SettingsSerializer(current, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = {name: getattr(current, name) for name in SettingsSerializer.Meta.fields}
        chosen = services.settings_update(user=request.user, **{**fields, **data.validated_data})
        return Response(SettingsSerializer(chosen).data)


TEAM_ID = OpenApiParameter("team_id", int, OpenApiParameter.PATH)
WEBHOOK_ID = OpenApiParameter("webhook_id", int, OpenApiParameter.PATH)


class WebhookListView(APIView):
    """The team's chat webhooks (leads)."""

    @extend_schema(parameters=[TEAM_ID], responses=WebhookSerializer(many=True))
    def get(self, request: Request, team_id: int) -> Response:
        team = selectors.team_for_lead(user=request.user, team_id=team_id)
        return Response(WebhookSerializer(selectors.webhook_list(team=team), many=True).data)

    @extend_schema(parameters=[TEAM_ID], request=WebhookSerializer, responses={201: WebhookSerializer})
    def post(self, request: Request, team_id: int) -> Response:
        selectors.team_for_lead(user=request.user, team_id=team_id)
        data = WebhookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_create(actor=request.user, team_id=team_id, **data.validated_data)
        return Response(WebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(parameters=[TEAM_ID, WEBHOOK_ID], request=WebhookSerializer, responses=WebhookSerializer)
    def patch(self, request: Request, team_id: int, webhook_id: int) -> Response:
        selectors.team_for_lead(user=request.user, team_id=team_id)
        data = WebhookSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_update(
            actor=request.user, team_id=team_id, webhook_id=webhook_id, **data.validated_data
        )
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(parameters=[TEAM_ID, WEBHOOK_ID], responses={204: None})
    def delete(self, request: Request, team_id: int, webhook_id: int) -> Response:
        services.webhook_delete(actor=request.user, team_id=team_id, webhook_id=webhook_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryListView(ListAPIView):
    """The team's outgoing messages (leads), newest first; `?status=failed` for the ones that failed."""

    serializer_class = DeliverySerializer
    pagination_class = NotificationPage
    filter_backends: list[Any] = []

    @extend_schema(
        parameters=[TEAM_ID, OpenApiParameter("status", str, enum=Delivery.Status.values)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Delivery]:
        team = selectors.team_for_lead(user=self.request.user, team_id=self.kwargs["team_id"], reading=True)
        queryset = selectors.delivery_list(team=team)
        wanted = self.request.query_params.get("status")
        if wanted in Delivery.Status.values:
            queryset = queryset.filter(status=wanted)
        return queryset


urlpatterns = [
    path("notifications/", NotificationListView.as_view(), name="api-notifications"),
    path("notifications/unread-count/", UnreadCountView.as_view(), name="api-notifications-unread"),
    path("notifications/mark-read/", MarkReadView.as_view(), name="api-notifications-mark-read"),
    path("me/notification-settings/", SettingsView.as_view(), name="api-notification-settings"),
    path("teams/<int:team_id>/webhooks/", WebhookListView.as_view(), name="api-team-webhooks"),
    path(
        "teams/<int:team_id>/webhooks/<int:webhook_id>/", WebhookDetailView.as_view(), name="api-team-webhook"
    ),
    path("teams/<int:team_id>/deliveries/", DeliveryListView.as_view(), name="api-team-deliveries"),
]
