"""The members and audit settings pages, under teams/<team_id>/settings/ (the workflow and webhook pages are in their
own apps' URL modules, under the same prefix)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("members/", views.members, name="settings-members"),
    path("members/<int:membership_id>/roles/", views.member_roles, name="settings-member-roles"),
    path("members/<int:membership_id>/remove/", views.member_remove, name="settings-member-remove"),
    path("audit/", views.audit, name="settings-audit"),
]
