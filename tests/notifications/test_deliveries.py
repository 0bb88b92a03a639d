"""Deliveries on the external channels: email (locmem backend) and team chat webhooks (a local HTTP
server), sent once, grouped per destination, held through quiet hours, retried with back-off, and never
lost when the broker is down."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications import services as notification_services
from notifications import tasks as notification_tasks
from notifications.models import Channel, Delivery, Kind, Notification
from notifications.services import MAX_ATTEMPTS, DeliveryFailed, deliveries_due, delivery_send
from opsteam.celery import app as celery_app
from tests.conftest import Crew
from tests.factories import READY_FIELDS, UserFactory, add_member
from workflows import reminders, services
from workflows.models import StageEvent

from .helpers import HOUR, ChatServer, T, celery_broker, in_design, sla_sweep_at

SHANGHAI = ZoneInfo("Asia/Shanghai")
OVERDUE_AT = T + 73 * HOUR


def send_at(moment: dt.datetime, delivery: Delivery) -> str:
    with time_machine.travel(moment, tick=False):
        return delivery_send(delivery_id=delivery.pk)


def chat_webhook(
    crew: Crew, server: ChatServer, *, fmt: str = "generic", kinds: list[str] | None = None
) -> None:
    notification_services.webhook_create(
        actor=crew.lead,
        team_id=crew.team.pk,
        name="ops group",
        url=server.url,
        format=fmt,
        kinds=kinds if kinds is not None else [Kind.STAGE_OVERDUE, Kind.ESCALATION],
    )


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Tasks queued in this test run at once, in-process (for this test only: STYLE.md)."""
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False


# ------------------------------------------------------------------------------------------------ email


def test_email_has_a_plain_text_and_an_html_part(crew: Crew, mailoutbox: list[Any]) -> None:
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)
    delivery = Delivery.objects.get(channel=Channel.EMAIL)

    assert send_at(OVERDUE_AT, delivery) == "sent"

    [message] = mailoutbox
    assert message.to == ["pm@example.com"]
    assert (
        message.subject
        == "[GROW] GROW-1 First-order red packet has been in Design for 3d 1h, past its 3d SLA"
    )
    assert "- [Stage overdue] GROW-1 First-order red packet has been in Design" in message.body
    assert "http://127.0.0.1:8000/requirements/GROW-1/" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert '<a href="http://127.0.0.1:8000/requirements/GROW-1/">GROW-1 First-order red packet' in html
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.sent_at) == (Delivery.Status.SENT, 1, OVERDUE_AT)


