"""The metrics and watches pages in a real browser: record an observation, import a CSV file, create a
watch from a preset; and screenshots of the pages in English and Chinese at 1366 and 375 px, which go to
artifacts/screenshots/ for people to look at."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from dataloop import services
from dataloop.models import Metric, MetricWatch, Observation
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services as workflow_services

pytestmark = pytest.mark.browser


def today(crew: Crew) -> dt.date:
    return timezone.localdate(timezone=ZoneInfo(crew.team.time_zone))


def metric_named(crew: Crew, name: str) -> Metric:
    return Metric.objects.get(team=crew.team, name=name)


def messages_of(page: Page) -> Any:
    return page.locator("ul.messages")


def switch_language(page: Page, code: str) -> None:
    page.select_option("select#language-switch", code)
    expect(page.locator("html")).to_have_attribute("lang", code)


def seed(crew: Crew) -> Metric:
    """Forty days of DAU and D7 retention, a segment, a loop and a fired watch; returns D7 retention."""
    requirement = workflow_services.requirement_create(
        team=crew.team, actor=crew.ops, title="Day-2 red packet for new users", **READY_FIELDS
    )
    loop_id = requirement.loops.get().pk
    lines = ["metric,date,value,segment"]
    for day in range(40):
        date = (today(crew) - dt.timedelta(days=day + 1)).isoformat()
        lines.append(f"DAU,{date},{12000 + (day * 137) % 900},")
        lines.append(f"DAU,{date},{5000 + (day * 53) % 300},iOS")
        lines.append(f"D7 retention,{date},{26 + (day * 7) % 5}.{day % 10},")
    services.observations_import(actor=crew.analyst, team_id=crew.team.pk, content="\n".join(lines).encode())
    retention = metric_named(crew, "D7 retention")
    services.observation_record(
        actor=crew.ops, metric_id=retention.pk, date=today(crew), value="23.8", loop_id=loop_id
    )
    watch = services.watch_create(
        actor=crew.analyst,
        team_id=crew.team.pk,
        name="Complaint rate above 5% for 3 days",
        metric=metric_named(crew, "Complaint rate").pk,
        comparison="gt",
        threshold="5",
        periods=3,
        title="Complaints above 5% three days running",
        priority="P0",
        owner_role="ops",
    )
    for day in range(3):
        services.observation_record(
            actor=crew.ops,
            metric_id=watch.metric_id,
            date=today(crew) - dt.timedelta(days=3 - day),
            value=str(5.5 + day),
        )
    services.watch_evaluate(watch_id=watch.pk)
    return retention


# ------------------------------------------------------------------------------------------ the work


def test_record_an_observation_import_a_csv_and_create_a_watch_from_a_preset(
    crew: Crew, open_as: Any
) -> None:
    page = open_as(crew.ops)
    page.goto(f"/teams/{crew.team.pk}/metrics/")

    # an observation, by hand; the date is today in the team's time zone already
    expect(page.locator("#obs_date")).to_have_value(today(crew).isoformat())
    page.select_option("#obs_metric", label="DAU")
    page.fill("#obs_value", "12,500")
    page.click("#observation button[type=submit]")
    expect(messages_of(page)).to_contain_text(f"Recorded DAU = 12,500 users on {today(crew).isoformat()}.")
    expect(page.locator("table.metrics-table tr", has_text="DAU").first).to_contain_text("12,500 users")

    # a file with a bad row: nothing is imported, the line is named
    bad = b"metric,date,value\nDAU,2026-10-01,12000\nDAU,2026-10-02,lots\n"
    page.set_input_files("#import_file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad}])
    page.click("#import button[type=submit]")
    expect(page.locator(".import-problems")).to_contain_text("line 3, value: Not a number: “lots”.")
    assert Observation.objects.count() == 1

    # a good file, then the same file again
    good = b"metric,date,value,segment\nDAU,2026-10-01,12000,\nD7 retention,2026-10-01,24.5,iOS\n"
    for said in ("2 added, 0 updated, 0 unchanged", "0 added, 0 updated, 2 unchanged"):
        page.set_input_files(
            "#import_file", files=[{"name": "good.csv", "mimeType": "text/csv", "buffer": good}]
        )
        page.click("#import button[type=submit]")
        expect(messages_of(page)).to_contain_text(said)
    assert Observation.objects.count() == 3

    # a watch from a preset: one click fills the form, one click creates it
    page.click(".settings-tabs a:text-is('Watches')")
    page.click(".presets a:has-text('D7 retention below 25%')")
    expect(page.locator("#id_name")).to_have_value("D7 retention below 25%")
    expect(page.locator("#id_metric option:checked")).to_have_text("D7 retention")
    page.click("#new-watch form button[type=submit]")
    page.wait_for_url(re.compile(r"/watches/\d+/$"))
    expect(messages_of(page)).to_contain_text("Watch “D7 retention below 25%” created.")
    expect(page.locator("h2#about-heading")).to_have_text("D7 retention < 25% for 1 day")
    watch = MetricWatch.objects.get()
    assert (watch.metric, watch.comparison, watch.owner_role) == (
        metric_named(crew, "D7 retention"),
        "lt",
        "ops",
    )


# --------------------------------------------------------------------------------------- screenshots


def _overflow(page: Page) -> dict[str, Any]:
    """How far the document is wider than the window, and the widest elements."""
    return page.evaluate(
        """() => {
            const limit = window.innerWidth + 1;
            const culprits = [];
            for (const el of document.body.querySelectorAll('*')) {
                if (el.closest('.table-scroll')) continue;
                const box = el.getBoundingClientRect();
                if (box.width && box.right > limit) {
                    culprits.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' right=' +
                        Math.round(box.right));
                }
            }
            return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                    culprits: culprits.slice(0, 8)};
        }"""
    )


@pytest.mark.parametrize("name", ["metrics", "metric", "watches", "watch"])
def test_screenshots(name: str, crew: Crew, open_as: Any) -> None:
    """Full-page screenshots in English and Chinese at 1366 and 375 px; nothing may be wider than a phone's
    screen. Every screenshot is taken before anything is asserted."""
    retention = seed(crew)
    path = {
        "metrics": f"/teams/{crew.team.pk}/metrics/",
        "metric": f"/teams/{crew.team.pk}/metrics/{retention.pk}/?days=30",
        "watches": f"/teams/{crew.team.pk}/watches/?preset=d7-retention",
        "watch": f"/teams/{crew.team.pk}/watches/{MetricWatch.objects.get().pk}/",
    }[name]
    page = open_as(crew.analyst)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    statuses: dict[str, int] = {}
    overflows: dict[str, dict[str, Any]] = {}
    for language in ("en", "zh-hans"):
        if language != "en":
            switch_language(page, language)
        for width_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            response = page.goto(path)
            assert response is not None
            page.evaluate("document.fonts.ready.then(() => true)")
            shot = f"dataloop-{name}-{language.split('-')[0]}-{width_name}"
            statuses[shot] = response.status
            page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)
            if width_name == "phone":
                overflows[shot] = _overflow(page)

    assert all(status == 200 for status in statuses.values()), f"{path} answered {statuses}"
    wide = {shot: o for shot, o in overflows.items() if o["scrollWidth"] > o["innerWidth"] + 1}
    assert not wide, f"wider than a 375 px phone: {wide}"
