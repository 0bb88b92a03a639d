"""The workflow settings page, under teams/<team_id>/settings/."""

from __future__ import annotations

from django.urls import path

from . import settings_views

urlpatterns = [
    path("workflow/", settings_views.workflow, name="settings-workflow"),
]