def test_an_email_is_sent_in_three_queries_in_the_language_the_person_chose(
    crew: Crew, mailoutbox: list[Any]
) -> None:
    notification_services.settings_update(
        user=crew.pm,
        email_kinds=list(Kind.values),
        quiet_start=None,
        quiet_end=None,
        time_zone="Asia/Shanghai",
        language="zh-hans",
    )
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)
    delivery = Delivery.objects.get(channel=Channel.EMAIL)

    with CaptureQueriesContext(connection) as queries:
        assert send_at(OVERDUE_AT, delivery) == "sent"

    # The delivery locked with its recipient, their settings and the team; its notifications; the update
    # (the test's own transaction makes the service's a savepoint).
    statements = [q["sql"].split()[0] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert statements == ["SELECT", "SELECT", "UPDATE"]

    [message] = mailoutbox
    assert "你的全部通知：" in message.body
    assert "All your notifications" not in message.body


def test_email_html_shows_titles_as_text(crew: Crew, mailoutbox: list[Any]) -> None:
    in_design(crew, at=T, title='<img src=x onerror="alert(1)">')
    sla_sweep_at(OVERDUE_AT)

    send_at(OVERDUE_AT, Delivery.objects.get(channel=Channel.EMAIL))

    [(html, _mimetype)] = mailoutbox[0].alternatives
    assert "<img" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_several_reminders_for_one_person_in_one_sweep_make_one_email(
    crew: Crew, mailoutbox: list[Any]
) -> None:
    for title in ("Coupon", "Badge", "Streak"):
        in_design(crew, at=T, title=title)
    sla_sweep_at(OVERDUE_AT)
    [delivery] = Delivery.objects.filter(channel=Channel.EMAIL)

    send_at(OVERDUE_AT, delivery)

    [message] = mailoutbox
    assert message.subject == "[GROW] 3 updates from opsteam"
    assert [line[:28] for line in message.body.splitlines() if line.startswith("- ")] == [
        "- [Stage overdue] GROW-1 Cou",
        "- [Stage overdue] GROW-2 Bad",
        "- [Stage overdue] GROW-3 Str",
    ]


def test_email_follows_the_kinds_the_person_chose(crew: Crew) -> None:
    notification_services.settings_update(
        user=crew.pm, email_kinds=[Kind.DAILY_DIGEST], quiet_start=None, quiet_end=None, time_zone="UTC"
    )
    in_design(crew, at=T)

    sla_sweep_at(OVERDUE_AT)

    assert Notification.objects.filter(recipient=crew.pm, kind=Kind.STAGE_OVERDUE).count() == 1
    assert Delivery.objects.count() == 0


def test_a_member_without_an_email_address_gets_no_email_delivery(crew: Crew) -> None:
    add_member(crew.team, ["pm"], user=UserFactory(username="pm2", email=""))
    in_design(crew, at=T)

    sla_sweep_at(OVERDUE_AT)

    assert Notification.objects.filter(kind=Kind.STAGE_OVERDUE).count() == 2
    assert list(Delivery.objects.values_list("recipient__username", flat=True)) == ["pm"]


def test_delivery_sent_twice_sends_one_email(crew: Crew, mailoutbox: list[Any]) -> None:
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)
    delivery = Delivery.objects.get(channel=Channel.EMAIL)

    assert send_at(OVERDUE_AT, delivery) == "sent"
    assert send_at(OVERDUE_AT + HOUR, delivery) == "skipped"

    assert len(mailoutbox) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1


# ------------------------------------------------------------------------------------------ quiet hours

# T + 73 h is Thursday 2026-03-05 18:00 in Shanghai, the start of pm's quiet hours.
QUIET_END = dt.datetime(2026, 3, 6, 8, 0, tzinfo=SHANGHAI)


def quiet_evenings(user: Any) -> None:
    notification_services.settings_update(
        user=user,
        email_kinds=list(Kind.values),
        quiet_start=dt.time(18, 0),
        quiet_end=dt.time(8, 0),
        time_zone="Asia/Shanghai",
    )


def test_quiet_hours_hold_the_email_until_they_end(crew: Crew, mailoutbox: list[Any]) -> None:
    quiet_evenings(crew.pm)
    in_design(crew, at=T)

    sla_sweep_at(OVERDUE_AT)

    assert Notification.objects.filter(recipient=crew.pm, kind=Kind.STAGE_OVERDUE).count() == 1
    delivery = Delivery.objects.get(channel=Channel.EMAIL)
    assert (delivery.status, delivery.not_before) == (Delivery.Status.PENDING, QUIET_END)
    assert deliveries_due(now=OVERDUE_AT) == []
    assert send_at(QUIET_END - dt.timedelta(minutes=1), delivery) == "waiting"
    assert mailoutbox == []


def test_quiet_hours_are_judged_at_the_time_the_sweep_is_given(crew: Crew) -> None:
    quiet_evenings(crew.pm)
    in_design(crew, at=T)

    reminders.sla_sweep(now=OVERDUE_AT)

    assert Delivery.objects.get(channel=Channel.EMAIL).not_before == QUIET_END


def test_the_delivery_sweep_sends_held_email_after_quiet_hours(
    crew: Crew, mailoutbox: list[Any], eager_celery: None
) -> None:
    quiet_evenings(crew.pm)
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)
    delivery = Delivery.objects.get(channel=Channel.EMAIL)

    with time_machine.travel(QUIET_END, tick=False):
        assert deliveries_due() == [delivery.pk]
        assert notification_tasks.deliveries_sweep() == 1

    assert [message.to for message in mailoutbox] == [["pm@example.com"]]
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_quiet_hours_do_not_hold_the_teams_chat(crew: Crew, chat_server: ChatServer) -> None:
    quiet_evenings(crew.pm)
    chat_webhook(crew, chat_server)
    in_design(crew, at=T)

    sla_sweep_at(OVERDUE_AT)

    assert Delivery.objects.get(channel=Channel.WEBHOOK).not_before == OVERDUE_AT


