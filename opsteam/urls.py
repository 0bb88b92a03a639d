from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from notifications import views as notification_views
from roles.forms import ThrottledAuthenticationForm
from workflows import views as workflow_views
from worktime import views as calendar_views

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=ThrottledAuthenticationForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/", views.account, name="account"),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("queue/", workflow_views.queue, name="queue"),
    path("board/", workflow_views.board_pick, name="board-pick"),
    path("teams/<int:team_id>/board/", workflow_views.board, name="board"),
    path(
        "teams/<int:team_id>/requirements/new/", workflow_views.requirement_create, name="requirement-create"
    ),
    path("requirements/<str:key>/", workflow_views.requirement_detail, name="requirement"),
    path("requirements/<str:key>/edit/", workflow_views.requirement_edit, name="requirement-edit"),
    path("requirements/<str:key>/move/", workflow_views.requirement_move, name="requirement-move"),
    path("requirements/<str:key>/comments/", workflow_views.requirement_comment, name="requirement-comment"),
    path("requirements/<str:key>/card/", workflow_views.requirement_card, name="requirement-card"),
    path("notifications/", notification_views.inbox, name="inbox"),
    path("notifications/read/", notification_views.mark_read, name="inbox-mark-read"),
    path("teams/<int:team_id>/calendar/", calendar_views.calendar, name="team-calendar"),
    path("teams/<int:team_id>/deliveries/", notification_views.deliveries, name="team-deliveries"),
    path("teams/<int:team_id>/settings/", include("roles.urls")),
    path("teams/<int:team_id>/settings/", include("workflows.urls")),
    path("teams/<int:team_id>/settings/", include("notifications.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/", include("workflows.api.urls")),
    path("api/", include("notifications.api")),
    path("api/", include("worktime.api")),
    path("api/", include("history.urls")),
    path("api/", include("analytics.api")),
    path("api/", include("dataloop.api")),
    path("api/", include("perf.urls")),
    path("api/", include("roles.api")),
    path("", include("analytics.urls")),
    path("", include("dataloop.urls")),
]

handler400 = "opsteam.views.bad_request"
handler404 = "opsteam.views.page_not_found"
handler500 = "opsteam.views.server_error"
