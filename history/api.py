"""API for a team's history: any member exports it, leads import it.

The export's `?format=json|csv` is DRF's own format override (URL_FORMAT_OVERRIDE, "format"): the view
offers a CSV renderer beside JSON, so DRF's content negotiation picks the format (from `?format=` or the
Accept header) and the view writes what was picked. Nothing global changes."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from opsteam.api import ErrorResponses
from opsteam.exceptions import InvalidInput
from roles.models import Team
from roles.permissions import ensure_may_manage, team_get_for_user

from . import formats, selectors, services

TEAM_ID = OpenApiParameter("team_id", int, OpenApiParameter.PATH)
# A multipart body carries the file and a little more; a body past this is refused before it is read.
MAX_BODY = formats.MAX_BYTES + 64 * 1024


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, str):
            return data.encode("utf-8")
        # Anything else (an OPTIONS description, an error asked for as CSV) goes out as JSON.
        return json.dumps(data, cls=JSONEncoder, ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------------------- schema documentation


class HistoryTeamSerializer(serializers.Serializer):
    key_prefix = serializers.CharField()
    name = serializers.CharField()
    time_zone = serializers.CharField()


class HistoryEventSerializer(serializers.Serializer):
    from_ = serializers.CharField(help_text=gettext_lazy("Stage slug; empty for the creation."))
    to = serializers.CharField(help_text=gettext_lazy("Stage slug; empty for close."))
    kind = serializers.ChoiceField(choices=["create", "forward", "rework", "override", "iterate", "close"])
    actor = serializers.CharField(allow_null=True, help_text=gettext_lazy("Username."))
    at = serializers.DateTimeField(help_text=gettext_lazy("ISO 8601 with its UTC offset."))
    note = serializers.CharField(allow_blank=True)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        return {"from": fields.pop("from_"), **fields}


class HistoryLoopSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    conclusion = serializers.CharField(allow_blank=True)
    verdict = serializers.CharField(allow_blank=True)
    events = HistoryEventSerializer(many=True)


class HistoryRequirementSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    hypothesis = serializers.CharField(allow_blank=True)
    target_metric = serializers.CharField(allow_blank=True)
    design = serializers.CharField(allow_blank=True)
    aarrr_stage = serializers.CharField(allow_blank=True)
    priority = serializers.CharField()
    incident_kind = serializers.CharField(allow_blank=True)
    work_type = serializers.CharField()
    launch_date = serializers.DateField(allow_null=True)
    due_date = serializers.DateField(allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)
    outcome = serializers.CharField(allow_blank=True)
    loops = HistoryLoopSerializer(many=True)


class HistoryFileSerializer(serializers.Serializer):
    format = serializers.CharField(help_text=gettext_lazy("Always “opsteam-history”."))
    version = serializers.IntegerField()
    team = HistoryTeamSerializer()
    requirements = HistoryRequirementSerializer(many=True)


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=gettext_lazy("A history file, JSON or CSV, of at most 20 MB."), allow_empty_file=False
    )
    format = serializers.ChoiceField(
        choices=list(formats.FORMATS),
        required=False,
        help_text=gettext_lazy("json or csv; by default guessed from the file's name and content."),
    )
    dry_run = serializers.BooleanField(
        default=False, help_text=gettext_lazy("Check everything, import nothing.")
    )


class ImportResultSerializer(serializers.Serializer):
    requirements = serializers.IntegerField(help_text=gettext_lazy("Requirements created."))
    loops = serializers.IntegerField(help_text=gettext_lazy("Iteration loops created."))
    events = serializers.IntegerField(help_text=gettext_lazy("Stage events created."))
    users_created = serializers.IntegerField(help_text=gettext_lazy("Placeholder users created."))
    skipped = serializers.IntegerField(
        help_text=gettext_lazy("Requirements already there with this history.")
    )
    extended = serializers.IntegerField(
        help_text=gettext_lazy("Requirements already there, given later events.")
    )
    dry_run = serializers.BooleanField()


class ImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True, help_text=gettext_lazy("The CSV line."))
    path = serializers.CharField(allow_null=True, help_text=gettext_lazy("Where in the JSON document."))
    field = serializers.CharField()
    message = serializers.CharField()


class ImportRejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)
    rows = serializers.ListField(child=serializers.CharField(), required=False)
    errors = ImportErrorSerializer(many=True, required=False)


# --------------------------------------------------------------------------------------------- views


class HistoryExportView(APIView):
    renderer_classes = [JSONRenderer, CsvRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404 as exc:  # DRF's answer to an unknown ?format=
            raise InvalidInput({"format": [_("Choose json or csv.")]}) from exc

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        # Errors are JSON, whichever format was asked for.
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        operation_id="teams_history_export",
        summary=gettext_lazy("Export the team's history: requirements with their loops and events"),
        parameters=[
            TEAM_ID,
            OpenApiParameter(
                "format",
                str,
                OpenApiParameter.QUERY,
                enum=list(formats.FORMATS),
                description=gettext_lazy(
                    "json (the default): the whole history; csv: one row per stage event, as an attachment."
                ),
            ),
        ],
        responses={
            (200, "application/json"): HistoryFileSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description=gettext_lazy("key,title,loop,from,to,kind,actor,timestamp,note,outcome"),
            ),
            # Errors are JSON whatever the format asked for.
            **{
                (code, "application/json"): answer
                for code, answer in ErrorResponses.of(400, 401, 403, 404).items()
            },
        },
    )
    def get(self, request: Request, team_id: int) -> Response:
        team = team_get_for_user(user=request.user, team_id=team_id)
        history = selectors.history_for_team(team=team)
        if request.accepted_renderer.format == formats.CSV:
            response = Response(formats.dump_csv(history))
        else:
            response = Response(formats.to_json(history))
        file_format = request.accepted_renderer.format
        response["Content-Disposition"] = f'attachment; filename="{_file_name(team, file_format)}"'
        return response


def _file_name(team: Team, file_format: str) -> str:
    return f"{team.key_prefix}-history-{timezone.localdate():%Y-%m-%d}.{file_format}"


class HistoryImportView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="teams_history_import",
        summary=gettext_lazy("Import history into the team (leads): all of the file or nothing"),
        parameters=[TEAM_ID],
        request={"multipart/form-data": ImportRequestSerializer},
        responses={
            200: ImportResultSerializer,
            400: OpenApiResponse(
                ImportRejectedSerializer,
                description=gettext_lazy(
                    "The file was refused: each problem with its CSV line or JSON path."
                ),
            ),
            **ErrorResponses.of(401, 403, 404),
        },
    )
    def post(self, request: Request, team_id: int) -> Response:
        team = team_get_for_user(user=request.user, team_id=team_id)
        # Before the body is read: only leads may send one, and not one past the size limit.
        ensure_may_manage(
            user=request.user, team=team, message=_("Only the team's leads may import history.")
        )
        if _content_length(request) > MAX_BODY:
            raise formats.HistoryRejected([_too_large()])
        data = ImportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > formats.MAX_BYTES:
            raise formats.HistoryRejected([_too_large()])
        result = services.history_import(
            team=team,
            content=upload.read(formats.MAX_BYTES + 1),
            actor=request.user,
            file_format=data.validated_data.get("format", ""),
            file_name=upload.name or "",
            dry_run=data.validated_data["dry_run"],
        )
        return Response(ImportResultSerializer(result).data)


def _content_length(request: Request) -> int:
    value = request.META.get("CONTENT_LENGTH") or "0"
    return int(value) if value.isdigit() else 0


def _too_large() -> formats.Problem:
    return formats.Problem(
        message=_("The file is larger than %(mb)d MB.") % {"mb": formats.MAX_BYTES // (1024 * 1024)},
        field="file",
    )
