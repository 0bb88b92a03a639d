"""Browser tests: headless Chromium (Debian's, never a downloaded one) against pytest-django's live server.

Playwright's sync API runs an asyncio loop in the test thread, and Django refuses ORM calls from a thread
with a running loop; the tests use the ORM between browser steps, so the check is switched off here,
before Django or Playwright is imported."""

from __future__ import annotations

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pw-for-tests"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 375, "height": 812}
TIMEOUT_MS = 10_000

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
FAILURES = ARTIFACTS / "failures"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives headless Chromium (/usr/bin/chromium) against a live server"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    """Keep each phase's report on the test, so the page fixture can screenshot a failed test's pages."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _unavailable(message: str) -> None:
    """Without a browser: skip on a developer's machine, fail on CI, where it must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the browser tests must run on CI)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module; closed (and Playwright's event loop stopped) when the module ends,
    so the rest of a full test run is not inside a running loop."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in requirements-dev.txt
        _unavailable("playwright is not installed: pip install -r requirements-dev.txt")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page: Any, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person does."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login/).*$"))


@pytest.fixture
def open_as(
    browser: Any, live_server: Any, transactional_db: Any, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """`open_as(user)` gives a page in a browser context of its own, signed in as `user` through the
    login form (`login=False`: not signed in). Contexts close at the end of the test; a failed test
    leaves a screenshot of each of its pages in artifacts/failures/. JavaScript errors fail the test."""
    contexts: list[tuple[str, Any]] = []
    js_errors: list[str] = []

    def _open(user: Any = None, *, viewport: dict[str, int] | None = None, login: bool = True) -> Any:
        context = browser.new_context(
            base_url=live_server.url, locale="en-US", viewport=viewport or DESKTOP, timezone_id="UTC"
        )
        context.set_default_timeout(TIMEOUT_MS)
        name = user.username if user is not None else "anonymous"
        contexts.append((name, context))
        page = context.new_page()
        page.on("pageerror", lambda error: js_errors.append(f"{name} on {page.url}: {error}"))
        if login and user is not None:
            log_in(page, user.username)
        return page

    yield _open

    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        FAILURES.mkdir(parents=True, exist_ok=True)
        for index, (name, context) in enumerate(contexts):
            for number, page in enumerate(context.pages):
                target = FAILURES / f"{request.node.name}-{index}-{name}-{number}.png"
                try:
                    page.screenshot(path=str(target), full_page=True)
                except Exception:  # noqa: S112 - best effort: the failure itself is what matters
                    continue
    for _name, context in contexts:
        context.close()
    if js_errors:
        pytest.fail("JavaScript errors in the pages:\n" + "\n".join(js_errors), pytrace=False)
