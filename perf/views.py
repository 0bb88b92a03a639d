"""The benchmark's floor: what every authenticated API request costs before it does any work."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from opsteam.api import ErrorResponses


class PingView(APIView):
    """Answers who is signed in, from the authenticated request alone: no query of its own."""

    @extend_schema(
        responses={
            200: inline_serializer("Ping", {"user": serializers.IntegerField()}),
            **ErrorResponses.of(401),
        },
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        return Response({"user": request.user.pk})
