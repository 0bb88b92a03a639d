from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter(trailing_slash=True)
router.register("teams", views.TeamViewSet, basename="team")
router.register("workflows", views.WorkflowViewSet, basename="workflow")
router.register("requirements", views.RequirementViewSet, basename="requirement")
router.register("loops", views.LoopViewSet, basename="loop")
router.register("comments", views.CommentViewSet, basename="comment")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("", include(router.urls)),
]
