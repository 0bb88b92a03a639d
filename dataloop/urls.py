"""Web pages of the data loop: metrics, observations and watches; goals, the funnel and the loop panel."""

from django.urls import include, path

urlpatterns = [
    path("", include("dataloop.urls_metrics")),
    path("", include("dataloop.urls_goals")),
]
