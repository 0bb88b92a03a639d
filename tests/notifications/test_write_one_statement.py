"""On PostgreSQL notify() writes the notifications, the deliveries and their links in one statement. It
must write exactly what the three ORM statements write (the reference, used on SQLite): the same rows,
the same links, every column, with parameters bound in the client and on the server."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications import services as notification_services
from notifications.models import Channel, Delivery, Kind, Notification, NotificationSettings, WebhookEndpoint
from notifications.services import Item, Words, notify
from opsteam.db import server_prepared
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import services

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one statement is PostgreSQL's"),
]

NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def snapshot() -> dict[str, Any]:
    """Every column of the rows written, without ids and creation times, and each delivery's items."""
    notifications = {
        n.pk: (n.recipient_id, n.team_id, n.requirement_id, n.kind, n.text, n.body, n.link, n.read_at)
        for n in Notification.objects.all()
    }
    deliveries = []
    for d in Delivery.objects.prefetch_related("notifications").order_by("pk"):
        carried = sorted(notifications[n.pk] for n in d.notifications.all())
        row = (d.channel, d.team_id, d.recipient_id, d.webhook_id, d.status, d.attempts, d.last_error)
        deliveries.append((row, d.not_before, d.sent_at, carried))
    return {"notifications": sorted(notifications.values()), "deliveries": deliveries}


def scene(crew: Crew) -> tuple[list[Item], list[WebhookEndpoint]]:
    """Items for several people: one in quiet hours and in Chinese, one who takes no email of this
    kind, one without an address; two chat webhooks with different kinds; two items on one subject."""
    NotificationSettings.objects.create(
        user=crew.pm,
        language="zh-hans",
        email_kinds=list(Kind.values),
        quiet_start=dt.time(14),
        quiet_end=dt.time(16, 30),
        time_zone="UTC",
    )
    NotificationSettings.objects.create(user=crew.engineer, email_kinds=[Kind.MENTIONED])
    crew.analyst.email = ""
    crew.analyst.save()
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title="Red packet", **READY_FIELDS
    )
    hooks = [
        WebhookEndpoint.objects.create(
            team=crew.team, name="a", url="http://127.0.0.1:9/a", kinds=[Kind.YOUR_TURN, Kind.MENTIONED]
        ),
        WebhookEndpoint.objects.create(
            team=crew.team, name="b", url="http://127.0.0.1:9/b", kinds=[Kind.MENTIONED]
        ),
    ]
    items = [
        Item(
            recipient_id=user.pk,
            team_id=crew.team.pk,
            requirement_id=requirement.pk,
            kind=kind,
            message="%(key)s is now in %(stage)s",
            params={"key": requirement.key, "stage": Words("Design")},
            body="x" * (400 if user == crew.ops else 0),
            link="/requirements/GROW-1/" + "y" * 400,
        )
        for user, kind in (
            (crew.pm, Kind.YOUR_TURN),
            (crew.engineer, Kind.YOUR_TURN),
            (crew.analyst, Kind.YOUR_TURN),
            (crew.ops, Kind.MENTIONED),
            (crew.pm, Kind.MENTIONED),
        )
    ]
    return items, hooks


@pytest.mark.parametrize("binding", ["client", "server"])
def test_one_statement_writes_what_the_orm_writes(
    crew: Crew, monkeypatch: pytest.MonkeyPatch, binding: str
) -> None:
    items, hooks = scene(crew)

    def write() -> tuple[list[int], dict[str, Any]]:
        with CaptureQueriesContext(connection) as queries:
            if binding == "server":
                with server_prepared():
                    ids = notify(items, now=NOW, webhooks=hooks)
            else:
                ids = notify(items, now=NOW, webhooks=hooks)
        written = snapshot()
        assert [d.pk for d in Delivery.objects.order_by("pk")] == ids
        inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
        Delivery.objects.all().delete()
        Notification.objects.all().delete()
        return [len(inserts)], written

    one, fast = write()
    with monkeypatch.context() as patch:
        patch.setattr(
            notification_services, "_write_in_one_statement", notification_services._write_with_the_orm
        )
        three, reference = write()

    assert (one, three) == ([1], [3])
    assert fast == reference
    assert len(reference["deliveries"]) == 4  # the pm's email (held) and the ops'; two chat posts
    assert any(row[0][0] == Channel.EMAIL and row[1] > NOW for row in reference["deliveries"])


@pytest.mark.parametrize("binding", ["client", "server"])
@pytest.mark.parametrize("only", [Channel.EMAIL, Channel.WEBHOOK, "none"])
def test_deliveries_of_one_channel_or_none(crew: Crew, binding: str, only: str) -> None:
    """Arrays of nothing but NULLs (no webhook, or no recipient) and no delivery at all."""
    item = Item(recipient_id=crew.pm.pk, team_id=crew.team.pk, kind=Kind.YOUR_TURN, message="hello")
    if only != Channel.EMAIL:
        crew.pm.email = ""
        crew.pm.save()
    hooks = []
    if only == Channel.WEBHOOK:
        hooks = [
            WebhookEndpoint.objects.create(
                team=crew.team, name="a", url="http://x.test/", kinds=[Kind.YOUR_TURN]
            )
        ]

    if binding == "server":
        with server_prepared():
            ids = notify([item], now=NOW, webhooks=hooks)
    else:
        ids = notify([item], now=NOW, webhooks=hooks)

    assert Notification.objects.get().text == "hello"
    assert list(Delivery.objects.values_list("pk", "channel")) == ([] if only == "none" else [(ids[0], only)])
    assert len(ids) == (0 if only == "none" else 1)


def test_the_statement_writes_every_column_of_the_three_tables() -> None:
    """A new field must be added to the statement first (or it would be left to its database default,
    which Django does not set)."""
    sql = notification_services._one_statement_sql()
    for model in (Notification, Delivery, Delivery.notifications.through):
        table = connection.ops.quote_name(model._meta.db_table)
        found = re.search(re.escape(f"INSERT INTO {table}") + r"\s*\(([^)]*)\)", sql)
        assert found, table
        written = {name.strip().strip('"') for name in found.group(1).split(",")}
        expected = {f.column for f in model._meta.concrete_fields}
        assert written == expected - ({"id"} if model is Delivery.notifications.through else set())
