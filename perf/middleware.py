"""Query counting for the benchmark's settings only (opsteam.settings.bench)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connections
from django.http import HttpRequest, HttpResponse

HEADER = "X-Opsteam-Queries"


class QueryCountMiddleware:
    """Outermost: every SQL statement the request runs, session and authentication included, is
    counted and the total sent back in the X-Opsteam-Queries header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        count = [0]

        def counted(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
            count[0] += 1
            return execute(sql, params, many, context)

        with connections["default"].execute_wrapper(counted):
            response = self.get_response(request)
        response[HEADER] = str(count[0])
        return response
