"""The dispatch: a commit that makes deliveries due asks a worker to send them about a second later,
once per process however many commits come in that second; the dispatch sends every due delivery,
skips one another task holds, and hands a failed send to its own retrying task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import time_machine
from django.db import connection

from notifications import services as notification_services
from notifications import tasks as notification_tasks
from notifications.models import Channel, Delivery
from notifications.services import DISPATCH_DELAY, DISPATCH_MARGIN, deliveries_dispatch, dispatch_soon
from opsteam.celery import app as celery_app
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services

from .helpers import HOUR, ChatServer, T, in_design, sla_sweep_at

OVERDUE_AT = T + 73 * HOUR


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock(1000.0)
    monkeypatch.setattr(notification_services.time, "monotonic", clock)
    monkeypatch.setattr(notification_services._Dispatch, "due", 0.0)
    yield clock


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each dispatch asked of the broker, with its apply_async arguments (nothing is sent)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(notification_tasks.dispatch, "apply_async", lambda **kwargs: calls.append(kwargs))
    return calls


def test_commits_within_a_second_ask_for_one_dispatch(clock: Clock, asked: list[dict[str, Any]]) -> None:
    dispatch_soon()
    assert asked == [{"countdown": DISPATCH_DELAY}]

    clock.now += DISPATCH_DELAY / 2
    dispatch_soon()
    clock.now = 1000.0 + DISPATCH_DELAY - DISPATCH_MARGIN - 0.01
    dispatch_soon()
    assert len(asked) == 1  # the dispatch asked at 1000.0 runs after these commits

    clock.now = 1000.0 + DISPATCH_DELAY - DISPATCH_MARGIN + 0.01  # too close to its run: ask again
    dispatch_soon()
    assert len(asked) == 2


def test_a_broker_that_refuses_is_asked_again_at_the_next_commit(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def refuse(**kwargs: Any) -> None:
        calls.append(kwargs)
        raise ConnectionError("broker down")

    monkeypatch.setattr(notification_tasks.dispatch, "apply_async", refuse)
    dispatch_soon()  # no exception reaches the committing caller
    dispatch_soon()
    assert not notification_services._Dispatch.lock.locked()

    assert len(calls) == 2
    assert notification_services._Dispatch.due == 0.0


def test_eager_tasks_dispatch_at_every_commit(clock: Clock, asked: list[dict[str, Any]]) -> None:
    celery_app.conf.task_always_eager = True
    try:
        dispatch_soon()
        dispatch_soon()
    finally:
        celery_app.conf.task_always_eager = False

    assert asked == [{"countdown": None}, {"countdown": None}]


@pytest.mark.django_db(transaction=True)
def test_a_move_asks_for_a_dispatch_once_it_has_committed(
    crew: Crew, clock: Clock, asked: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    requirement = services.requirement_create(team=crew.team, actor=crew.ops, title="x", **READY_FIELDS)
    seen: list[int] = []
    monkeypatch.setattr(
        notification_tasks.dispatch,
        "apply_async",
        lambda **kwargs: seen.append(Delivery.objects.filter(recipient=crew.pm).count()),
    )

    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
    )

    assert seen == [1]  # asked after the commit: the pm's delivery was already readable


@pytest.mark.django_db(transaction=True)
def test_a_backdated_move_notifies_nobody_and_asks_for_nothing(
    crew: Crew, clock: Clock, asked: list[dict[str, Any]]
) -> None:
    in_design(crew, at=T)

    assert asked == []


def overdue_with_chat(crew: Crew, chat_server: ChatServer, *, failing: bool = False) -> None:
    if failing:
        chat_server.status = 500
        chat_server.reply = b'{"error": "boom"}'
    notification_services.webhook_create(
        actor=crew.lead,
        team_id=crew.team.pk,
        name="ops group",
        url=chat_server.url,
        format="generic",
        kinds=["stage_overdue", "escalation"],
    )
    in_design(crew, at=T)
    in_design(crew, at=T, title="Second")
    sla_sweep_at(OVERDUE_AT)


@pytest.mark.django_db
def test_a_dispatch_sends_every_due_delivery_once(
    crew: Crew, chat_server: ChatServer, mailoutbox: list[Any]
) -> None:
    overdue_with_chat(crew, chat_server)
    due = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
    assert due >= 2

    with time_machine.travel(OVERDUE_AT, tick=False):
        assert deliveries_dispatch() == (due, False)
        assert deliveries_dispatch() == (0, False)

    assert not Delivery.objects.exclude(status=Delivery.Status.SENT).exists()
    assert len(chat_server.received()) == 1
    assert len(mailoutbox) == due - 1


@pytest.mark.django_db
def test_a_dispatch_takes_at_most_its_limit_and_says_more_wait(
    crew: Crew, chat_server: ChatServer, mailoutbox: list[Any]
) -> None:
    overdue_with_chat(crew, chat_server)
    due = Delivery.objects.filter(status=Delivery.Status.PENDING).count()

    with time_machine.travel(OVERDUE_AT, tick=False):
        assert deliveries_dispatch(limit=1) == (1, True)
        assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == due - 1


@pytest.mark.django_db
def test_a_dispatch_stops_when_its_time_is_up_and_says_more_wait(
    crew: Crew, chat_server: ChatServer, mailoutbox: list[Any], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    overdue_with_chat(crew, chat_server)
    due = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
    real_send = notification_services.delivery_send

    def slow_send(**kwargs: Any) -> str:
        clock.now += notification_services.DISPATCH_BUDGET + 1  # each send takes the whole budget
        return real_send(**kwargs)

    monkeypatch.setattr(notification_services, "delivery_send", slow_send)
    with time_machine.travel(OVERDUE_AT, tick=False):
        assert deliveries_dispatch() == (1, True)

    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == due - 1


@pytest.mark.django_db
def test_a_failed_send_goes_to_its_own_task_after_the_back_off(
    crew: Crew, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    overdue_with_chat(crew, chat_server, failing=True)
    retried: list[dict[str, Any]] = []
    monkeypatch.setattr(notification_tasks.deliver, "apply_async", lambda **kw: retried.append(kw))
    chat = Delivery.objects.get(channel=Channel.WEBHOOK)

    with time_machine.travel(OVERDUE_AT, tick=False):
        sent, more = deliveries_dispatch()

    assert not more
    assert sent == Delivery.objects.filter(channel=Channel.EMAIL).count()
    assert retried == [{"kwargs": {"delivery_id": chat.pk}, "countdown": notification_services.RETRY_BACKOFF}]
    chat.refresh_from_db()
    assert (chat.status, chat.attempts) == (Delivery.Status.PENDING, 1)


@pytest.mark.django_db
def test_the_dispatch_task_asks_again_when_more_wait(
    monkeypatch: pytest.MonkeyPatch, clock: Clock, asked: list[dict[str, Any]]
) -> None:
    results = iter([(500, True), (3, False)])
    monkeypatch.setattr(notification_services, "deliveries_dispatch", lambda: next(results))

    assert notification_tasks.dispatch.run() == 500
    assert len(asked) == 1
    assert notification_tasks.dispatch.run() == 3
    assert len(asked) == 1


def other_connection() -> psycopg.Connection[Any]:
    return psycopg.connect(**connection.get_connection_params(), autocommit=False)


@pytest.mark.django_db(transaction=True)
def test_a_dispatch_skips_a_delivery_another_task_is_sending(
    crew: Crew, chat_server: ChatServer, mailoutbox: list[Any]
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    overdue_with_chat(crew, chat_server)
    held = Delivery.objects.filter(channel=Channel.WEBHOOK).get()
    others = Delivery.objects.exclude(pk=held.pk).count()
    with other_connection() as other:
        other.execute("SELECT id FROM notifications_delivery WHERE id = %s FOR UPDATE", [held.pk])

        with time_machine.travel(OVERDUE_AT, tick=False):
            assert deliveries_dispatch() == (others, False)  # did not wait for the lock

        other.rollback()
    held.refresh_from_db()
    assert held.status == Delivery.Status.PENDING
    assert chat_server.received() == []
