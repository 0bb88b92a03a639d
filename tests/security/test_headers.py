"""Security headers: the Content-Security-Policy on every response, the framing, sniffing and referrer
headers, HSTS and the deploy checks under the production settings, and templates that need no inline code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from opsteam.middleware import csp_header_value
from tests.conftest import Crew

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "opsteam.settings.production",
    "DJANGO_SECRET_KEY": "production-test-key-" + "k" * 50,
    "DJANGO_ALLOWED_HOSTS": "opsteam.example.com",
}


def _directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split("; ")}


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    # The browser tests' conftest allows async-unsafe ORM calls for its own process; a deployment never does.
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(PRODUCTION_ENV)
    return subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# ------------------------------------------------------------------------------------------------ CSP


@pytest.mark.django_db
def test_pages_allow_only_the_apps_own_scripts_and_styles(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)

    response = client.get(reverse("board", kwargs={"team_id": crew.team.pk}))

    policy = _directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/api/auth/token/", "/no-such-page/", "/static/js/opsteam.js"])
def test_every_response_carries_the_policy(client: Client, path: str) -> None:
    response = client.get(path)

    assert "script-src 'self';" in response["Content-Security-Policy"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_api_docs_may_run_their_inline_start_up_but_load_nothing_from_elsewhere(
    client: Client, crew: Crew, path: str
) -> None:
    client.force_login(crew.lead)

    policy = _directives(client.get(path)["Content-Security-Policy"])

    assert policy["script-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["default-src"] == ["'self'"]
    assert all(
        source.startswith(("'", "data:", "blob:")) for sources in policy.values() for source in sources
    )


def test_policy_header_joins_directives_in_order() -> None:
    value = csp_header_value(
        {"default-src": ["'self'"], "img-src": ["'self'", "data:"], "upgrade-insecure-requests": []}
    )

    assert value == "default-src 'self'; img-src 'self' data:; upgrade-insecure-requests"


@pytest.mark.django_db
def test_framing_sniffing_and_referrer_headers(client: Client) -> None:
    response = client.get("/login/")

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


# ------------------------------------------------------------------------------------------ templates

INLINE_CODE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    re.compile(r"\sstyle\s*=", re.IGNORECASE),
    re.compile(r"javascript:", re.IGNORECASE),
]
# Email bodies are read in mail clients, not served under the policy; the API docs have a relaxed policy.
NOT_SERVED_UNDER_THE_POLICY = {"emails", "drf_spectacular"}


def _served_templates() -> list[Path]:
    return [
        path
        for path in sorted(TEMPLATES.rglob("*.html"))
        if path.relative_to(TEMPLATES).parts[0] not in NOT_SERVED_UNDER_THE_POLICY
    ]


def test_templates_are_checked() -> None:
    assert len(_served_templates()) > 30


@pytest.mark.parametrize("template", _served_templates(), ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_template_has_no_inline_script_handler_or_style(template: Path) -> None:
    text = template.read_text()

    assert [pattern.pattern for pattern in INLINE_CODE if pattern.search(text)] == []


def test_htmx_is_told_not_to_inject_its_indicator_style() -> None:
    base = (TEMPLATES / "base.html").read_text()
    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", base)

    assert config is not None
    assert json.loads(config.group(1))["includeIndicatorStyles"] is False


# ------------------------------------------------------------------------------------------ production


@pytest.fixture(scope="module")
def production_login_headers() -> dict[str, str]:
    """The headers of the login page as the production settings serve it over HTTPS."""
    script = (
        "import django, json; django.setup(); "
        "from django.test import Client; "
        "response = Client().get('/login/', secure=True, HTTP_HOST='opsteam.example.com'); "
        "print(json.dumps({'status': response.status_code, **dict(response.headers)}))"
    )
    result = _run(["-c", script])
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_production_sends_hsts_for_a_year_with_subdomains(production_login_headers: dict[str, Any]) -> None:
    assert production_login_headers["status"] == 200
    assert (
        production_login_headers["Strict-Transport-Security"]
        == "max-age=31536000; includeSubDomains; preload"
    )


def test_production_sends_the_policy_and_framing_headers(production_login_headers: dict[str, Any]) -> None:
    assert production_login_headers["Content-Security-Policy"].startswith(
        "default-src 'self'; script-src 'self';"
    )
    assert production_login_headers["X-Frame-Options"] == "DENY"
    assert production_login_headers["X-Content-Type-Options"] == "nosniff"


def test_production_redirects_plain_http_to_https() -> None:
    script = (
        "import django; django.setup(); "
        "from django.test import Client; "
        "response = Client().get('/login/', HTTP_HOST='opsteam.example.com'); "
        "print(response.status_code, response['Location'])"
    )
    result = _run(["-c", script])

    assert result.stdout.split() == ["301", "https://opsteam.example.com/login/"]


def test_deploy_checks_pass_with_the_production_settings() -> None:
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])

    assert result.returncode == 0, result.stdout + result.stderr
