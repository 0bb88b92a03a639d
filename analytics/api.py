"""Every dashboard figure as JSON: /api/analytics/<metric>/ with the dashboard's query parameters."""

from __future__ import annotations

import datetime as dt
import gc
import json
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from django.urls import path
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from opsteam.api import ErrorResponses

from . import selectors
from . import serializers as schemas
from .params import describe, scope_from_query

StrOrPromise = str | Promise

QUERY = [
    OpenApiParameter("team", int, description=_("Team id. Without it: all teams you can see (staff: all).")),
    OpenApiParameter(
        "period", str, enum=["30", "90", "180", "custom"], description=_("Days back from today, or custom.")
    ),
    OpenApiParameter("start", OpenApiTypes.DATE, description=_("First day of a custom period.")),
    OpenApiParameter("end", OpenApiTypes.DATE, description=_("Last day of a custom period (included).")),
    OpenApiParameter("aarrr", str, enum=["acquisition", "activation", "retention", "revenue", "referral"]),
    OpenApiParameter("label", str, description=_("A label name.")),
    OpenApiParameter("assignee", int, description=_("A user id.")),
    OpenApiParameter("priority", str, enum=["P0", "P1", "P2", "P3"]),
    OpenApiParameter(
        "time", str, enum=["calendar", "working"], description=_("Calendar time (default) or working time.")
    ),
]

Compute = Callable[[selectors.Scope], dict[str, Any]]

# name → (selector, summary, the answer's shape for the schema).
METRICS: dict[str, tuple[Compute, StrOrPromise, type[serializers.Serializer]]] = {
    "cycle-time": (
        selectors.cycle_time,
        _("Loop cycle time of loops closed in the period: p50/p85/p95/mean/count, seconds."),
        schemas.AnalyticsCycleTimeSerializer,
    ),
    "time-in-stage": (
        selectors.time_in_stage,
        _("Time in each stage over loops closed in the period, and the bottleneck."),
        schemas.AnalyticsTimeInStageSerializer,
    ),
    "control-chart": (
        selectors.control_chart,
        _("One point per closed loop, p50/p85 and the rolling average."),
        schemas.AnalyticsControlChartSerializer,
    ),
    "cumulative-flow": (
        selectors.cumulative_flow,
        _("Open loops per stage at the end of each day, and loops closed."),
        schemas.AnalyticsCumulativeFlowSerializer,
    ),
    "throughput": (
        selectors.throughput,
        _("Loops closed per ISO week, by outcome."),
        schemas.AnalyticsThroughputSerializer,
    ),
    "wip": (
        selectors.wip,
        _("Open loops per stage now, with their age and time in the current stage."),
        schemas.AnalyticsWipSerializer,
    ),
    "sla": (
        selectors.sla,
        _("Per stage: visits ended in the period, those past the SLA, the breach rate."),
        schemas.AnalyticsSlaSerializer,
    ),
    "rework": (
        selectors.rework,
        _("Backward transitions per stage; share of closed loops with rework."),
        schemas.AnalyticsReworkSerializer,
    ),
    "loops-per-requirement": (
        selectors.loops_per_requirement,
        _("Loops taken by requirements closed in the period."),
        schemas.AnalyticsLoopsPerRequirementSerializer,
    ),
}


def _view(
    name: str, compute: Compute, summary: StrOrPromise, shape: type[serializers.Serializer]
) -> type[APIView]:
    class MetricView(APIView):
        @extend_schema(
            operation_id=f"analytics_{name.replace('-', '_')}",
            summary=summary,
            tags=["analytics"],
            parameters=QUERY,
            responses={200: shape, **ErrorResponses.of(400)},
        )
        def get(self, request: Request) -> HttpResponse:
            scope = scope_from_query(request.query_params, user=request.user)
            if name == "control-chart":
                return control_chart_response(scope)
            return Response({"query": describe(scope), **_jsonable(compute(scope))})

    MetricView.__name__ = f"{name.title().replace('-', '')}View"
    return MetricView


POINTS_PER_CHUNK = 2000


def _dumps(value: Any) -> str:
    """JSON as DRF's renderer writes it (compact, UTF-8, no NaN)."""
    return json.dumps(value, cls=JSONEncoder, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _json_bytes(text: str) -> bytes:
    # As DRF's renderer: the two line separators JSON allows but JavaScript does not are escaped.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class LargeResponse(HttpResponse):
    """A response with a large body, collected once sent. DRF's view and its request refer to each
    other, and the view to its response: the body stays in that cycle until the collector's next full
    pass, which comes rarely once the long-lived objects are frozen (opsteam/wsgi.py); a web worker grew
    ~11 MB per control chart over every team until then."""

    def close(self) -> None:
        super().close()
        gc.collect()


def control_chart_response(scope: selectors.Scope) -> HttpResponse:
    """The control chart's JSON, written a slice of points at a time into the response's chunks: the same
    bytes as the other metrics' Response, without holding every point as a dict nor the document as one
    string (over every team, ~80,000 points and 10 MB of JSON, which took ~100 MB of a web worker's
    memory). WSGI sends the chunks as they are; the length is summed, not measured on a joined copy."""
    points, window = selectors.control_chart_points(scope)
    cycles = [point[3] for point in points]
    tail = {
        "p50": selectors.percentile(cycles, 50),
        "p85": selectors.percentile(cycles, 85),
        "window": window,
    }
    del cycles
    response = LargeResponse(content_type="application/json")
    length = 0

    def write(text: str) -> None:
        nonlocal length
        part = _json_bytes(text)
        length += len(part)
        response.write(part)

    write('{"query":' + _dumps(describe(scope)) + ',"points":[')
    for first in range(0, len(points), POINTS_PER_CHUNK):
        chunk = [
            dict(zip(selectors.POINT_FIELDS, (*point[:2], point[2].isoformat(), *point[3:]), strict=True))
            for point in points[first : first + POINTS_PER_CHUNK]
        ]
        write(("," if first else "") + _dumps(chunk)[1:-1])
    del points
    write("]," + _dumps(tail)[1:])
    response["Content-Length"] = str(length)
    return response


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO strings. Dicts and lists are converted in place: a metric's answer is built fresh
    for each request, and a copy of a control chart over every team (80,000 points) cost ~40 MB more."""
    if isinstance(value, dict):
        for k, v in value.items():
            value[k] = _jsonable(v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            value[i] = _jsonable(v)
    elif isinstance(value, dt.datetime):
        return value.isoformat()
    return value


urlpatterns = [
    path(f"analytics/{name}/", _view(name, compute, summary, shape).as_view(), name=f"api-analytics-{name}")
    for name, (compute, summary, shape) in METRICS.items()
]
