from django.urls import path

from . import views

urlpatterns = [
    path("teams/<int:team_id>/analytics/", views.dashboard, name="analytics-dashboard"),
    path("teams/<int:team_id>/analytics/<slug:metric>.csv", views.dashboard_csv, name="analytics-csv"),
]
