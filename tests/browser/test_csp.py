"""The Content-Security-Policy in a real browser: the main pages load under it with no violation reported
in the console, and their scripts (the autosubmitting selects, htmx) still work.

Screenshots of a few pages go to artifacts/screenshots/csp-*.png."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from roles import services as role_services
from roles.models import AuditAction
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services

pytestmark = pytest.mark.browser

VIOLATION = re.compile(
    r"Content Security Policy|Refused to (execute|apply|load|connect|frame)", re.IGNORECASE
)


def _watch_console(page: Page) -> list[str]:
    """Every console message that reports a policy violation, with the page it happened on."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{page.url}: {message.text}") if VIOLATION.search(message.text) else None
        ),
    )
    return violations


def _pages(crew: Crew, key: str) -> dict[str, str]:
    team = {"team_id": crew.team.pk}
    return {
        "home": reverse("home"),
        "board": reverse("board", kwargs=team),
        "requirement": reverse("requirement", kwargs={"key": key}),
        "requirement-edit": reverse("requirement-edit", kwargs={"key": key}),
        "queue": reverse("queue"),
        "inbox": reverse("inbox"),
        "analytics": reverse("analytics-dashboard", kwargs=team),
        "metrics": reverse("metrics", kwargs=team),
        "goals": reverse("goals", kwargs=team),
        "funnel": reverse("funnel", kwargs=team),
        "settings-members": reverse("settings-members", kwargs=team),
        "settings-workflow": reverse("settings-workflow", kwargs=team),
        "settings-calendar": reverse("team-calendar", kwargs=team),
        "settings-webhooks": reverse("settings-webhooks", kwargs=team),
        "settings-deliveries": reverse("team-deliveries", kwargs=team),
        "settings-audit": reverse("settings-audit", kwargs=team),
        "account": reverse("account"),
        "password": reverse("password_change"),
    }


SCREENSHOT_PAGES = {"board", "requirement", "analytics", "settings-audit", "account"}


def test_login_page_has_no_policy_violation(open_as: Callable[..., Any], crew: Crew) -> None:
    page = open_as(None, login=False)
    violations = _watch_console(page)

    page.goto(reverse("login"))
    page.fill("#id_username", crew.lead.username)
    page.fill("#id_password", "wrong password")
    page.click("main form button[type=submit]")

    expect(page.locator("main")).to_contain_text("Please enter a correct username and password")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "csp-login.png"), full_page=True)
    assert violations == []


def test_main_pages_load_with_no_policy_violation(open_as: Callable[..., Any], crew: Crew) -> None:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="Day-2 red packet", **READY_FIELDS
    )
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.lead, from_stage="propose", to_stage="build", note="urgent"
    )
    role_services.team_update(team_id=crew.team.pk, actor=crew.lead, name="Growth squad")
    page = open_as(crew.lead)
    violations = _watch_console(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    statuses = {}
    for name, path in _pages(crew, requirement.key).items():
        response = page.goto(path)
        assert response is not None
        page.wait_for_load_state("networkidle")
        statuses[name] = response.status
        if name in SCREENSHOT_PAGES:
            page.screenshot(path=str(SCREENSHOTS / f"csp-{name}.png"), full_page=True)

    assert statuses == dict.fromkeys(statuses, 200)
    assert violations == []
    page.goto(_pages(crew, requirement.key)["settings-audit"])
    expect(page.locator("main table")).to_contain_text(str(AuditAction.LEAD_OVERRIDE.label))
    expect(page.locator("main table")).to_contain_text("name: Growth → Growth squad")


def test_scripts_still_work_under_the_policy(open_as: Callable[..., Any], crew: Crew) -> None:
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="Day-2 red packet", **READY_FIELDS
    )
    page = open_as(crew.ops)
    violations = _watch_console(page)

    # opsteam.js: the language select submits itself when changed.
    page.goto(reverse("queue"))
    page.select_option("#language-switch", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    page.select_option("#language-switch", "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # htmx: a card's move buttons on the board post in the background and swap the card.
    page.goto(reverse("board", kwargs={"team_id": crew.team.pk}))
    card = page.locator(f"#card-{requirement.key}")
    card.locator("summary").first.click()
    with page.expect_response(lambda response: "/move/" in response.url) as moved:
        card.locator("button[name=to][value=design]").click()
    assert moved.value.request.headers.get("hx-request") == "true"
    assert moved.value.status == 200
    # Let htmx finish swapping (and anything it asks for) before leaving the page: a navigation started
    # while it is still at work is aborted (net::ERR_ABORTED). Then read the result through a page, not
    # the ORM, so that the live server is done with the request.
    page.wait_for_load_state("networkidle")
    page.goto(reverse("requirement", kwargs={"key": requirement.key}))
    expect(page.locator("ol.stageline li.current")).to_contain_text("Design")

    assert violations == []


def test_console_watch_sees_an_inline_style_refused(open_as: Callable[..., Any], crew: Crew) -> None:
    """The watch above would catch a violation: an inline style added to a page is refused and reported."""
    page = open_as(crew.ops)
    violations = _watch_console(page)
    page.goto(reverse("queue"))

    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    page.wait_for_timeout(200)

    assert any("style-src" in violation for violation in violations)


def test_admin_and_api_docs_have_no_policy_violation(open_as: Callable[..., Any], crew: Crew) -> None:
    crew.lead.is_staff = crew.lead.is_superuser = True
    crew.lead.save(update_fields=["is_staff", "is_superuser"])
    page = open_as(crew.lead)
    violations = _watch_console(page)

    for path in ["/admin/", "/admin/roles/team/", f"/admin/roles/team/{crew.team.pk}/change/", "/api/docs/"]:
        response = page.goto(path)
        assert response is not None
        assert response.status == 200
        page.wait_for_load_state("networkidle")
    expect(page.locator(".swagger-ui")).to_be_visible()
    assert violations == []

    # Redoc's sidebar shows its vendor's logo from their CDN: the policy blocks it (nothing is loaded from
    # elsewhere), the documentation itself renders.
    page.goto("/api/redoc/")
    # Redoc parses the whole schema in the browser: slow on a busy machine.
    expect(page.locator(".api-content")).to_contain_text("opsteam API", timeout=30_000)
    assert all("https://cdn.redoc.ly/" in violation for violation in violations)
