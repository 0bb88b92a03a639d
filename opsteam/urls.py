from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from notifications import views as notification_views
from worktime import views as calendar_views

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("notifications/", notification_views.inbox, name="inbox"),
    path("notifications/read/", notification_views.mark_read, name="inbox-mark-read"),
    path("teams/<int:team_id>/calendar/", calendar_views.calendar, name="team-calendar"),
    path("teams/<int:team_id>/deliveries/", notification_views.deliveries, name="team-deliveries"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/", include("workflows.api.urls")),
    path("api/", include("notifications.api")),
    path("api/", include("worktime.api")),
]

handler404 = "opsteam.views.page_not_found"
handler500 = "opsteam.views.server_error"
