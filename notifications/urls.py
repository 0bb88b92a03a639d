"""The webhook settings pages, under teams/<team_id>/settings/."""

from __future__ import annotations

from django.urls import path

from . import settings_views

urlpatterns = [
    path("webhooks/", settings_views.webhooks, name="settings-webhooks"),
    path("webhooks/<int:webhook_id>/", settings_views.webhook_edit, name="settings-webhook-edit"),
    path("webhooks/<int:webhook_id>/delete/", settings_views.webhook_delete, name="settings-webhook-delete"),
]
