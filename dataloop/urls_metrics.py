"""Web pages of a team's metrics, observations and watches."""

from django.urls import path

from . import views_metrics as views

urlpatterns = [
    path("teams/<int:team_id>/metrics/", views.metrics, name="metrics"),
    path("teams/<int:team_id>/metrics/observations/", views.observation_add, name="observation-add"),
    path("teams/<int:team_id>/metrics/import/", views.observations_import, name="observations-import"),
    path(
        "teams/<int:team_id>/metrics/import/example.csv", views.import_template, name="observations-template"
    ),
    path("teams/<int:team_id>/metrics/<int:metric_id>/", views.metric, name="metric"),
    path("teams/<int:team_id>/metrics/<int:metric_id>/delete/", views.metric_delete, name="metric-delete"),
    path(
        "teams/<int:team_id>/metrics/<int:metric_id>/observations/delete/",
        views.observation_delete,
        name="observation-delete",
    ),
    path("teams/<int:team_id>/watches/", views.watches, name="watches"),
    path("teams/<int:team_id>/watches/<int:watch_id>/", views.watch, name="watch"),
    path("teams/<int:team_id>/watches/<int:watch_id>/active/", views.watch_active, name="watch-active"),
    path("teams/<int:team_id>/watches/<int:watch_id>/delete/", views.watch_delete, name="watch-delete"),
]
