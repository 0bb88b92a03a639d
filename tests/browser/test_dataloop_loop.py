"""The data side of a loop in a real browser: the PM writes the tracking plan, the engineer implements
the events and the analyst verifies them, the requirement moves on to analyze, the analyst writes the
conclusion and moves it to optimize. Then screenshots of the goal page, the loop panel and the funnel,
in English and Chinese, at desktop and phone widths, into artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from dataloop import services as data_services
from dataloop.models import Goal, Metric
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services
from workflows.models import IterationLoop, Requirement, TrackingEvent

pytestmark = pytest.mark.browser

PANEL = "section#tracking"
ANALYSIS = "section#analysis"


def url_of(key: str) -> str:
    return f"/requirements/{key}/"


def walk(requirement: Requirement, steps: list[tuple[str, Any]], at: dt.datetime | None = None) -> None:
    for target, actor in steps:
        services.requirement_transition(
            requirement_id=requirement.pk,
            actor=actor,
            from_stage=Requirement.objects.get(pk=requirement.pk).stage.slug,
            to_stage=target,
            at=at,
        )


def built(crew: Crew, title: str = "Day-2 red packet for new users", **fields: Any) -> Requirement:
    """A requirement through design and build, in instrument, launched a week ago."""
    requirement = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title=title,
        **{
            **READY_FIELDS,
            "design": "Spec: https://wiki.example.com/red-packet",
            "launch_date": timezone.now().date() - dt.timedelta(days=7),
            **fields,
        },
    )
    walk(requirement, [("design", crew.ops), ("build", crew.pm), ("instrument", crew.engineer)])
    return Requirement.objects.get(pk=requirement.pk)


def observe_around_launch(crew: Crew, requirement: Requirement) -> Metric:
    """D1 retention for the 7 days either side of the launch: about 20 % before, 23 % after."""
    metric = Metric.objects.get(team=crew.team, name="D1 retention")
    assert requirement.launch_date is not None
    for offset in range(-7, 7):
        day = requirement.launch_date + dt.timedelta(days=offset)
        value = 20 + (offset % 3) * 0.2 if offset < 0 else 23 + (offset % 2) * 0.3
        data_services.observation_record(actor=crew.analyst, metric_id=metric.pk, date=day, value=str(value))
    return metric


def messages_of(page: Page) -> Any:
    return page.locator("ul.messages")


def event_item(page: Page, name: str) -> Any:
    return page.locator("li.tp-event").filter(has=page.locator(f"code.tp-name:text-is('{name}')"))


def add_event(page: Page, name: str, trigger: str, properties: str) -> None:
    form = page.locator(f"{PANEL} details.tp-add")
    if form.get_attribute("open") is None:
        form.locator("summary").click()
    page.fill("#id_tracking-name", name)
    page.fill("#id_tracking-trigger", trigger)
    page.fill("#id_tracking-properties", properties)
    page.select_option("#id_tracking-owner", label="engineer")
    form.locator("button[type=submit]").click()
    expect(messages_of(page)).to_contain_text(f"“{name}” is in the tracking plan.")


def move(page: Page, key: str, target: str) -> None:
    page.click(f"form.moves-panel button[name=to][value={target}]")
    expect(messages_of(page)).to_contain_text(f"{key} moved.")


# ---------------------------------------------------------------------------------------- the loop


def test_tracking_plan_and_conclusion_through_the_page(crew: Crew, open_as: Any) -> None:
    requirement = built(crew)
    observe_around_launch(crew, requirement)
    key = requirement.key

    # The PM writes the plan; the move to analyze waits on it.
    pm = open_as(crew.pm)
    pm.goto(url_of(key))
    expect(pm.locator(f"{PANEL} .tp-blocks")).to_contain_text("The move to Analyze waits on this plan")
    add_event(pm, "red_packet_open", "The user opens the day-2 red packet", "user_id, amount")
    add_event(pm, "red_packet_claim", "The user claims it", "user_id, amount, channel")
    expect(pm.locator(f"{PANEL} .tp-progress")).to_contain_text("0 of 2 verified")
    expect(event_item(pm, "red_packet_claim")).to_contain_text("channel")

    # The engineer implements both; verifying is not theirs to do.
    engineer = open_as(crew.engineer)
    engineer.goto(url_of(key))
    expect(engineer.locator("li.unavailable").filter(has_text="Analyze")).to_contain_text(
        "every event verified"
    )
    for name in ("red_packet_open", "red_packet_claim"):
        event_item(engineer, name).locator("button[name=status][value=implemented]").click()
        expect(messages_of(engineer)).to_contain_text(f"“{name}” is implemented.")
        expect(event_item(engineer, name).locator(".tp-status")).to_have_text("Implemented")
        expect(event_item(engineer, name).locator("button[name=status][value=verified]")).to_have_count(0)

    # The analyst verifies them, and the move to analyze opens.
    analyst = open_as(crew.analyst)
    analyst.goto(url_of(key))
    expect(analyst.locator(f"{PANEL} .tp-progress")).to_contain_text("0 of 2 verified")
    event_item(analyst, "red_packet_open").locator("button[name=status][value=verified]").click()
    expect(analyst.locator(f"{PANEL} .tp-progress")).to_contain_text("1 of 2 verified")
    expect(analyst.locator(f"{PANEL} .tp-blocks")).to_be_visible()
    event_item(analyst, "red_packet_claim").locator("button[name=status][value=verified]").click()
    expect(analyst.locator(f"{PANEL} .tp-progress")).to_contain_text("2 of 2 verified")
    expect(analyst.locator(f"{PANEL} .tp-blocks")).to_have_count(0)
    move(analyst, key, "analyze")
    expect(analyst.locator("ol.stageline li.current")).to_have_text("Analyze")

    # The conclusion: the form is open in analyze, shows the metric before and after the launch, and
    # refuses a conclusion without the three checks.
    form = analyst.locator(f"{ANALYSIS} details.an-form")
    expect(form).to_have_attribute("open", "")
    expect(analyst.locator(f"{ANALYSIS} dl.an-reading")).to_contain_text("7 days of data")
    expect(analyst.locator("#id_metric")).to_have_value(
        str(Metric.objects.get(team=crew.team, name="D1 retention").pk)
    )
    expect(analyst.locator("li.unavailable").filter(has_text="Optimize")).to_contain_text("conclusion")
    analyst.fill("#id_conclusion", "D1 retention **up 3 pts** after the red packet.")
    analyst.check("input[name=verdict][value=improved]")
    form.locator("button[type=submit]").click()
    expect(analyst.locator(f"{ANALYSIS} .field-error")).to_have_count(3)
    expect(analyst.locator(f"{ANALYSIS} .field-error").first).to_contain_text("This field is required.")
    expect(analyst.locator("#id_conclusion")).to_have_value("D1 retention **up 3 pts** after the red packet.")
    assert IterationLoop.objects.get(requirement=requirement).conclusion == ""

    analyst.check("input[name=core_metric_moved][value=yes]")
    analyst.check("input[name=behaviour_moved][value=yes]")
    analyst.check("input[name=feedback_positive][value=no]")
    form.locator("button[type=submit]").click()
    expect(messages_of(analyst)).to_contain_text("Analysis conclusion saved.")
    expect(analyst.locator(f"{ANALYSIS} .an-verdict")).to_contain_text("Improved")
    expect(analyst.locator(f"{ANALYSIS} .an-text strong")).to_have_text("up 3 pts")
    expect(analyst.locator(f"{ANALYSIS} .an-stored")).to_contain_text("D1 retention")
    move(analyst, key, "optimize")
    expect(analyst.locator("ol.stageline li.current")).to_have_text("Optimize")

    loop = IterationLoop.objects.get(requirement=requirement)
    assert (loop.verdict, loop.core_metric_moved, loop.behaviour_moved, loop.feedback_positive) == (
        "improved",
        True,
        True,
        False,
    )
    assert (
        loop.metric_name == "D1 retention"
        and loop.metric_before is not None
        and loop.metric_after is not None
    )
    assert loop.metric_after > loop.metric_before
    assert sorted(TrackingEvent.objects.filter(loop=loop).values_list("name", "status")) == [
        ("red_packet_claim", "verified"),
        ("red_packet_open", "verified"),
    ]


def test_engineer_gets_no_verify_button_and_a_forged_post_is_refused(crew: Crew, open_as: Any) -> None:
    requirement = built(crew)
    event = services.tracking_event_add(
        requirement_id=requirement.pk, actor=crew.pm, name="red_packet_open", trigger="open"
    )
    services.tracking_event_set_status(event_id=event.pk, actor=crew.engineer, status="implemented")
    page = open_as(crew.engineer)
    page.goto(url_of(requirement.key))
    expect(event_item(page, "red_packet_open").locator("button[name=status]")).to_have_text(
        ["Back to planned"]
    )
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    response = page.request.post(
        f"/requirements/{requirement.key}/tracking/{event.pk}/",
        form={"csrfmiddlewaretoken": token, "action": "status", "status": "verified"},
        max_redirects=0,
    )
    assert response.status == 403 and "Data analyst" in response.text()
    assert TrackingEvent.objects.get(pk=event.pk).status == "implemented"


# ---------------------------------------------------------------------------------------- screenshots


def build_data(crew: Crew) -> dict[str, Any]:
    """A goal with metrics and strategies carried by requirements at several stages, a requirement in
    instrument with a half-verified plan, one in analyze with observations around its launch, and loops
    closed with each verdict in the last 90 days."""
    now = timezone.now()

    def ago(days: float) -> dt.datetime:
        return now - dt.timedelta(days=days)

    def metric(name: str) -> Metric:
        return Metric.objects.get(team=crew.team, name=name)

    instrumenting = built(crew, "Day-2 red packet for new users")
    for name, trigger, props, status in (
        ("red_packet_show", "The red packet is shown on the home screen", "user_id, position", "verified"),
        ("red_packet_open", "The user opens the day-2 red packet", "user_id, amount", "implemented"),
        (
            "red_packet_claim",
            "The user claims the amount into the wallet",
            "user_id, amount, channel",
            "planned",
        ),
    ):
        event = services.tracking_event_add(
            requirement_id=instrumenting.pk,
            actor=crew.pm,
            name=name,
            trigger=trigger,
            properties=props,
            owner=crew.engineer.pk,
        )
        if status != "planned":
            services.tracking_event_set_status(event_id=event.pk, actor=crew.engineer, status="implemented")
        if status == "verified":
            services.tracking_event_set_status(event_id=event.pk, actor=crew.analyst, status="verified")

    analysing = built(crew, "首单立减：新用户首单满 30 减 10", aarrr_stage="revenue")
    for name in ("coupon_show", "first_order_paid"):
        event = services.tracking_event_add(
            requirement_id=analysing.pk, actor=crew.pm, name=name, trigger=f"When {name.replace('_', ' ')}"
        )
        services.tracking_event_set_status(event_id=event.pk, actor=crew.engineer, status="implemented")
        services.tracking_event_set_status(event_id=event.pk, actor=crew.analyst, status="verified")
    walk(analysing, [("analyze", crew.analyst)])
    observe_around_launch(crew, analysing)

    concluded = built(crew, "Coupon reminder on day 5", aarrr_stage="activation")
    event = services.tracking_event_add(
        requirement_id=concluded.pk, actor=crew.pm, name="coupon_reminder_click", trigger="Reminder tapped"
    )
    services.tracking_event_set_status(event_id=event.pk, actor=crew.engineer, status="implemented")
    services.tracking_event_set_status(event_id=event.pk, actor=crew.analyst, status="verified")
    walk(concluded, [("analyze", crew.analyst)])
    observe_around_launch(crew, concluded)
    data_services.conclusion_record(
        requirement_id=concluded.pk,
        actor=crew.analyst,
        conclusion="D1 retention rose **about 3 pts** in the week after the launch.\n\n- The reminder works on Android\n- iOS shows no change: check the push permission rate",
        verdict="improved",
        core_metric_moved=True,
        behaviour_moved=True,
        feedback_positive=False,
    )
    walk(concluded, [("optimize", crew.analyst)])

    history = [
        ("Invite-a-friend coupon", "referral", "improved", 40, 12),
        ("Onboarding checklist", "activation", "flat", 50, 20),
        ("Weekly digest push", "retention", "worse", 70, 30),
        ("Search ads on new channel", "acquisition", "improved", 80, 25),
    ]
    closed = []
    for title, stage, verdict, started, ended in history:
        done = services.requirement_create(
            team=crew.team,
            actor=crew.ops,
            title=title,
            at=ago(started),
            **{**READY_FIELDS, "aarrr_stage": stage},
        )
        services.loop_record_analysis(
            requirement_id=done.pk,
            actor=crew.analyst,
            conclusion=f"{verdict}.",
            verdict=verdict,
            core_metric_moved=verdict == "improved",
            behaviour_moved=True,
            feedback_positive=verdict != "worse",
        )
        services.requirement_transition(
            requirement_id=done.pk,
            actor=crew.lead,
            from_stage="propose",
            to_stage="close",
            outcome="done",
            at=ago(ended),
        )
        closed.append(done)
    services.requirement_create(team=crew.team, actor=crew.ops, title="Loose idea without a stage", at=ago(5))

    goal: Goal = data_services.goal_create(
        actor=crew.ops,
        team_id=crew.team.pk,
        title="First-order conversion at 6% by spring",
        metric=metric("Conversion rate").pk,
        target="6",
        start=(now - dt.timedelta(days=60)).date(),
        end=(now + dt.timedelta(days=120)).date(),
        first_level_metrics=[metric("DAU").pk, metric("D1 retention").pk, metric("ARPU").pk],
        description="Traffic × first-order conversion; the red packet and the coupon carry most of it.",
    )
    for day, value in ((62, "3.1"), (30, "3.9"), (2, "4.6")):
        data_services.observation_record(
            actor=crew.analyst,
            metric_id=metric("Conversion rate").pk,
            date=(now - dt.timedelta(days=day)).date(),
            value=value,
        )
    data_services.observation_record(
        actor=crew.analyst,
        metric_id=metric("DAU").pk,
        date=(now - dt.timedelta(days=1)).date(),
        value="12840",
    )
    data_services.strategy_create(
        actor=crew.ops,
        goal_id=goal.pk,
        title="Bring new users back on day 2",
        metric=metric("D1 retention").pk,
        requirements=[instrumenting.key, closed[2].key],
        description="Red packets and reminders in the first week.",
    )
    data_services.strategy_create(
        actor=crew.ops,
        goal_id=goal.pk,
        title="Make the first order cheaper",
        metric=metric("ARPU").pk,
        requirements=[analysing.key, closed[0].key],
    )
    data_services.strategy_create(actor=crew.ops, goal_id=goal.pk, title="Open a new traffic channel")
    return {"goal": goal, "instrumenting": instrumenting, "analysing": analysing, "concluded": concluded}


def _overflow(page: Page) -> dict[str, Any]:
    """How far the document is wider than the window, and the widest elements."""
    return page.evaluate(
        """() => {
            const limit = window.innerWidth + 1;
            const culprits = [];
            for (const el of document.body.querySelectorAll('*')) {
                const box = el.getBoundingClientRect();
                if (box.width && box.right > limit) {
                    culprits.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                        (el.className && typeof el.className === 'string' ? '.' + el.className.trim()
                            .replace(/\\s+/g, '.') : '') + ' right=' + Math.round(box.right));
                }
            }
            return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                    culprits: culprits.slice(0, 8)};
        }"""
    )


SHOTS = ["goal", "loop-tracking", "loop-conclusion", "loop-concluded", "funnel", "goals"]


@pytest.mark.parametrize("name", SHOTS)
def test_dataloop_screenshots(name: str, crew: Crew, open_as: Any) -> None:
    """Full-page screenshots in English and Chinese at 1366 and 375 px; nothing may be wider than a
    phone's screen. Every screenshot is taken before anything is asserted."""
    data = build_data(crew)
    path, person = {
        "goal": (f"/teams/{crew.team.pk}/goals/{data['goal'].pk}/", crew.ops),
        "goals": (f"/teams/{crew.team.pk}/goals/", crew.ops),
        "loop-tracking": (url_of(data["instrumenting"].key), crew.engineer),
        "loop-conclusion": (url_of(data["analysing"].key), crew.analyst),
        "loop-concluded": (url_of(data["concluded"].key), crew.ops),
        "funnel": (f"/teams/{crew.team.pk}/funnel/", crew.lead),
    }[name]
    page = open_as(person)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    statuses: dict[str, int] = {}
    overflows: dict[str, dict[str, Any]] = {}
    for language in ("en", "zh-hans"):
        if language != "en":
            page.select_option("select#language-switch", language)
            expect(page.locator("html")).to_have_attribute("lang", language)
        for width_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            response = page.goto(path)
            assert response is not None
            page.evaluate("document.fonts.ready.then(() => true)")
            shot = f"dataloop-{name}-{language.split('-')[0]}-{width_name}"
            statuses[shot] = response.status
            page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)
            overflows[shot] = _overflow(page)

    assert all(status == 200 for status in statuses.values()), f"{path} answered {statuses}"
    wide = {shot: o for shot, o in overflows.items() if o["scrollWidth"] > o["innerWidth"] + 1}
    assert not wide, f"wider than the window: {wide}"
