"""The product in a real browser: several people signed in at once (one browser context each) work a
requirement round the loop, through the same pages and forms they use every day.

Headless Chromium against pytest-django's live server; screenshots of the main pages, in English and
Chinese, at desktop and phone widths, go to artifacts/screenshots/ for people to look at."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from notifications.models import Kind, Notification, NotificationSettings
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS, log_in
from tests.conftest import Crew
from tests.factories import READY_FIELDS, verify_tracking
from workflows import services
from workflows.models import Comment, Requirement, StageEvent

pytestmark = pytest.mark.browser


# ------------------------------------------------------------------------------------------------ helpers


def url_of(key: str) -> str:
    return f"/requirements/{key}/"


def board_url(crew: Crew) -> str:
    return f"/teams/{crew.team.pk}/board/"


def propose(crew: Crew, title: str = "Day-2 red packet for new users", **fields: Any) -> Requirement:
    """A requirement proposed by ops, straight through the service (the test is about what follows)."""
    return services.requirement_create(team=crew.team, actor=crew.ops, title=title, **fields)


def messages_of(page: Page) -> Any:
    return page.locator("ul.messages")


def current_stage(page: Page) -> Any:
    return page.locator("ol.stageline li.current")


def move_on_page(page: Page, key: str, target: str, note: str = "") -> None:
    """Press a move button on the requirement page and wait for the page that says it moved."""
    if note:
        page.fill("#move-note", note)
    page.click(f"form.moves-panel button[name=to][value={target}]")
    said = {"iterate": f"{key} starts its next loop.", "close": f"{key} is closed."}.get(
        target, f"{key} moved."
    )
    expect(messages_of(page)).to_contain_text(said)


def page_unavailable(page: Page, target: str) -> Any:
    """The line of a move the user cannot make now: the disabled button and the reason beside it."""
    return page.locator("li.unavailable").filter(has=page.locator(f"[aria-describedby=why-{target}]"))


def save_edit(page: Page, key: str, **fields: str) -> None:
    """Fill the edit form (text fields by id, selects by value) and save it."""
    page.goto(f"/requirements/{key}/edit/")
    for name, value in fields.items():
        locator = page.locator(f"#id_{name}")
        if locator.evaluate("el => el.tagName") == "SELECT":
            locator.select_option(value)
        else:
            locator.fill(value)
    page.click("main form.card button[type=submit]")
    page.wait_for_url(re.compile(re.escape(url_of(key)) + "$"))
    expect(messages_of(page)).to_contain_text("Saved.")


def csrf_token(page: Page) -> str:
    return page.locator("input[name=csrfmiddlewaretoken]").first.input_value()


def switch_language(page: Page, code: str) -> None:
    page.select_option("select#language-switch", code)
    expect(page.locator("html")).to_have_attribute("lang", code)


def event_kinds(requirement: Requirement) -> list[str]:
    return list(StageEvent.objects.filter(requirement=requirement).values_list("kind", flat=True))


# ------------------------------------------------------------------------------ 1. create through the form


def test_create_requirement_through_the_form_shows_its_key(crew: Crew, open_as: Any) -> None:
    page = open_as(crew.ops)
    page.goto(board_url(crew))
    page.click("a[data-shortcut=n]")
    page.wait_for_url(f"**/teams/{crew.team.pk}/requirements/new/")

    page.fill("#id_title", "Invite-a-friend coupon")
    page.fill("#id_hypothesis", "A coupon for both sides doubles invitations")
    page.fill("#id_target_metric", "Invitations per DAU")
    page.select_option("#id_aarrr_stage", "referral")
    page.click("main form.card button[type=submit]")

    page.wait_for_url("**/requirements/GROW-1/")
    expect(page.locator("h1")).to_contain_text("GROW-1")
    expect(page.locator("h1")).to_contain_text("Invite-a-friend coupon")
    expect(messages_of(page)).to_contain_text("GROW-1 is proposed: Invite-a-friend coupon")
    expect(current_stage(page)).to_have_text("Propose")
    expect(page.locator("ol.timeline li.event.create")).to_contain_text("proposed it in Propose")

    requirement = Requirement.objects.get(key="GROW-1")
    assert requirement.team == crew.team
    assert requirement.created_by == crew.ops
    assert requirement.aarrr_stage == "referral"
    assert event_kinds(requirement) == ["create"]


# ------------------------------------------------------------------------------- 2. the whole loop


def test_whole_loop_each_step_by_its_role(crew: Crew, open_as: Any) -> None:
    requirement = propose(crew)
    key = requirement.key
    url = url_of(key)

    # propose -> design: ops fills what the move needs, then moves it.
    ops = open_as(crew.ops)
    ops.goto(url)
    expect(page_unavailable(ops, "design")).to_contain_text("hypothesis")
    save_edit(ops, key, **READY_FIELDS)
    move_on_page(ops, key, "design", note="Ready for design")
    expect(current_stage(ops)).to_have_text("Design")
    expect(ops.locator("ol.timeline")).to_contain_text("Ready for design")

    # design -> build: the PM writes the design.
    pm = open_as(crew.pm)
    pm.goto(url)
    expect(page_unavailable(pm, "build")).to_contain_text("design")
    save_edit(pm, key, design="Spec: <https://wiki.example.com/red-packet>")
    move_on_page(pm, key, "build")
    expect(current_stage(pm)).to_have_text("Build")
    expect(pm.locator(".markdown a[href='https://wiki.example.com/red-packet']")).to_be_visible()

    # build -> instrument -> analyze: the engineer, with a launch date and a verified tracking plan
    # before the last move.
    engineer = open_as(crew.engineer)
    engineer.goto(url)
    move_on_page(engineer, key, "instrument", note="Shipped behind a flag")
    expect(current_stage(engineer)).to_have_text("Instrument")
    expect(page_unavailable(engineer, "analyze")).to_contain_text("launch date")
    save_edit(engineer, key, launch_date="2025-03-10")
    expect(page_unavailable(engineer, "analyze")).to_contain_text("tracking plan")
    verify_tracking(requirement)
    engineer.goto(url)
    move_on_page(engineer, key, "analyze")
    expect(current_stage(engineer)).to_have_text("Analyze")
    expect(engineer.locator("dl.fields")).to_contain_text("2025-03-10")

    # analyze -> optimize: the analyst writes the conclusion and the verdict first.
    analyst = open_as(crew.analyst)
    analyst.goto(url)
    expect(page_unavailable(analyst, "optimize")).to_contain_text("conclusion")
    analyst.fill("#id_conclusion", "D1 retention **up 2.1 pts** in the test group.")
    analyst.check("input[name=verdict][value=improved]")
    for check in ("core_metric_moved", "behaviour_moved", "feedback_positive"):
        analyst.check(f"input[name={check}][value=yes]")
    analyst.click("section[aria-labelledby=h-analysis] form button[type=submit]")
    expect(messages_of(analyst)).to_contain_text("Analysis conclusion saved.")
    expect(analyst.locator("section[aria-labelledby=h-analysis]")).to_contain_text("Improved")
    move_on_page(analyst, key, "optimize")
    expect(current_stage(analyst)).to_have_text("Optimize")

    # optimize -> iterate: ops opens loop 2.
    ops.goto(url)
    expect(ops.locator("button[name=to][value=iterate]")).to_have_text("Iterate: start loop 2")
    move_on_page(ops, key, "iterate", note="Try a bigger packet")
    expect(current_stage(ops)).to_have_text("Propose")
    expect(ops.locator("main")).to_contain_text("Loop 2")
    expect(ops.locator("ol.timeline")).to_contain_text("closed loop 1 and started the next")

    # Later the lead closes loop 2 with an outcome.
    lead = open_as(crew.lead)
    lead.goto(url)
    lead.check("input[name=outcome][value=wont_do]")
    move_on_page(lead, key, "close", note="Budget moved to Q3")
    expect(lead.locator(".req-head .pill.closed")).to_contain_text("Won't do")
    expect(lead.locator("section[aria-labelledby=h-move]")).to_contain_text("This requirement is closed.")
    expect(current_stage(lead)).to_have_count(0)

    requirement.refresh_from_db()
    assert requirement.is_closed
    assert requirement.outcome == "wont_do"
    assert requirement.loop_number == 2
    events = list(StageEvent.objects.filter(requirement=requirement).select_related("actor", "loop"))
    assert [(e.kind, e.from_stage, e.to_stage, e.actor.username, e.loop.number) for e in events] == [
        ("create", "", "propose", "ops", 1),
        ("forward", "propose", "design", "ops", 1),
        ("forward", "design", "build", "pm", 1),
        ("forward", "build", "instrument", "engineer", 1),
        ("forward", "instrument", "analyze", "engineer", 1),
        ("forward", "analyze", "optimize", "analyst", 1),
        ("iterate", "optimize", "propose", "ops", 1),
        ("close", "propose", "", "lead", 2),
    ]
    assert events[1].note == "Ready for design"


# ------------------------------------------------------------------------------- 3. a forbidden move


def test_forbidden_move_is_disabled_with_its_reason_and_a_forged_post_is_refused(
    crew: Crew, open_as: Any
) -> None:
    requirement = propose(crew, **READY_FIELDS)
    page = open_as(crew.engineer)
    page.goto(url_of(requirement.key))

    line = page_unavailable(page, "design")
    expect(line.locator("button")).to_be_disabled()
    expect(line.locator("button")).to_have_text("→ Design")
    expect(line.locator("#why-design")).to_contain_text("Operations")
    expect(page.locator("form.moves-panel")).to_have_count(0)
    expect(page.locator("section[aria-labelledby=h-move]")).to_contain_text("You cannot move it now.")

    response = page.request.post(
        f"/requirements/{requirement.key}/move/",
        form={
            "csrfmiddlewaretoken": csrf_token(page),
            "from_stage": "propose",
            "to": "design",
            "note": "sneaking past the guard",
        },
        max_redirects=0,
    )
    assert response.status == 403, response.text()[:500]
    assert "Operations" in response.text()

    requirement.refresh_from_db()
    assert requirement.stage.slug == "propose"
    assert event_kinds(requirement) == ["create"]
    assert not StageEvent.objects.filter(note="sneaking past the guard").exists()


# --------------------------------------------------------------------------- 4. a comment with a mention


def test_comment_with_a_mention_notifies_the_person(crew: Crew, open_as: Any) -> None:
    requirement = propose(crew, **READY_FIELDS)
    page = open_as(crew.ops)
    page.goto(url_of(requirement.key))

    box = page.locator("#id_body")
    box.click()
    box.press_sequentially("Numbers look odd, @an")
    choices = page.locator("ul.mention-list li")
    expect(choices.first).to_be_visible()
    expect(choices).to_have_text(["@analyst"])
    choices.filter(has_text="analyst").click()
    expect(box).to_have_value("Numbers look odd, @analyst ")
    box.press_sequentially("can you check?")
    page.click("#comment-form button[type=submit]")

    page.wait_for_url(re.compile(r"#comment-\d+$"))
    comment = Comment.objects.get(requirement=requirement)
    expect(page.locator(f"#comment-{comment.pk}")).to_contain_text(
        "Numbers look odd, @analyst can you check?"
    )
    assert comment.author == crew.ops

    notification = Notification.objects.get(recipient=crew.analyst, kind=Kind.MENTIONED)
    assert notification.requirement == requirement
    assert notification.read_at is None
    assert not Notification.objects.filter(kind=Kind.MENTIONED).exclude(recipient=crew.analyst).exists()
    unread = Notification.objects.filter(recipient=crew.analyst, read_at__isnull=True).count()

    analyst = open_as(crew.analyst)
    badge = analyst.locator("nav.mainnav a[href='/notifications/'] .badge")
    expect(badge).to_have_text(str(unread))
    analyst.click("nav.mainnav a[href='/notifications/']")
    item = analyst.locator("article.notification.unread").filter(has_text=requirement.key)
    expect(item).to_contain_text("mentioned you")
    expect(item.locator(".kind")).to_have_text("Mentioned")
    item.locator("a").click()
    analyst.wait_for_url(f"**{url_of(requirement.key)}")


# ------------------------------------------------------------------------------------ 5. the language


def test_chinese_from_the_header_switch_is_remembered_for_the_user(crew: Crew, open_as: Any) -> None:
    page = open_as(crew.ops)
    page.goto(board_url(crew))
    expect(page.locator("#col-propose")).to_contain_text("Propose")

    switch_language(page, "zh-hans")
    page.wait_for_url(f"**{board_url(crew)}")
    expect(page.locator("#col-propose")).to_contain_text("提出")
    expect(page.locator("#col-analyze")).to_contain_text("分析")
    expect(page.locator("nav.mainnav")).to_contain_text("看板")
    assert NotificationSettings.objects.get(user=crew.ops).language == "zh-hans"

    # Log out through the user menu, and back in: still Chinese.
    page.click("details.menu summary")
    page.click("details.menu form button[type=submit]")
    page.wait_for_url("**/login/**")
    log_in(page, "ops")
    page.goto(board_url(crew))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("#col-propose")).to_contain_text("提出")

    # On another browser (no language cookie, an English Accept-Language) too: it is the user's choice.
    elsewhere = open_as(crew.ops)
    elsewhere.goto(board_url(crew))
    expect(elsewhere.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(elsewhere.locator("#col-propose")).to_contain_text("提出")
    expect(elsewhere.locator("select#language-switch")).to_have_value("zh-hans")

    # Someone else on the team still reads English.
    other = open_as(crew.pm)
    other.goto(board_url(crew))
    expect(other.locator("#col-propose")).to_contain_text("Propose")


def test_requirement_page_in_chinese_names_stages_in_chinese(crew: Crew, open_as: Any) -> None:
    requirement = propose(crew, **READY_FIELDS)
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )
    page = open_as(crew.ops)
    page.goto(url_of(requirement.key))
    switch_language(page, "zh-hans")
    expect(current_stage(page)).to_have_text("设计")
    expect(page.locator("ol.timeline li.event.forward")).to_contain_text("提出 → 设计")
    created = page.locator("ol.timeline li.event.create")
    expect(created).to_contain_text("提出")
    expect(created).not_to_contain_text("Propose", timeout=1_000)


# --------------------------------------------------------------------------- 6. board moves and conflicts


def test_board_move_from_the_card_menu_and_a_stale_card(crew: Crew, open_as: Any) -> None:
    requirement = propose(crew, **READY_FIELDS)
    card_id = f"#card-{requirement.key}"
    lead = open_as(crew.lead)
    lead.goto(board_url(crew))  # the lead's board goes stale when ops moves the card
    expect(lead.locator(f"section.column[data-stage=propose] {card_id}")).to_be_visible()

    ops = open_as(crew.ops)
    ops.goto(board_url(crew))
    card = ops.locator(f"section.column[data-stage=propose] {card_id}")
    card.locator("details summary").click()
    card.locator("button[name=to][value=design]").click()
    expect(ops.locator(f"section.column[data-stage=design] {card_id}")).to_be_visible()
    expect(ops.locator(f"section.column[data-stage=propose] {card_id}")).to_have_count(0)
    expect(messages_of(ops)).to_contain_text(f"{requirement.key} moved.")
    requirement.refresh_from_db()
    assert requirement.stage.slug == "design"

    # The lead presses a move on the stale card: the card says who moved it where, nothing changes.
    stale = lead.locator(card_id)
    stale.locator("details summary").click()
    with lead.expect_response(lambda r: r.url.endswith("/move/")) as answer:
        stale.locator("button[name=to][value=build]").click()
    assert answer.value.status == 409
    expect(lead.locator(f"{card_id} .notice.conflict")).to_contain_text("ops moved this meanwhile")
    expect(lead.locator(f"{card_id} .notice.conflict")).to_contain_text("Design")
    requirement.refresh_from_db()
    assert requirement.stage.slug == "design"
    assert event_kinds(requirement) == ["create", "forward"]


def test_conflict_on_the_requirement_page_says_who_moved_it(crew: Crew, open_as: Any) -> None:
    requirement = propose(crew, **READY_FIELDS)
    url = url_of(requirement.key)
    lead = open_as(crew.lead)
    ops = open_as(crew.ops)
    lead.goto(url)
    ops.goto(url)

    move_on_page(lead, requirement.key, "design", note="Taking it, urgent")
    expect(current_stage(lead)).to_have_text("Design")

    ops.fill("#move-note", "my note must not land")
    with ops.expect_response(lambda r: r.url.endswith("/move/")) as answer:
        ops.click("form.moves-panel button[name=to][value=design]")
    assert answer.value.status == 409
    notice = ops.locator("#notice.conflict")
    expect(notice).to_contain_text("lead moved this meanwhile; it is in Design now. Nothing was changed.")
    expect(current_stage(ops)).to_have_text("Design")

    requirement.refresh_from_db()
    assert requirement.stage.slug == "design"
    events = list(StageEvent.objects.filter(requirement=requirement).select_related("actor"))
    assert [(e.kind, e.actor.username, e.note) for e in events] == [
        ("create", "ops", ""),
        ("override", "lead", "Taking it, urgent"),
    ]


# ----------------------------------------------------------------------------------------- 7. screenshots


def build_showcase(crew: Crew) -> Requirement:
    """A team with work in most columns; returns the requirement with a long timeline and a comment."""
    now = timezone.now()

    def ago(days: float) -> dt.datetime:
        return now - dt.timedelta(days=days)

    main = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Day-2 red packet for new users",
        at=ago(9),
        description="New users who open the app on **day 2** get a red packet.\n\n- 5 元 for 1,000 users",
        labels=["red-packet", "新用户"],
        priority="P1",
        due_date=(now + dt.timedelta(days=12)).date(),
        resources_people="1 FE, 1 BE",
        **READY_FIELDS,
    )
    steps = [
        ("propose", "design", crew.ops, 8, "Hypothesis agreed at the Monday review"),
        ("design", "build", crew.pm, 6, ""),
        ("build", "instrument", crew.engineer, 2, "Shipped to 10% behind a flag"),
    ]
    services.requirement_update(
        requirement_id=main.pk, actor=crew.pm, design="Spec: https://wiki.example.com/red-packet"
    )
    for from_stage, to_stage, actor, days, note in steps:
        services.requirement_transition(
            requirement_id=main.pk,
            actor=actor,
            from_stage=from_stage,
            to_stage=to_stage,
            note=note,
            at=ago(days),
        )
    services.comment_create(
        requirement_id=main.pk,
        actor=crew.analyst,
        body="@engineer the `red_packet_open` event has no `user_type` property yet.",
    )

    services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Invite-a-friend coupon: both sides get 10 元",
        assignee=crew.ops.pk,
        aarrr_stage="referral",
        at=ago(3),
    )
    services.requirement_create(
        team=crew.team,
        actor=crew.lead,
        title="首单立减：新用户首单满 30 减 10",
        priority="P0",
        incident_kind="service_delay",
        at=ago(1),
        **{**READY_FIELDS, "aarrr_stage": "revenue"},
    )
    analysed = services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Push reminder for abandoned carts",
        at=ago(20),
        **{**READY_FIELDS, "aarrr_stage": "activation"},
    )
    services.requirement_update(requirement_id=analysed.pk, actor=crew.pm, design="Push copy v2")
    services.requirement_update(requirement_id=analysed.pk, actor=crew.engineer, launch_date=ago(10).date())
    verify_tracking(analysed)
    for from_stage, to_stage, actor, days in [
        ("propose", "design", crew.ops, 19),
        ("design", "build", crew.pm, 17),
        ("build", "instrument", crew.engineer, 12),
        ("instrument", "analyze", crew.engineer, 10),
    ]:
        services.requirement_transition(
            requirement_id=analysed.pk, actor=actor, from_stage=from_stage, to_stage=to_stage, at=ago(days)
        )
    services.loop_record_analysis(
        requirement_id=analysed.pk,
        actor=crew.analyst,
        conclusion="Conversion +0.4 pt",
        verdict="flat",
        core_metric_moved=False,
        behaviour_moved=True,
        feedback_positive=True,
    )
    services.requirement_transition(
        requirement_id=analysed.pk, actor=crew.analyst, from_stage="analyze", to_stage="optimize", at=ago(1)
    )
    return main


PAGES = ["board", "requirement", "queue", "settings-members"]


def _overflow(page: Page) -> dict[str, Any]:
    """How far the document is wider than the window, and the widest elements outside the board."""
    return page.evaluate(
        """() => {
            const limit = window.innerWidth + 1;
            const culprits = [];
            for (const el of document.body.querySelectorAll('*')) {
                if (el.closest('.board')) continue;
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


@pytest.mark.parametrize("name", PAGES)
def test_screenshots(name: str, crew: Crew, open_as: Any) -> None:
    """Full-page screenshots in English and Chinese at 1366 and 375 px; on a phone nothing but the board
    may be wider than the screen. Every screenshot is taken before anything is asserted."""
    showcase = build_showcase(crew)
    path = {
        "board": board_url(crew),
        "requirement": url_of(showcase.key),
        "queue": "/queue/",
        "settings-members": f"/teams/{crew.team.pk}/settings/members/",
    }[name]
    person = crew.lead if name == "settings-members" else crew.ops
    page = open_as(person)
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
            shot = f"{name}-{language.split('-')[0]}-{width_name}"
            statuses[shot] = response.status
            page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)
            if width_name == "phone":
                overflows[shot] = _overflow(page)

    assert all(status == 200 for status in statuses.values()), f"{path} answered {statuses}"
    wide = {shot: o for shot, o in overflows.items() if o["scrollWidth"] > o["innerWidth"] + 1}
    assert not wide, f"wider than a 375 px phone: {wide}"

    if name == "board":
        expect(page.locator("#col-propose")).to_contain_text("提出")
    elif name == "requirement":
        expect(page.locator("ol.timeline li.event")).to_have_count(4)
        expect(page.locator("ol.timeline li.comment")).to_have_count(1)
    elif name == "queue":
        expect(page.locator("table.queue tbody tr")).not_to_have_count(0)
