from __future__ import annotations

from django.urls import path

from .api import HistoryExportView, HistoryImportView

urlpatterns = [
    path("teams/<int:team_id>/history/export/", HistoryExportView.as_view(), name="api-team-history-export"),
    path("teams/<int:team_id>/history/import/", HistoryImportView.as_view(), name="api-team-history-import"),
]
