"""The analytics API's OpenAPI schema: each endpoint's 200 answer is a named component that declares every
key, and the real answers, on data and on none, match it exactly (no undeclared key, no missing one, the
declared types, recursively)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.utils.encoders import JSONEncoder

from analytics.api import METRICS
from tests.analytics.test_dashboard import CUSTOM, populate
from tests.conftest import Crew

QUERY_KEYS = {"teams", "start", "end", "time_zone", "time", "filters"}
FILTER_KEYS = {"aarrr", "label", "assignee", "priority"}

# Each endpoint's top-level keys besides `query` (selectors.py), and its component.
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "cycle-time": ("AnalyticsCycleTime", {"count", "mean", "p50", "p85", "p95"}),
    "time-in-stage": ("AnalyticsTimeInStage", {"stages", "bottleneck"}),
    "control-chart": ("AnalyticsControlChart", {"points", "p50", "p85", "window"}),
    "cumulative-flow": ("AnalyticsCumulativeFlow", {"days", "stages", "closed"}),
    "throughput": ("AnalyticsThroughput", {"weeks"}),
    "wip": ("AnalyticsWip", {"stages", "total", "p85", "items"}),
    "sla": ("AnalyticsSla", {"stages"}),
    "rework": ("AnalyticsRework", {"stages", "closed_loops", "loops_with_rework", "share"}),
    "loops-per-requirement": ("AnalyticsLoopsPerRequirement", {"distribution", "requirements", "mean"}),
}


@functools.cache
def schema() -> dict[str, Any]:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(generated, cls=JSONEncoder))


def component(name: str) -> dict[str, Any]:
    return schema()["components"]["schemas"][name]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref, or the single-item allOf drf-spectacular writes to put a description beside one,
    keeping the outer node's other keywords (nullable, description)."""
    if "$ref" in node:
        return resolve(component(node["$ref"].removeprefix("#/components/schemas/")))
    if "allOf" in node:
        (inner,) = node["allOf"]
        outer = {k: v for k, v in node.items() if k != "allOf"}
        return {**resolve(inner), **outer}
    return node


def _parses(parse: Any, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


FORMATS = {
    "date": lambda value: _parses(dt.date.fromisoformat, value) and len(value) == 10,
    "date-time": lambda value: (
        _parses(dt.datetime.fromisoformat, value) and dt.datetime.fromisoformat(value).tzinfo is not None
    ),
}
TYPES = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
}


def mismatches(value: Any, node: dict[str, Any], where: str = "$") -> list[str]:
    """Where `value` departs from the schema `node`: an undeclared or missing key, a wrong type, a null
    where none is allowed, a value outside the enum or below the minimum, a malformed date."""
    node = resolve(node)
    if value is None:
        return [] if node.get("nullable") else [f"{where}: null, not nullable"]
    kind = node.get("type")
    if kind not in TYPES:
        return [f"{where}: the schema gives no type ({sorted(node)})"]
    if not TYPES[kind](value):
        return [f"{where}: {value!r} is not {kind}"]
    problems = []
    if "enum" in node and value not in node["enum"]:
        problems.append(f"{where}: {value!r} not in {node['enum']}")
    if "minimum" in node and value < node["minimum"]:
        problems.append(f"{where}: {value!r} below {node['minimum']}")
    if kind == "string" and "format" in node and not FORMATS[node["format"]](value):
        problems.append(f"{where}: {value!r} is not a {node['format']}")
    if kind == "array":
        for i, item in enumerate(value):
            problems += mismatches(item, node["items"], f"{where}[{i}]")
    if kind == "object":
        declared = node.get("properties", {})
        problems += [f"{where}.{key}: not declared" for key in sorted(set(value) - set(declared))]
        problems += [f"{where}.{key}: missing" for key in sorted(set(node.get("required", [])) - set(value))]
        for key in sorted(set(value) & set(declared)):
            problems += mismatches(value[key], declared[key], f"{where}.{key}")
    return problems


def free_form_objects(node: dict[str, Any], where: str) -> list[str]:
    """Objects in the schema `node` that are free-form (no declared properties, or extra ones allowed)."""
    node = resolve(node)
    if node.get("type") == "array":
        return free_form_objects(node["items"], f"{where}[]")
    if node.get("type") != "object":
        return []
    if not node.get("properties") or node.get("additionalProperties") not in (None, False):
        return [where]
    return [p for key, sub in node["properties"].items() for p in free_form_objects(sub, f"{where}.{key}")]


def test_the_table_covers_every_endpoint() -> None:
    assert set(METRICS) == set(EXPECTED)


