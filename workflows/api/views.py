"""Thin API views: parse with a serializer, call one service or selector, serialize the answer."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from opsteam.api import ANY_SEGMENT, CursorPage, ErrorResponses
from opsteam.db import server_prepared
from opsteam.exceptions import InvalidInput, NotFound
from roles import services as role_services
from roles.models import Team
from roles.permissions import teams_visible_to
from workflows import selectors, services
from workflows.models import Requirement

from . import serializers as s
from .filters import LoopFilter, RequirementFilter, WorkflowFilter

ID_OR_KEY = OpenApiParameter(
    "id", str, OpenApiParameter.PATH, description=_("The requirement's id, or its key such as GROW-42.")
)


class EventPage(CursorPage):
    ordering = ("at", "id")


class CommentPage(CursorPage):
    ordering = ("created_at", "id")


class NamePage(CursorPage):
    ordering = "id"


class IntIdLookup:
    """Any path segment reaches the view, so a malformed or oversized id is a JSON 404 from `_int`
    rather than Django's HTML page (or a database overflow)."""

    lookup_value_regex = ANY_SEGMENT

    def get_object(self) -> Any:
        self.kwargs["pk"] = _int(self.kwargs["pk"])
        return super().get_object()  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- auth


class TokenView(APIView):
    """Exchange a username and password for an API token; DELETE revokes the caller's token."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    def get_permissions(self) -> list[Any]:
        if getattr(self.request, "method", None) == "POST":
            return [AllowAny()]
        return super().get_permissions()

    def get_authenticators(self) -> list[Any]:
        # Signing in must not trip over a stale session's CSRF check.
        if getattr(self.request, "method", None) == "POST":
            return []
        return super().get_authenticators()

    @extend_schema(
        request=s.TokenRequestSerializer,
        responses={200: s.TokenSerializer, **ErrorResponses.of(400, 429)},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = s.TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None or not user.is_active:
            raise InvalidInput({"detail": [_("Unable to log in with these credentials.")]})
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(responses={204: None, **ErrorResponses.of(401, 403)})
    def delete(self, request: Request) -> Response:
        role_services.token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses={200: s.MeSerializer, **ErrorResponses.of(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(s.MeSerializer(selectors.user_summary(user=request.user)).data)


# --------------------------------------------------------------------------------------------- teams


@extend_schema_view(
    list=extend_schema(summary=_("Teams you belong to")),
    create=extend_schema(
        summary=_("Create a team: you become its lead and it gets the default workflow"),
        request=s.TeamSerializer,
        responses={201: s.TeamSerializer},
    ),
    partial_update=extend_schema(request=s.TeamUpdateSerializer, responses={200: s.TeamSerializer}),
    destroy=extend_schema(
        summary=_("Teams are not deleted through the API: always 400"), responses=ErrorResponses.of(400)
    ),
)
class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.TeamSerializer
    lookup_value_regex = ANY_SEGMENT
    pagination_class = NamePage
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Team]:
        return teams_visible_to(user=self.request.user)

    def get_object(self) -> Team:
        return selectors.team_get_for_user(user=self.request.user, team_id=_int(self.kwargs["pk"]))

    def create(self, request: Request) -> Response:
        data = s.TeamSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = services.team_setup(creator=request.user, **data.validated_data)
        return Response(s.TeamSerializer(team).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        team = self.get_object()
        data = s.TeamUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        team = role_services.team_update(team_id=team.pk, actor=request.user, **data.validated_data)
        return Response(s.TeamSerializer(team).data)

    @extend_schema(
        methods=["GET"],
        summary=_("Members of the team with their roles"),
        responses=s.MembershipSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        summary=_("Add a member (leads)"),
        request=s.MembershipAddSerializer,
        responses={201: s.MembershipSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request: Request, pk: str) -> Response:
        team = self.get_object()
        if request.method == "GET":
            memberships = selectors.membership_list_for_team(team=team)
            return Response(s.MembershipSerializer(memberships, many=True).data)
        data = s.MembershipAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = role_services.user_get_by_username_or_id(value=data.validated_data["user"])
        membership = role_services.membership_add(
            team=team, user=user, roles=data.validated_data["roles"], actor=request.user
        )
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["PATCH"],
        summary=_("Change a member's roles (leads)"),
        request=s.MembershipRolesSerializer,
        responses=s.MembershipSerializer,
        parameters=[OpenApiParameter("membership_id", int, OpenApiParameter.PATH)],
    )
    @extend_schema(
        methods=["DELETE"],
        summary=_("Remove a member (leads); a team keeps at least one lead"),
        responses={204: None},
        parameters=[OpenApiParameter("membership_id", int, OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["patch", "delete"], url_path=rf"members/(?P<membership_id>{ANY_SEGMENT})")
    def member(self, request: Request, pk: str, membership_id: str) -> Response:
        team = self.get_object()
        membership = selectors.membership_list_for_team(team=team).filter(pk=_int(membership_id)).first()
        if membership is None:
            raise NotFound()
        if request.method == "DELETE":
            role_services.membership_remove(membership_id=membership.pk, actor=request.user)
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = s.MembershipRolesSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = role_services.membership_set_roles(
            membership_id=membership.pk, roles=data.validated_data["roles"], actor=request.user
        )
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(methods=["GET"], summary=_("The team's current workflow"), responses=s.WorkflowSerializer)
    @extend_schema(
        methods=["PATCH"],
        summary=_("Change SLAs, owners and role gates (leads): makes a new workflow version"),
        request=s.WorkflowChangeSerializer,
        responses=s.WorkflowSerializer,
    )
    @action(detail=True, methods=["get", "patch"])
    def workflow(self, request: Request, pk: str) -> Response:
        team = self.get_object()
        if request.method == "PATCH":
            data = s.WorkflowChangeSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            services.workflow_new_version(
                team_id=team.pk,
                actor=request.user,
                stages=data.validated_data.get("stages"),
                transitions=data.validated_data.get("transitions"),
            )
        workflow = selectors.workflow_list_for_user(user=request.user).get(team=team, is_current=True)
        return Response(s.WorkflowSerializer(workflow).data)

    def destroy(self, request: Request, pk: str) -> Response:
        self.get_object()  # a team the caller cannot see is not found, as for every other method
        raise InvalidInput({"detail": [_("Teams are not deleted through the API.")]})


class WorkflowViewSet(IntIdLookup, viewsets.ReadOnlyModelViewSet):
    """Every version of the workflows of your teams (requirements keep the version they started with)."""

    serializer_class = s.WorkflowSerializer
    pagination_class = NamePage
    filterset_class = WorkflowFilter

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.workflow_list_for_user(user=self.request.user)


# ---------------------------------------------------------------------------------------- requirements


@extend_schema_view(
    retrieve=extend_schema(parameters=[ID_OR_KEY]),
    partial_update=extend_schema(
        parameters=[ID_OR_KEY], request=s.RequirementUpdateSerializer, responses=s.RequirementSerializer
    ),
    create=extend_schema(request=s.RequirementWriteSerializer, responses={201: s.RequirementSerializer}),
)
class RequirementViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.RequirementSerializer
    pagination_class = CursorPage
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = RequirementFilter
    ordering_fields = ["id", "created_at", "stage_entered_at", "priority"]
    lookup_value_regex = ANY_SEGMENT
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Requirement]:
        return selectors.requirement_list_for_user(user=self.request.user)

    def _id_or_key(self) -> dict[str, Any]:
        """The path names the requirement by id or by key."""
        value = str(self.kwargs["pk"])
        if value.isascii() and value.isdigit():
            return {"requirement_id": _int(value)}
        if "\x00" in value:  # no key holds one, and PostgreSQL refuses it in a query
            raise NotFound()
        return {"key": value[:24]}

    def get_object(self) -> Requirement:
        return selectors.requirement_get_for_user(user=self.request.user, **self._id_or_key())

    def _fresh(self, requirement_id: int) -> dict[str, Any]:
        requirement = self.get_queryset().get(pk=requirement_id)
        return s.RequirementSerializer(requirement).data

    def create(self, request: Request) -> Response:
        data = s.RequirementWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        team = selectors.team_get_for_user(user=request.user, team_id=fields.pop("team"))
        requirement = services.requirement_create(team=team, actor=request.user, **fields)
        return Response(self._fresh(requirement.pk), status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        requirement = self.get_object()
        data = s.RequirementUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.requirement_update(requirement_id=requirement.pk, actor=request.user, **data.validated_data)
        return Response(self._fresh(requirement.pk))

    @extend_schema(
        parameters=[ID_OR_KEY],
        request=s.TransitionRequestSerializer,
        responses={200: s.RequirementSerializer, **ErrorResponses.of(409)},
        summary=_("Move the requirement from the stage you saw to another"),
    )
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, pk: str) -> Response:
        # The service finds, scopes and locks the requirement in one query, and hands it back as it
        # is after the move: no read before it, and none after but the labels and watchers.
        # Its dozen statements are planned once per connection (opsteam.db.server_prepared).
        data = s.TransitionRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with server_prepared():
            event = services.requirement_transition(
                **self._id_or_key(),
                actor=request.user,
                from_stage=data.validated_data["from"],
                to_stage=data.validated_data["to"],
                note=data.validated_data["note"],
                outcome=data.validated_data["outcome"],
            )
            requirement = event.requirement
            selectors.requirement_prefetch_labels_and_watchers(requirement=requirement)
        return Response(s.RequirementSerializer(requirement).data)

    @extend_schema(
        parameters=[ID_OR_KEY],
        responses=s.StageEventSerializer(many=True),
        summary=_("The stage events, oldest first"),
    )
    @action(detail=True, methods=["get"], pagination_class=EventPage, filter_backends=[])
    def history(self, request: Request, pk: str) -> Response:
        requirement = self.get_object()
        page = self.paginate_queryset(selectors.requirement_history(requirement=requirement))
        return self.get_paginated_response(s.StageEventSerializer(page, many=True).data)

    @extend_schema(
        parameters=[ID_OR_KEY],
        responses=s.AvailableTransitionSerializer(many=True),
        summary=_("The moves you may make now, and the reason for each you may not"),
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="available-transitions",
        pagination_class=None,
        filter_backends=[],
    )
    def available_transitions(self, request: Request, pk: str) -> Response:
        requirement = self.get_object()
        options = selectors.requirement_available_transitions(user=request.user, requirement=requirement)
        return Response(s.AvailableTransitionSerializer(options, many=True).data)

    @extend_schema(methods=["GET"], parameters=[ID_OR_KEY], responses=s.CommentSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        parameters=[ID_OR_KEY],
        request=s.CommentSerializer,
        responses={201: s.CommentSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=CommentPage, filter_backends=[])
    def comments(self, request: Request, pk: str) -> Response:
        requirement = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(selectors.comment_list_for_requirement(requirement=requirement))
            return self.get_paginated_response(s.CommentSerializer(page, many=True).data)
        data = s.CommentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.comment_create(
            requirement_id=requirement.pk, actor=request.user, body=data.validated_data["body"]
        )
        return Response(s.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


COMMENT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH)


@extend_schema_view(retrieve=extend_schema(parameters=[COMMENT_ID]))
class CommentViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One comment; its author may edit it."""

    serializer_class = s.CommentSerializer
    http_method_names = ["get", "patch", "head", "options"]
    lookup_value_regex = ANY_SEGMENT

    def get_object(self) -> Any:
        return selectors.comment_get_for_user(user=self.request.user, comment_id=_int(self.kwargs["pk"]))

    @extend_schema(request=s.CommentSerializer, responses=s.CommentSerializer, parameters=[COMMENT_ID])
    def partial_update(self, request: Request, pk: str) -> Response:
        comment = self.get_object()
        data = s.CommentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.comment_update(
            comment_id=comment.pk, actor=request.user, body=data.validated_data["body"]
        )
        return Response(s.CommentSerializer(comment).data)


class LoopViewSet(IntIdLookup, viewsets.ReadOnlyModelViewSet):
    """Iteration loops of your teams' requirements, newest first."""

    serializer_class = s.LoopSerializer
    pagination_class = CursorPage
    filterset_class = LoopFilter

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.loop_list_for_user(user=self.request.user)


def _int(value: str) -> int:
    """A path id; anything else (`isdigit` alone lets "¹" through) or too large for the database is
    simply not found."""
    value = str(value)
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFound()
    return int(value)