# ------------------------------------------------------------------------------------------------- chat


def generic_text(body: Any) -> str:
    return " ".join(item["text"] for item in body["items"])


def wecom_text(body: Any) -> str:
    assert body["msgtype"] == "markdown"
    return str(body["markdown"]["content"])


def dingtalk_text(body: Any) -> str:
    assert body["msgtype"] == "markdown"
    return str(body["markdown"]["text"])


def feishu_text(body: Any) -> str:
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    return " ".join(element["text"] for paragraph in post["content"] for element in paragraph)


def slack_text(body: Any) -> str:
    return " ".join(block["text"]["text"] for block in body["blocks"])


@pytest.mark.parametrize(
    ("fmt", "text_of"),
    [
        ("generic", generic_text),
        ("wecom", wecom_text),
        ("dingtalk", dingtalk_text),
        ("feishu", feishu_text),
        ("slack", slack_text),
    ],
)
def test_a_sweep_makes_one_chat_post_in_the_webhooks_format(
    crew: Crew, chat_server: ChatServer, fmt: str, text_of: Callable[[Any], str]
) -> None:
    chat_webhook(crew, chat_server, fmt=fmt)
    in_design(crew, at=T, title="Coupon")
    in_design(crew, at=T, title="Badge")
    sla_sweep_at(OVERDUE_AT)

    assert send_at(OVERDUE_AT, Delivery.objects.get(channel=Channel.WEBHOOK)) == "sent"

    [post] = chat_server.received()
    assert post.path == "/hook?key=test"
    assert post.headers["Content-Type"] == "application/json; charset=utf-8"
    text = text_of(post.json)
    assert "GROW-1 Coupon has been in Design for 3d 1h" in text
    assert "GROW-2 Badge has been in Design for 3d 1h" in text


def test_a_webhook_posts_only_the_kinds_it_was_given(crew: Crew, chat_server: ChatServer) -> None:
    chat_webhook(crew, chat_server, kinds=[Kind.ESCALATION])
    in_design(crew, at=T)

    sla_sweep_at(OVERDUE_AT)
    assert Delivery.objects.filter(channel=Channel.WEBHOOK).count() == 0
    sla_sweep_at(T + 145 * HOUR)

    [delivery] = Delivery.objects.filter(channel=Channel.WEBHOOK)
    assert list(delivery.notifications.values_list("kind", flat=True)) == [Kind.ESCALATION]


def test_a_chat_line_per_requirement_however_many_people_were_told(
    crew: Crew, chat_server: ChatServer
) -> None:
    add_member(crew.team, ["pm"], username="pm2")
    chat_webhook(crew, chat_server)
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)

    send_at(OVERDUE_AT, Delivery.objects.get(channel=Channel.WEBHOOK))

    [post] = chat_server.received()
    assert [item["requirement"] for item in post.json["items"]] == ["GROW-1"]


def test_a_webhook_delivery_sent_twice_posts_once(crew: Crew, chat_server: ChatServer) -> None:
    chat_webhook(crew, chat_server)
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)
    delivery = Delivery.objects.get(channel=Channel.WEBHOOK)

    send_at(OVERDUE_AT, delivery)
    assert send_at(OVERDUE_AT, delivery) == "skipped"

    assert len(chat_server.received()) == 1


# -------------------------------------------------------------------------------------------- failures


def failing_chat(crew: Crew, chat_server: ChatServer) -> Delivery:
    chat_server.status = 500
    chat_server.reply = b'{"error": "boom"}'
    chat_webhook(crew, chat_server)
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)
    return Delivery.objects.get(channel=Channel.WEBHOOK)


def test_a_failing_webhook_raises_and_keeps_the_error(crew: Crew, chat_server: ChatServer) -> None:
    delivery = failing_chat(crew, chat_server)

    with pytest.raises(DeliveryFailed):
        send_at(OVERDUE_AT, delivery)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.PENDING, 1)
    assert "500" in delivery.last_error


