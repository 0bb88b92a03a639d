"""Web pages of the data loop: goals, the AARRR funnel, and the loop panel's writes on the requirement page."""

from django.urls import path

from . import views_goals, views_loop

urlpatterns = [
    path("teams/<int:team_id>/goals/", views_goals.goals, name="goals"),
    path("teams/<int:team_id>/goals/<int:goal_id>/", views_goals.goal, name="goal"),
    path(
        "teams/<int:team_id>/goals/<int:goal_id>/strategies/",
        views_goals.strategy_add,
        name="goal-strategy-add",
    ),
    path(
        "teams/<int:team_id>/goals/<int:goal_id>/strategies/<int:strategy_id>/",
        views_goals.strategy,
        name="goal-strategy",
    ),
    path("teams/<int:team_id>/funnel/", views_goals.funnel, name="funnel"),
    path("teams/<int:team_id>/funnel.csv", views_goals.funnel_csv, name="funnel-csv"),
    path("requirements/<str:key>/tracking/", views_loop.tracking_add, name="tracking-add"),
    path("requirements/<str:key>/tracking/<int:event_id>/", views_loop.tracking_event, name="tracking-event"),
    path("requirements/<str:key>/analysis/", views_loop.requirement_analysis, name="requirement-analysis"),
]