@pytest.mark.parametrize("metric", list(EXPECTED))
def test_each_200_answer_is_a_component_with_the_answer_keys(metric: str) -> None:
    name, keys = EXPECTED[metric]
    answer = schema()["paths"][f"/api/analytics/{metric}/"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{name}"}
    shape = component(name)
    assert set(shape["properties"]) == {"query", *keys}
    assert set(shape["required"]) == {"query", *keys}
    query = resolve(shape["properties"]["query"])
    assert set(query["properties"]) == set(query["required"]) == QUERY_KEYS
    assert set(resolve(query["properties"]["filters"])["properties"]) == FILTER_KEYS
    assert free_form_objects(shape, name) == []


@pytest.mark.parametrize("metric", list(EXPECTED))
def test_every_figure_has_a_description(metric: str) -> None:
    name, _keys = EXPECTED[metric]

    def undescribed(node: dict[str, Any], where: str) -> list[str]:
        node = resolve(node)
        if node.get("type") == "array":
            node = resolve(node["items"])
        found = []
        for key, sub in node.get("properties", {}).items():
            if not resolve(sub).get("description"):
                found.append(f"{where}.{key}")
            found += undescribed(sub, f"{where}.{key}")
        return found

    assert undescribed(component(name), name) == []


def test_the_validator_catches_a_departure() -> None:
    name, _keys = EXPECTED["cycle-time"]
    shape = component(name)
    query = {
        "teams": [1],
        "start": "2026-03-01T00:00:00+00:00",
        "end": "2026-03-11T00:00:00+00:00",
        "time_zone": "UTC",
        "time": "calendar",
        "filters": {"aarrr": "", "label": "", "assignee": None, "priority": ""},
    }
    good = {"query": query, "count": 0, "mean": None, "p50": None, "p85": None, "p95": None}
    assert mismatches(good, shape) == []
    assert mismatches({**good, "extra": 1}, shape) == ["$.extra: not declared"]
    assert mismatches({k: v for k, v in good.items() if k != "p95"}, shape) == ["$.p95: missing"]
    assert mismatches({**good, "count": None}, shape) == ["$.count: null, not nullable"]
    assert mismatches({**good, "mean": 1.5}, shape) == ["$.mean: 1.5 is not integer"]
    assert mismatches({**good, "query": {**query, "start": "2026-03-01"}}, shape) == [
        "$.query.start: '2026-03-01' is not a date-time"
    ]
    assert mismatches({**good, "query": {**query, "filters": {}}}, shape) == [
        f"$.query.filters.{key}: missing" for key in sorted(FILTER_KEYS)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("metric", list(EXPECTED))
def test_real_answers_match_their_component(client: Client, crew: Crew, metric: str) -> None:
    """On data (both clocks), on a period with none (the nulls), with every filter, and over all the
    lead's teams."""
    populate(crew, 2)
    client.force_login(crew.lead)
    name, _keys = EXPECTED[metric]
    queries = [
        f"team={crew.team.pk}&{CUSTOM}",
        f"team={crew.team.pk}&{CUSTOM}&time=working",
        f"team={crew.team.pk}&period=custom&start=2025-01-01&end=2025-01-31",
        f"team={crew.team.pk}&{CUSTOM}&aarrr=retention&priority=P2&label=growth&assignee={crew.ops.pk}",
        "period=30",
    ]
    for query in queries:
        response = client.get(f"/api/analytics/{metric}/?{query}")
        assert response.status_code == 200, response.content
        assert mismatches(response.json(), component(name)) == [], query


@pytest.mark.django_db
def test_the_data_reaches_every_list(client: Client, crew: Crew) -> None:
    """The answers above were checked with rows in every list, and with a null in every nullable figure."""
    populate(crew, 2)
    client.force_login(crew.lead)
    with_data = {
        metric: client.get(f"/api/analytics/{metric}/?team={crew.team.pk}&{CUSTOM}").json()
        for metric in EXPECTED
    }
    empty = {
        metric: client.get(
            f"/api/analytics/{metric}/?team={crew.team.pk}&period=custom&start=2025-01-01&end=2025-01-31"
        ).json()
        for metric in EXPECTED
    }
    for metric, (name, _keys) in EXPECTED.items():
        for key, node in component(name)["properties"].items():
            if resolve(node).get("type") == "array":
                assert with_data[metric][key], (metric, key)
            if resolve(node).get("nullable"):
                assert with_data[metric][key] is not None, (metric, key)
                assert empty[metric][key] is None, (metric, key)
    assert with_data["wip"]["items"][0]["over_p85"] in (True, False)
    assert with_data["sla"]["stages"][0]["rate"] is not None