def test_a_platform_error_in_a_200_reply_is_a_failure(crew: Crew, chat_server: ChatServer) -> None:
    chat_server.reply = b'{"errcode": 93000, "errmsg": "invalid webhook url"}'
    chat_webhook(crew, chat_server, fmt="wecom")
    in_design(crew, at=T)
    sla_sweep_at(OVERDUE_AT)
    delivery = Delivery.objects.get(channel=Channel.WEBHOOK)

    with pytest.raises(DeliveryFailed):
        send_at(OVERDUE_AT, delivery)

    delivery.refresh_from_db()
    assert "platform error 93000: invalid webhook url" in delivery.last_error


def test_a_failed_delivery_waits_out_its_back_off_before_the_sweep_queues_it_again(
    crew: Crew, chat_server: ChatServer
) -> None:
    delivery = failing_chat(crew, chat_server)
    with pytest.raises(DeliveryFailed) as failure:
        send_at(OVERDUE_AT, delivery)

    retry_at = OVERDUE_AT + dt.timedelta(seconds=failure.value.retry_in)
    assert failure.value.retry_in == notification_services.RETRY_BACKOFF
    assert delivery.pk not in deliveries_due(now=retry_at - dt.timedelta(seconds=1))
    assert delivery.pk in deliveries_due(now=retry_at)
    assert send_at(retry_at - dt.timedelta(seconds=1), delivery) == "waiting"
    assert len(chat_server.received()) == 1


def test_back_off_doubles_with_each_failed_attempt(crew: Crew, chat_server: ChatServer) -> None:
    delivery = failing_chat(crew, chat_server)
    waits = []
    moment = OVERDUE_AT
    for _attempt in range(3):
        with pytest.raises(DeliveryFailed) as failure:
            send_at(moment, delivery)
        waits.append(failure.value.retry_in)
        moment += dt.timedelta(seconds=failure.value.retry_in)

    assert waits == [30, 60, 120]


def test_a_webhook_failing_every_attempt_ends_failed(crew: Crew, chat_server: ChatServer) -> None:
    delivery = failing_chat(crew, chat_server)
    moment = OVERDUE_AT
    for _attempt in range(MAX_ATTEMPTS - 1):
        with pytest.raises(DeliveryFailed):
            send_at(moment, delivery)
        moment += 2 * HOUR

    assert send_at(moment, delivery) == "failed"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.FAILED, MAX_ATTEMPTS)
    assert "500" in delivery.last_error
    assert delivery.pk not in deliveries_due(now=moment + 10 * HOUR)
    assert len(chat_server.received()) == MAX_ATTEMPTS


def test_the_deliver_task_retries_a_failed_send_after_its_back_off(
    crew: Crew, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery = failing_chat(crew, chat_server)
    retries: list[dict[str, Any]] = []

    def retry(**kwargs: Any) -> Exception:
        retries.append(kwargs)
        return RuntimeError("retry")

    monkeypatch.setattr(notification_tasks.deliver, "retry", retry)

    with time_machine.travel(OVERDUE_AT, tick=False), pytest.raises(RuntimeError):
        notification_tasks.deliver.run(delivery_id=delivery.pk)

    [call] = retries
    assert call["countdown"] == notification_services.RETRY_BACKOFF
    assert isinstance(call["exc"], DeliveryFailed)


# ------------------------------------------------------------------------------------- broker unreachable


@pytest.mark.django_db(transaction=True)
def test_a_transition_commits_when_the_broker_is_unreachable(crew: Crew) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", at=T, **READY_FIELDS)

    with celery_broker("redis://127.0.0.1:1/0", {}):
        event = services.requirement_transition(
            requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
        )

    assert isinstance(event, StageEvent)
    requirement.refresh_from_db()
    assert requirement.stage.slug == "design"
    delivery = Delivery.objects.get(recipient=crew.pm)
    assert (delivery.status, delivery.attempts) == (Delivery.Status.PENDING, 0)
    assert deliveries_due() == [delivery.pk]
