"""The data loop's API: metrics and observations, watches, goals and strategies, the funnel, tracking
plans and analysis conclusions. Thin views: parse, call one service or selector, serialize."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects
from django.urls import path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.params import scope_from_query
from opsteam.api import CursorPage, ErrorResponses
from opsteam.exceptions import InvalidInput, NotFound
from roles.permissions import team_get_for_user
from workflows import services as workflow_services
from workflows.models import Requirement
from workflows.selectors import requirement_current_loop, requirement_get_for_user, tracking_plan_complete

from . import imports, rules, selectors, services
from . import serializers as s
from .models import Strategy
from .presets import WATCH_PRESETS

TEAM_ID = OpenApiParameter("team_id", int, OpenApiParameter.PATH)
REQUIREMENT = OpenApiParameter(
    "requirement",
    str,
    OpenApiParameter.PATH,
    description=_("The requirement's id, or its key such as GROW-42."),
)
NO_BODY = {204: None, **ErrorResponses.of(400, 401, 403, 404)}


def _int(value: Any) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound()
    return int(text)


def _requirement(request: Request, value: str) -> Any:
    if value.isascii() and value.isdigit():
        return requirement_get_for_user(user=request.user, requirement_id=_int(value))
    if "\x00" in value or len(value) > 30:
        raise NotFound()
    return requirement_get_for_user(user=request.user, key=value)


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class ObservationPage(CursorPage):
    ordering = ("-date", "id")
    page_size = 100
    max_page_size = 1000


# ------------------------------------------------------------------------------------------- metrics


class TeamMetricsView(APIView):
    @extend_schema(
        parameters=[TEAM_ID],
        responses={200: s.MetricSerializer(many=True), **ErrorResponses.of(401, 404)},
        summary=_("The team's metric catalogue with each metric's latest value"),
        tags=["data loop"],
    )
    def get(self, request: Request, team_id: str) -> Response:
        team = team_get_for_user(user=request.user, team_id=_int(team_id))
        return Response(s.MetricSerializer(selectors.metric_list_for_team(team=team), many=True).data)

    @extend_schema(
        parameters=[TEAM_ID],
        request=s.MetricWriteSerializer,
        responses={201: s.MetricSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_("Add a metric (ops, analysts, leads)"),
        tags=["data loop"],
    )
    def post(self, request: Request, team_id: str) -> Response:
        metric = services.metric_create(
            actor=request.user, team_id=_int(team_id), **_valid(s.MetricWriteSerializer, request)
        )
        return Response(s.MetricSerializer(_metric(request, metric.pk)).data, status=201)


def _metric(request: Request, metric_id: int) -> Any:
    metric = selectors.metric_get_for_user(user=request.user, metric_id=metric_id)
    return selectors.metric_list_for_team(team=metric.team_id).get(pk=metric.pk)


class MetricView(APIView):
    @extend_schema(responses={200: s.MetricSerializer, **ErrorResponses.of(401, 404)}, tags=["data loop"])
    def get(self, request: Request, pk: str) -> Response:
        return Response(s.MetricSerializer(_metric(request, _int(pk))).data)

    @extend_schema(
        request=s.MetricUpdateSerializer,
        responses={200: s.MetricSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        tags=["data loop"],
    )
    def patch(self, request: Request, pk: str) -> Response:
        fields = _valid(s.MetricUpdateSerializer, request)
        metric = services.metric_update(actor=request.user, metric_id=_int(pk), **fields)
        return Response(s.MetricSerializer(_metric(request, metric.pk)).data)

    @extend_schema(
        responses=NO_BODY,
        summary=_("Delete a metric nothing refers to (no observations, watches or goals)"),
        tags=["data loop"],
    )
    def delete(self, request: Request, pk: str) -> Response:
        services.metric_delete(actor=request.user, metric_id=_int(pk))
        return Response(status=204)


class MetricObservationsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATE, description=_("First day (included).")),
            OpenApiParameter("end", OpenApiTypes.DATE, description=_("Last day (included).")),
            OpenApiParameter(
                "segment", str, description=_("Only this segment; empty for the whole product.")
            ),
        ],
        responses={200: s.ObservationSerializer(many=True), **ErrorResponses.of(400, 401, 404)},
        summary=_("A metric's observations, newest first (cursor pages)"),
        tags=["data loop"],
    )
    def get(self, request: Request, pk: str) -> Response:
        metric = selectors.metric_get_for_user(user=request.user, metric_id=_int(pk))
        errors: dict[str, list[str]] = {}
        bounds = {}
        for name in ("start", "end"):
            raw = request.query_params.get(name)
            if raw:
                parsed = imports.parse_date(raw)
                if parsed is None:
                    errors[name] = [gettext("Enter a date as YYYY-MM-DD.")]
                bounds[name] = parsed
        if errors:
            raise InvalidInput(errors)
        rows = selectors.observation_list(
            metric=metric, segment=request.query_params.get("segment"), **bounds
        ).order_by("-date", "id")
        page = ObservationPage()
        found = page.paginate_queryset(rows, request, self)
        return page.get_paginated_response(s.ObservationSerializer(found, many=True).data)

    @extend_schema(
        request=s.ObservationWriteSerializer,
        responses={201: s.ObservationSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_(
            "Record the metric's value for a day; a second value for the same day and segment replaces it"
        ),
        tags=["data loop"],
    )
    def post(self, request: Request, pk: str) -> Response:
        fields = _valid(s.ObservationWriteSerializer, request)
        observation = services.observation_record(
            actor=request.user,
            metric_id=_int(pk),
            date=fields["date"],
            value=fields["value"],
            segment=fields["segment"],
            loop_id=fields["loop"],
            source="api",
        )
        return Response(s.ObservationSerializer(observation).data, status=201)


class ObservationView(APIView):
    @extend_schema(responses=NO_BODY, tags=["data loop"])
    def delete(self, request: Request, pk: str) -> Response:
        services.observation_delete(actor=request.user, observation_id=_int(pk))
        return Response(status=204)


class ObservationImportView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        parameters=[TEAM_ID],
        request={"multipart/form-data": s.ObservationImportRequestSerializer},
        responses={200: s.ObservationImportResultSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_(
            "Import observations from CSV: every row is checked first; a bad row rejects the file with its line"
        ),
        tags=["data loop"],
    )
    def post(self, request: Request, team_id: str) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput({"file": [gettext("Attach a CSV file as “file”.")]})
        if upload.size and upload.size > imports.MAX_BYTES:
            raise InvalidInput(
                {"file": [gettext("The file is larger than %(mb)d MB.") % {"mb": imports.MAX_BYTES // 2**20}]}
            )
        result = services.observations_import(
            actor=request.user, team_id=_int(team_id), content=upload.read()
        )
        return Response(result)


# ------------------------------------------------------------------------------------------- watches


class TeamWatchesView(APIView):
    @extend_schema(
        parameters=[TEAM_ID],
        responses={200: s.WatchSerializer(many=True), **ErrorResponses.of(401, 404)},
        summary=_("The team's metric watches"),
        tags=["data loop"],
    )
    def get(self, request: Request, team_id: str) -> Response:
        team = team_get_for_user(user=request.user, team_id=_int(team_id))
        return Response(s.WatchSerializer(selectors.watch_list_for_team(team=team), many=True).data)

    @extend_schema(
        parameters=[TEAM_ID],
        request=s.WatchWriteSerializer,
        responses={201: s.WatchSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_("Add a watch: a condition on a metric and the requirement to open when it holds"),
        tags=["data loop"],
    )
    def post(self, request: Request, team_id: str) -> Response:
        watch = services.watch_create(
            actor=request.user, team_id=_int(team_id), **_valid(s.WatchWriteSerializer, request)
        )
        return Response(s.WatchSerializer(_watch(request, watch.pk)).data, status=201)


def _watch(request: Request, watch_id: int) -> Any:
    watch = selectors.watch_get_for_user(user=request.user, watch_id=watch_id)
    return selectors.watch_list_for_team(team=watch.team_id).get(pk=watch.pk)


class WatchView(APIView):
    @extend_schema(responses={200: s.WatchSerializer, **ErrorResponses.of(401, 404)}, tags=["data loop"])
    def get(self, request: Request, pk: str) -> Response:
        return Response(s.WatchSerializer(_watch(request, _int(pk))).data)

    @extend_schema(
        request=s.WatchUpdateSerializer,
        responses={200: s.WatchSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        tags=["data loop"],
    )
    def patch(self, request: Request, pk: str) -> Response:
        fields = _valid(s.WatchUpdateSerializer, request)
        watch = services.watch_update(actor=request.user, watch_id=_int(pk), **fields)
        return Response(s.WatchSerializer(_watch(request, watch.pk)).data)

    @extend_schema(responses=NO_BODY, tags=["data loop"])
    def delete(self, request: Request, pk: str) -> Response:
        services.watch_delete(actor=request.user, watch_id=_int(pk))
        return Response(status=204)


class WatchFiringsView(APIView):
    @extend_schema(
        responses={200: s.WatchFiringSerializer(many=True), **ErrorResponses.of(401, 404)},
        summary=_("When the watch fired, on which values, and what it opened (newest first)"),
        tags=["data loop"],
    )
    def get(self, request: Request, pk: str) -> Response:
        watch = selectors.watch_get_for_user(user=request.user, watch_id=_int(pk))
        return Response(s.WatchFiringSerializer(selectors.watch_firings(watch=watch)[:200], many=True).data)


class WatchPresetsView(APIView):
    @extend_schema(
        responses={200: s.WatchPresetSerializer(many=True), **ErrorResponses.of(401)},
        summary=_("Watches to start from, in your language"),
        tags=["data loop"],
    )
    def get(self, request: Request) -> Response:
        translated = [
            {
                name: gettext(value)
                if isinstance(value, str)
                and value
                and name
                not in ("key", "comparison", "period", "aarrr_stage", "priority", "owner_role", "threshold")
                else value
                for name, value in preset.items()
            }
            for preset in WATCH_PRESETS
        ]
        return Response(s.WatchPresetSerializer(translated, many=True).data)


# --------------------------------------------------------------------------------------------- goals


class TeamGoalsView(APIView):
    @extend_schema(
        parameters=[TEAM_ID],
        responses={200: s.GoalSerializer(many=True), **ErrorResponses.of(401, 404)},
        summary=_("The team's goals with their progress"),
        tags=["data loop"],
    )
    def get(self, request: Request, team_id: str) -> Response:
        team = team_get_for_user(user=request.user, team_id=_int(team_id))
        goals = selectors.goal_list_for_team(team=team)
        _prefetch_first_level(goals)
        return Response(s.GoalSerializer(goals, many=True).data)

    @extend_schema(
        parameters=[TEAM_ID],
        request=s.GoalWriteSerializer,
        responses={201: s.GoalTreeSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_("Add a goal (ops, PMs, leads)"),
        tags=["data loop"],
    )
    def post(self, request: Request, team_id: str) -> Response:
        goal = services.goal_create(
            actor=request.user, team_id=_int(team_id), **_valid(s.GoalWriteSerializer, request)
        )
        return Response(_goal_tree(request, goal.pk), status=201)


def _prefetch_first_level(goals: list[Any]) -> None:
    prefetch_related_objects(goals, "first_level_metrics")


def _goal_tree(request: Request, goal_id: int) -> dict[str, Any]:
    goal = selectors.goal_get_for_user(user=request.user, goal_id=goal_id)
    tree = selectors.goal_tree(goal=goal)
    goal.first_level = tree["first_level"]  # type: ignore[attr-defined]
    return s.GoalTreeSerializer(goal, context={"strategies": tree["strategies"]}).data


class GoalView(APIView):
    @extend_schema(
        responses={200: s.GoalTreeSerializer, **ErrorResponses.of(401, 404)},
        summary=_("A goal as a tree: progress, first-level metrics, strategies and their requirements"),
        tags=["data loop"],
    )
    def get(self, request: Request, pk: str) -> Response:
        return Response(_goal_tree(request, _int(pk)))

    @extend_schema(
        request=s.GoalUpdateSerializer,
        responses={200: s.GoalTreeSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        tags=["data loop"],
    )
    def patch(self, request: Request, pk: str) -> Response:
        goal = services.goal_update(
            actor=request.user, goal_id=_int(pk), **_valid(s.GoalUpdateSerializer, request)
        )
        return Response(_goal_tree(request, goal.pk))

    @extend_schema(responses=NO_BODY, tags=["data loop"])
    def delete(self, request: Request, pk: str) -> Response:
        services.goal_delete(actor=request.user, goal_id=_int(pk))
        return Response(status=204)


class GoalStrategiesView(APIView):
    @extend_schema(
        request=s.StrategyWriteSerializer,
        responses={201: s.StrategySerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_("Add a strategy to a goal, with the requirements that carry it"),
        tags=["data loop"],
    )
    def post(self, request: Request, pk: str) -> Response:
        fields = _valid(s.StrategyWriteSerializer, request)
        strategy = services.strategy_create(actor=request.user, goal_id=_int(pk), **fields)
        return Response(s.StrategySerializer(_strategy(request, strategy.pk)).data, status=201)


def _strategy(request: Request, strategy_id: int) -> Any:
    selectors.strategy_get_for_user(user=request.user, strategy_id=strategy_id)
    return Strategy.objects.prefetch_related(
        Prefetch("requirements", queryset=Requirement.objects.select_related("stage").order_by("key"))
    ).get(pk=strategy_id)


class StrategyView(APIView):
    @extend_schema(responses={200: s.StrategySerializer, **ErrorResponses.of(401, 404)}, tags=["data loop"])
    def get(self, request: Request, pk: str) -> Response:
        return Response(s.StrategySerializer(_strategy(request, _int(pk))).data)

    @extend_schema(
        request=s.StrategyUpdateSerializer,
        responses={200: s.StrategySerializer, **ErrorResponses.of(400, 401, 403, 404)},
        tags=["data loop"],
    )
    def patch(self, request: Request, pk: str) -> Response:
        fields = _valid(s.StrategyUpdateSerializer, request)
        strategy = services.strategy_update(actor=request.user, strategy_id=_int(pk), **fields)
        return Response(s.StrategySerializer(_strategy(request, strategy.pk)).data)

    @extend_schema(responses=NO_BODY, tags=["data loop"])
    def delete(self, request: Request, pk: str) -> Response:
        services.strategy_delete(actor=request.user, strategy_id=_int(pk))
        return Response(status=204)


# -------------------------------------------------------------------------------------------- funnel


class FunnelView(APIView):
    @extend_schema(
        parameters=[
            TEAM_ID,
            OpenApiParameter(
                "period", str, enum=["30", "90", "180", "custom"], description=_("Days back from today.")
            ),
            OpenApiParameter("start", OpenApiTypes.DATE),
            OpenApiParameter("end", OpenApiTypes.DATE),
        ],
        responses={200: s.FunnelSerializer, **ErrorResponses.of(400, 401, 404)},
        summary=_("Requirements and loops per AARRR stage over a period"),
        tags=["data loop"],
    )
    def get(self, request: Request, team_id: str) -> Response:
        team = team_get_for_user(user=request.user, team_id=_int(team_id))
        query = request.query_params.copy()
        query["team"] = str(team.pk)
        scope = scope_from_query(query, user=request.user)
        rows = selectors.funnel(team=team, start=scope.start, end=scope.end)
        local_end = (scope.end - dt.timedelta(microseconds=1)).astimezone(scope.zone).date()
        return Response(
            s.FunnelSerializer(
                {
                    "team": team.pk,
                    "start": scope.start.astimezone(scope.zone).date(),
                    "end": local_end,
                    "stages": rows,
                }
            ).data
        )


# ------------------------------------------------------------------------------ tracking and analysis


def _plan(requirement: Any) -> dict[str, Any]:
    loop = requirement_current_loop(requirement=requirement)
    events = selectors.tracking_plan(loop=loop)
    progress = selectors.tracking_progress(events)
    return {
        "loop": loop.pk,
        "loop_number": loop.number,
        **progress,
        "complete": tracking_plan_complete(total=progress["total"], verified=progress["verified"]),
        "events": events,
    }


class TrackingPlanView(APIView):
    @extend_schema(
        parameters=[REQUIREMENT],
        responses={200: s.TrackingPlanSerializer, **ErrorResponses.of(401, 404)},
        summary=_("The tracking plan of the requirement's current loop, with its progress"),
        tags=["data loop"],
    )
    def get(self, request: Request, requirement: str) -> Response:
        return Response(s.TrackingPlanSerializer(_plan(_requirement(request, requirement))).data)

    @extend_schema(
        parameters=[REQUIREMENT],
        request=s.TrackingEventWriteSerializer,
        responses={201: s.TrackingEventSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_("Add an event to the current loop's tracking plan (PMs, engineers, analysts, leads)"),
        tags=["data loop"],
    )
    def post(self, request: Request, requirement: str) -> Response:
        found = _requirement(request, requirement)
        fields = _valid(s.TrackingEventWriteSerializer, request)
        event = workflow_services.tracking_event_add(requirement_id=found.pk, actor=request.user, **fields)
        return Response(s.TrackingEventSerializer(event).data, status=201)


class TrackingEventView(APIView):
    @extend_schema(
        request=s.TrackingEventUpdateSerializer,
        responses={200: s.TrackingEventSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_("Change an event of the plan, or move its status"),
        tags=["data loop"],
    )
    def patch(self, request: Request, pk: str) -> Response:
        fields = _valid(s.TrackingEventUpdateSerializer, request)
        event_id = _int(pk)
        status = fields.pop("status", None)
        event = None
        if fields:
            event = workflow_services.tracking_event_update(event_id=event_id, actor=request.user, **fields)
        if status is not None:
            event = workflow_services.tracking_event_set_status(
                event_id=event_id, actor=request.user, status=status
            )
        if event is None:
            raise InvalidInput({"detail": [gettext("Nothing to change.")]})
        return Response(s.TrackingEventSerializer(event).data)

    @extend_schema(responses=NO_BODY, tags=["data loop"])
    def delete(self, request: Request, pk: str) -> Response:
        workflow_services.tracking_event_delete(event_id=_int(pk), actor=request.user)
        return Response(status=204)


def _analysis(request: Request, requirement: Any) -> dict[str, Any]:
    loop = requirement_current_loop(requirement=requirement)
    reading = selectors.before_after_for(requirement=requirement)
    values = reading.values or rules.BeforeAfter(None, None, 0, 0)
    return {
        "loop": loop,
        "reading": {
            "metric": reading.metric.pk if reading.metric else None,
            "metric_name": reading.metric.name if reading.metric else "",
            "launch_date": reading.launch,
            "days": rules.BEFORE_AFTER_DAYS,
            "before": values.before,
            "after": values.after,
            "before_days": values.before_days,
            "after_days": values.after_days,
            "change": values.change,
            "relative": values.relative,
        },
    }


class AnalysisView(APIView):
    @extend_schema(
        parameters=[REQUIREMENT],
        responses={200: s.AnalysisSerializer, **ErrorResponses.of(401, 404)},
        summary=_("The current loop's conclusion and the target metric before and after the launch"),
        tags=["data loop"],
    )
    def get(self, request: Request, requirement: str) -> Response:
        return Response(s.AnalysisSerializer(_analysis(request, _requirement(request, requirement))).data)

    @extend_schema(
        parameters=[REQUIREMENT],
        request=s.ConclusionWriteSerializer,
        responses={200: s.AnalysisSerializer, **ErrorResponses.of(400, 401, 403, 404)},
        summary=_("Write the current loop's analysis conclusion (analysts, leads)"),
        tags=["data loop"],
    )
    def post(self, request: Request, requirement: str) -> Response:
        found = _requirement(request, requirement)
        fields = _valid(s.ConclusionWriteSerializer, request)
        services.conclusion_record(
            requirement_id=found.pk,
            actor=request.user,
            conclusion=fields["conclusion"],
            verdict=fields["verdict"],
            core_metric_moved=fields["core_metric_moved"],
            behaviour_moved=fields["behaviour_moved"],
            feedback_positive=fields["feedback_positive"],
            metric_id=fields.get("metric"),
        )
        return Response(s.AnalysisSerializer(_analysis(request, found)).data)


urlpatterns = [
    path("teams/<str:team_id>/metrics/", TeamMetricsView.as_view(), name="api-team-metrics"),
    path("metrics/<str:pk>/", MetricView.as_view(), name="api-metric"),
    path("metrics/<str:pk>/observations/", MetricObservationsView.as_view(), name="api-metric-observations"),
    path("observations/<str:pk>/", ObservationView.as_view(), name="api-observation"),
    path(
        "teams/<str:team_id>/observations/import/",
        ObservationImportView.as_view(),
        name="api-observations-import",
    ),
    path("teams/<str:team_id>/watches/", TeamWatchesView.as_view(), name="api-team-watches"),
    path("watches/<str:pk>/", WatchView.as_view(), name="api-watch"),
    path("watches/<str:pk>/firings/", WatchFiringsView.as_view(), name="api-watch-firings"),
    path("watch-presets/", WatchPresetsView.as_view(), name="api-watch-presets"),
    path("teams/<str:team_id>/goals/", TeamGoalsView.as_view(), name="api-team-goals"),
    path("goals/<str:pk>/", GoalView.as_view(), name="api-goal"),
    path("goals/<str:pk>/strategies/", GoalStrategiesView.as_view(), name="api-goal-strategies"),
    path("strategies/<str:pk>/", StrategyView.as_view(), name="api-strategy"),
    path("teams/<str:team_id>/funnel/", FunnelView.as_view(), name="api-team-funnel"),
    path(
        "requirements/<str:requirement>/tracking-plan/", TrackingPlanView.as_view(), name="api-tracking-plan"
    ),
    path("tracking-events/<str:pk>/", TrackingEventView.as_view(), name="api-tracking-event"),
    path("requirements/<str:requirement>/analysis/", AnalysisView.as_view(), name="api-requirement-analysis"),
]
