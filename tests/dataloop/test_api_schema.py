"""The data loop's endpoints are in the OpenAPI schema, and the schema builds without a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

DATA_LOOP_PATHS = {
    "/api/teams/{team_id}/metrics/": {"get", "post"},
    "/api/metrics/{id}/": {"get", "patch", "delete"},
    "/api/metrics/{id}/observations/": {"get", "post"},
    "/api/observations/{id}/": {"delete"},
    "/api/teams/{team_id}/observations/import/": {"post"},
    "/api/teams/{team_id}/watches/": {"get", "post"},
    "/api/watches/{id}/": {"get", "patch", "delete"},
    "/api/watches/{id}/firings/": {"get"},
    "/api/watch-presets/": {"get"},
    "/api/teams/{team_id}/goals/": {"get", "post"},
    "/api/goals/{id}/": {"get", "patch", "delete"},
    "/api/goals/{id}/strategies/": {"post"},
    "/api/strategies/{id}/": {"get", "patch", "delete"},
    "/api/teams/{team_id}/funnel/": {"get"},
    "/api/requirements/{requirement}/tracking-plan/": {"get", "post"},
    "/api/tracking-events/{id}/": {"patch", "delete"},
    "/api/requirements/{requirement}/analysis/": {"get", "post"},
}


def test_the_schema_builds_without_warnings_and_documents_every_data_loop_operation(tmp_path: Path) -> None:
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))

    schema = yaml.safe_load(target.read_text())
    for path, methods in DATA_LOOP_PATHS.items():
        operations = schema["paths"][path]
        assert set(operations) - {"parameters"} == methods, path
        for method in methods:
            assert operations[method]["tags"] == ["data loop"], (path, method)
            assert any(code.startswith("2") for code in operations[method]["responses"]), (path, method)
