"""Notifications: written in the caller's transaction (the database is the source of truth), sent on
external channels by a Celery dispatch that a commit asks for and that sends every due delivery (a
process asks at most once per DISPATCH_DELAY, so the worker sends in bursts rather than once per
move). A failed send is retried by one task per delivery; a lost task is repaired by the delivery
sweep; a delivery that was sent is never sent again."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput, NotFound

from .models import Channel, Delivery, Kind, Notification, NotificationSettings, SentMarker, WebhookEndpoint
from .selectors import team_for_lead

logger = logging.getLogger("opsteam.notifications")

MAX_ATTEMPTS = 6
# After a failed attempt a delivery waits RETRY_BACKOFF seconds, doubled after each further failure,
# at most RETRY_BACKOFF_MAX. The wait is kept in not_before, so the delivery sweep honours it too.
RETRY_BACKOFF = 30
RETRY_BACKOFF_MAX = 3600
DEFAULT_EMAIL_KINDS = frozenset(Kind.values)
# A commit that made deliveries due asks for a dispatch DISPATCH_DELAY seconds later, unless a
# dispatch this process asked for runs after it anyway (with DISPATCH_MARGIN to spare). An email or
# chat post therefore leaves about a second after the move; the in-app notification is there at once.
DISPATCH_DELAY = 1.0
DISPATCH_MARGIN = 0.2
# One dispatch sends at most this many deliveries, for at most this many seconds, then asks for
# another: well inside Celery's time limits (CELERY_TASK_SOFT_TIME_LIMIT), so hanging endpoints never
# get a send cut off after the other side accepted it.
DISPATCH_LIMIT = 500
DISPATCH_BUDGET = 60.0


class Words(str):
    """A parameter of a message that is itself translated (a stage name, say)."""


@dataclass(frozen=True)
class Item:
    """One notification to write: who, about what, and what it says. `message` is an untranslated
    message id with %(name)s parameters; it is translated into the recipient's language."""

    recipient_id: int
    team_id: int
    kind: str
    message: str
    params: dict[str, object] = field(default_factory=dict)
    requirement_id: int | None = None
    body: str = ""
    body_lines: tuple[tuple[str, dict[str, object]], ...] = ()  # (message, params) per line, translated
    link: str = ""

    def render(self, language: str | None) -> tuple[str, str]:
        """The text and the body in the recipient's language."""
        with translation.override(language or settings.LANGUAGE_CODE):
            text = _translate(self.message, self.params)
            lines = [_translate(message, params) for message, params in self.body_lines]
        return text, "\n".join(filter(None, [self.body, *lines]))


def _translate(message: str, params: dict[str, object]) -> str:
    values = {name: translation.gettext(v) if isinstance(v, Words) else v for name, v in params.items()}
    return translation.gettext(message) % values if values else translation.gettext(message)


class DeliveryFailed(Exception):
    """A send failed; the delivery will be tried again in `retry_in` seconds (its not_before)."""

    def __init__(self, message: str = "", retry_in: int = RETRY_BACKOFF) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def retry_delay(attempts: int) -> int:
    """Seconds to wait after `attempts` failed attempts."""
    return int(min(RETRY_BACKOFF * 2 ** max(attempts - 1, 0), RETRY_BACKOFF_MAX))


def notify(
    items: Sequence[Item],
    *,
    now: dt.datetime | None = None,
    users: Sequence[User] | None = None,
    webhooks: Sequence[WebhookEndpoint] | None = None,
) -> list[int]:
    """Write the in-app notifications and one pending delivery per person (email) and per webhook, each
    carrying all of that person's or webhook's items, so a sweep sends one message per destination.
    Must run inside the caller's transaction; the sends are queued after it commits.

    A caller that has already read the recipients (with `select_related("notification_settings")`)
    passes them as `users`, and the active webhooks of the items' teams as `webhooks` (an empty list
    when there are none); otherwise each is read here."""
    if not items:
        return []
    now = now or timezone.now()
    wanted = {item.recipient_id for item in items}
    if users is None:
        recipients = list(User.objects.filter(pk__in=wanted).select_related("notification_settings"))
    else:
        recipients = [user for user in users if user.pk in wanted]
    settings_by_user = {
        user.pk: user.notification_settings for user in recipients if hasattr(user, "notification_settings")
    }
    # Nobody without an address gets an email delivery (it could only fail MAX_ATTEMPTS times).
    with_email = {user.pk for user in recipients if user.email}
    rendered = [item.render(_language_of(settings_by_user.get(item.recipient_id))) for item in items]
    # Each delivery carries items, named by their place in `items`.
    by_recipient: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        chosen = settings_by_user.get(item.recipient_id)
        kinds = DEFAULT_EMAIL_KINDS if chosen is None else frozenset(chosen.email_kinds)
        if item.kind in kinds and item.recipient_id in with_email:
            by_recipient[(item.recipient_id, item.team_id)].append(index)

    if webhooks is None:
        webhooks = list(WebhookEndpoint.objects.filter(team_id__in={i.team_id for i in items}, active=True))
    by_webhook: dict[int, list[int]] = defaultdict(list)
    for webhook in webhooks:
        seen: set[tuple[int | None, str]] = set()
        for index, item in enumerate(items):
            subject = (item.requirement_id, item.kind)
            if item.team_id == webhook.team_id and item.kind in webhook.kinds and subject not in seen:
                seen.add(subject)  # one line per requirement in chat, however many people were told
                by_webhook[webhook.pk].append(index)

    webhook_team = {w.pk: w.team_id for w in webhooks}
    sends = [
        _Send(Channel.EMAIL, team_id, user_id, None, _after_quiet_hours(settings_by_user.get(user_id), now))
        for user_id, team_id in by_recipient
    ]
    sends += [
        _Send(Channel.WEBHOOK, webhook_team[webhook_id], None, webhook_id, now) for webhook_id in by_webhook
    ]
    groups = [*by_recipient.values(), *by_webhook.values()]
    write = _write_in_one_statement if connection.vendor == "postgresql" else _write_with_the_orm
    delivery_ids = write(items, rendered, sends, groups)
    if any(send.not_before <= now for send in sends):
        transaction.on_commit(dispatch_soon)
    return delivery_ids


@dataclass(frozen=True)
class _Send:
    """A delivery to write."""

    channel: str
    team_id: int
    recipient_id: int | None
    webhook_id: int | None
    not_before: dt.datetime


def _write_with_the_orm(
    items: Sequence[Item],
    rendered: Sequence[tuple[str, str]],
    sends: Sequence[_Send],
    groups: list[list[int]],
) -> list[int]:
    """The notifications, the deliveries and their links, in three statements; the deliveries' ids."""
    notifications = Notification.objects.bulk_create(
        Notification(
            recipient_id=item.recipient_id,
            team_id=item.team_id,
            requirement_id=item.requirement_id,
            kind=item.kind,
            text=text[:300],
            body=body,
            link=item.link[:300],
        )
        for item, (text, body) in zip(items, rendered, strict=True)
    )
    created = Delivery.objects.bulk_create(
        Delivery(
            channel=send.channel,
            team_id=send.team_id,
            recipient_id=send.recipient_id,
            webhook_id=send.webhook_id,
            not_before=send.not_before,
        )
        for send in sends
    )
    Delivery.notifications.through.objects.bulk_create(
        Delivery.notifications.through(delivery_id=delivery.pk, notification_id=notifications[index].pk)
        for delivery, group in zip(created, groups, strict=True)
        for index in group
    )
    return [delivery.pk for delivery in created]


@functools.cache
def _one_statement_sql() -> str:
    """PostgreSQL: the notifications, the deliveries and their links in one statement. Ids are drawn
    from the tables' sequences first, so the links can name rows by their place in the arrays given."""
    quote = connection.ops.quote_name
    notification, delivery = Notification._meta.db_table, Delivery._meta.db_table
    link = Delivery.notifications.through._meta.db_table
    return f"""
        WITH items AS MATERIALIZED (
            SELECT nextval(pg_get_serial_sequence('{notification}', 'id')) AS id, i.*
            FROM unnest(%s::integer[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],
                        %s::text[])
                 WITH ORDINALITY AS i(recipient_id, team_id, requirement_id, kind, text, body, link, place)
        ), notified AS (
            INSERT INTO {quote(notification)} ("id", "recipient_id", "team_id", "requirement_id", "kind",
                                               "text", "body", "link", "created_at", "read_at")
            SELECT id, recipient_id, team_id, requirement_id, kind, text, body, link, %s, NULL FROM items
        ), sends AS MATERIALIZED (
            SELECT nextval(pg_get_serial_sequence('{delivery}', 'id')) AS id, d.*
            FROM unnest(%s::text[], %s::bigint[], %s::integer[], %s::bigint[], %s::timestamptz[])
                 WITH ORDINALITY AS d(channel, team_id, recipient_id, webhook_id, not_before, place)
        ), sent AS (
            INSERT INTO {quote(delivery)} ("id", "channel", "team_id", "recipient_id", "webhook_id",
                                           "status", "attempts", "last_error", "not_before",
                                           "created_at", "sent_at")
            SELECT id, channel, team_id, recipient_id, webhook_id, %s, 0, '', not_before, %s, NULL
            FROM sends
        ), linked AS (
            INSERT INTO {quote(link)} ("delivery_id", "notification_id")
            SELECT sends.id, items.id
            FROM unnest(%s::bigint[], %s::bigint[]) AS l(send, item)
            JOIN sends ON sends.place = l.send JOIN items ON items.place = l.item
        )
        SELECT id FROM sends ORDER BY place"""  # noqa: S608 (table names from the models, no input)


def _write_in_one_statement(
    items: Sequence[Item],
    rendered: Sequence[tuple[str, str]],
    sends: Sequence[_Send],
    groups: list[list[int]],
) -> list[int]:
    """What _write_with_the_orm writes, in one statement (PostgreSQL): the deliveries' ids."""
    created_at = timezone.now()  # as auto_now_add would set it
    links = [(place, index + 1) for place, group in enumerate(groups, start=1) for index in group]
    params = [
        [item.recipient_id for item in items],
        [item.team_id for item in items],
        [item.requirement_id for item in items],
        [str(item.kind) for item in items],
        [text[:300] for text, _body in rendered],
        [body for _text, body in rendered],
        [item.link[:300] for item in items],
        created_at,
        [str(send.channel) for send in sends],
        [send.team_id for send in sends],
        [send.recipient_id for send in sends],
        [send.webhook_id for send in sends],
        [send.not_before for send in sends],
        str(Delivery.Status.PENDING),
        created_at,
        [send for send, _item in links],
        [item for _send, item in links],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_one_statement_sql(), params)
        return [row[0] for row in cursor.fetchall()]


def _language_of(chosen: NotificationSettings | None) -> str | None:
    return chosen.language if chosen and chosen.language else None


def _after_quiet_hours(chosen: NotificationSettings | None, now: dt.datetime) -> dt.datetime:
    """`now`, or the end of the person's quiet hours when `now` falls inside them."""
    if chosen is None or chosen.quiet_start is None or chosen.quiet_end is None:
        return now
    if chosen.quiet_start == chosen.quiet_end:
        return now
    zone = ZoneInfo(chosen.time_zone)
    local = now.astimezone(zone)
    start, end = chosen.quiet_start, chosen.quiet_end
    moment = local.time()
    inside = start <= moment < end if start < end else (moment >= start or moment < end)
    if not inside:
        return now
    end_day = local.date() if moment < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(end_day, end, zone).astimezone(dt.UTC)


def enqueue_deliveries(delivery_ids: Iterable[int]) -> None:
    """Hand the sends to Celery. When the broker is down nothing is lost: the deliveries stay pending
    and the delivery sweep queues them again."""
    from .tasks import deliver

    for delivery_id in delivery_ids:
        try:
            deliver.delay(delivery_id=delivery_id)
        except Exception:  # the broker being unreachable must never fail the caller's request
            logger.warning(
                "broker unreachable; delivery %s waits for the next sweep", delivery_id, exc_info=True
            )
            return


class _Dispatch:
    """When the dispatch this process last asked for will run (time.monotonic()), 0 when none."""

    due = 0.0
    lock = threading.Lock()


def dispatch_soon() -> None:
    """Have a worker send every due delivery about DISPATCH_DELAY seconds from now. Asks the broker
    only when no dispatch this process asked for is still to run after this moment: that one sees
    this commit. With eager tasks (tests) the dispatch runs at once, every time. When the broker is
    down nothing is lost: the deliveries stay pending and the delivery sweep queues them."""
    from .tasks import dispatch

    eager = bool(dispatch.app.conf.task_always_eager)
    with _Dispatch.lock:  # held to decide, not while the broker answers (it may be down for seconds)
        now = time.monotonic()
        if not eager and now < _Dispatch.due - DISPATCH_MARGIN:
            return
        _Dispatch.due = claimed = now + DISPATCH_DELAY
    try:
        dispatch.apply_async(countdown=None if eager else DISPATCH_DELAY)
    except Exception:  # the broker being unreachable must never fail the caller's request
        logger.warning("broker unreachable; deliveries wait for the next sweep", exc_info=True)
        with _Dispatch.lock:
            if _Dispatch.due == claimed:  # the next commit asks again
                _Dispatch.due = 0.0


def deliveries_dispatch(*, limit: int = DISPATCH_LIMIT) -> tuple[int, bool]:
    """Send the due deliveries, oldest first, at most `limit` of them and for about DISPATCH_BUDGET
    seconds; returns (sent, whether more may wait).
    A delivery another task is sending is skipped; one whose send fails is handed to its own retrying
    task, which waits out the back-off its not_before holds."""
    from .tasks import deliver

    due = deliveries_due(limit=limit)
    sent = 0
    deadline = time.monotonic() + DISPATCH_BUDGET
    for delivery_id in due:
        if time.monotonic() > deadline:  # slow endpoints: leave the rest to the next dispatch
            return sent, True
        try:
            sent += delivery_send(delivery_id=delivery_id, wait=False) == "sent"
        except DeliveryFailed as exc:
            try:
                deliver.apply_async(kwargs={"delivery_id": delivery_id}, countdown=exc.retry_in)
            except Exception:  # the sweep queues it once its back-off has passed
                logger.warning("broker unreachable; delivery %s waits for the sweep", delivery_id)
    return sent, len(due) == limit


def deliveries_due(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """Pending deliveries whose time has come (one indexed query)."""
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, not_before__lte=now)
        .order_by("not_before")
        .values_list("pk", flat=True)[:limit]
    )


def delivery_send(*, delivery_id: int, now: dt.datetime | None = None, wait: bool = True) -> str:
    """Send one delivery, at most once. Holds the delivery's row lock while sending, so a task that
    runs twice finds it sent. With `wait` false a delivery another task holds is skipped rather than
    waited for. Raises DeliveryFailed while retries remain (and pushes not_before back by
    the back-off); marks it failed after MAX_ATTEMPTS."""
    from .channels import send

    with transaction.atomic():
        delivery = (
            # of=self: PostgreSQL cannot lock the nullable side of the outer joins to recipient/webhook.
            # The recipient comes with their settings (the language the email is written in).
            Delivery.objects.select_for_update(of=("self",), skip_locked=not wait)
            .select_related("recipient__notification_settings", "webhook", "team")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != Delivery.Status.PENDING:
            return "skipped"
        now = now or timezone.now()
        if delivery.not_before > now:
            return "waiting"
        carried = delivery.notifications.order_by("created_at", "id")
        if delivery.channel == Channel.WEBHOOK:
            carried = carried.select_related("requirement")  # a chat line names the requirement's key
        notifications = list(carried)
        delivery.attempts += 1
        try:
            send(delivery, notifications)
        except Exception as exc:
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = Delivery.Status.FAILED
                delivery.save(update_fields=["attempts", "last_error", "status"])
                logger.error("delivery %s failed for good: %s", delivery_id, delivery.last_error)
                return "failed"
            # The wait goes in the row, so neither the task's retry nor the sweep comes back sooner.
            retry_in = retry_delay(delivery.attempts)
            delivery.not_before = now + dt.timedelta(seconds=retry_in)
            delivery.save(update_fields=["attempts", "last_error", "not_before"])
            failure = exc
        else:
            delivery.status = Delivery.Status.SENT
            delivery.sent_at = timezone.now()
            delivery.save(update_fields=["attempts", "status", "sent_at"])
            return "sent"
    raise DeliveryFailed(f"{type(failure).__name__}: {failure}", retry_in) from failure


def mark_once(key: str) -> bool:
    """True the first time a key is marked; False ever after (the unique key is the guarantee).
    The caller holds a transaction; a concurrent duplicate waits for it and then finds the key."""
    _marker, created = SentMarker.objects.get_or_create(key=key)
    return created


def notification_mark_read(*, user: User, notification_ids: Iterable[int] | None = None) -> int:
    """Mark some or all of the user's unread notifications read; returns how many changed."""
    queryset = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if notification_ids is not None:
        ids = list(notification_ids)
        if not ids:
            return 0
        if Notification.objects.filter(pk__in=ids).exclude(recipient=user).exists():
            raise NotFound()
        queryset = queryset.filter(pk__in=ids)
    return queryset.update(read_at=timezone.now())


def settings_update(
    *,
    user: User,
    email_kinds: Iterable[str],
    quiet_start: dt.time | None,
    quiet_end: dt.time | None,
    time_zone: str,
    language: str = "",
) -> NotificationSettings:
    kinds = sorted(set(email_kinds))
    errors: dict[str, list[str]] = {}
    if set(kinds) - set(Kind.values):
        errors["email_kinds"] = [_("Unknown kind.")]
    if (quiet_start is None) != (quiet_end is None):
        errors["quiet_end"] = [_("Quiet hours need a start and an end.")]
    try:
        ZoneInfo(time_zone)
    except (ValueError, KeyError):
        errors["time_zone"] = [_("Unknown time zone.")]
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic():
        chosen, _created = NotificationSettings.objects.select_for_update().get_or_create(user=user)
        chosen.email_kinds = kinds
        chosen.quiet_start = quiet_start
        chosen.quiet_end = quiet_end
        chosen.time_zone = time_zone
        chosen.language = language
        chosen.save(update_fields=["email_kinds", "quiet_start", "quiet_end", "time_zone", "language"])
    return chosen


def _clean_webhook(fields: dict[str, object]) -> dict[str, object]:
    errors: dict[str, list[str]] = {}
    if "format" in fields and fields["format"] not in WebhookEndpoint.Format.values:
        errors["format"] = [_("Unknown format.")]
    if "kinds" in fields:
        kinds = fields["kinds"]
        if not isinstance(kinds, list) or set(kinds) - set(Kind.values):
            errors["kinds"] = [_("Unknown kind.")]
    url = fields.get("url")
    if url is not None and not str(url).startswith(("https://", "http://")):
        errors["url"] = [_("Enter an http(s) URL.")]
    if errors:
        raise InvalidInput(errors)
    return fields


def webhook_create(*, actor: User, team_id: int, **fields: object) -> WebhookEndpoint:
    with transaction.atomic():
        team = team_for_lead(user=actor, team_id=team_id)
        webhook = WebhookEndpoint(team=team, **_clean_webhook(fields))
        try:
            webhook.full_clean()
        except ValidationError as exc:
            raise InvalidInput(exc.message_dict) from exc
        webhook.save()
    return webhook


def webhook_update(*, actor: User, team_id: int, webhook_id: int, **fields: object) -> WebhookEndpoint:
    with transaction.atomic():
        team = team_for_lead(user=actor, team_id=team_id)
        webhook = (
            WebhookEndpoint.objects.select_for_update().filter(team=team, pk=webhook_id).first()
            if webhook_id < 2**63
            else None
        )
        if webhook is None:
            raise NotFound()
        for name, value in _clean_webhook(fields).items():
            setattr(webhook, name, value)
        try:
            webhook.full_clean()
        except ValidationError as exc:
            raise InvalidInput(exc.message_dict) from exc
        webhook.save(update_fields=[*fields])
    return webhook


def webhook_delete(*, actor: User, team_id: int, webhook_id: int) -> None:
    with transaction.atomic():
        team = team_for_lead(user=actor, team_id=team_id)
        deleted, _rows = (
            WebhookEndpoint.objects.filter(team=team, pk=webhook_id).delete()
            if webhook_id < 2**63
            else (0, {})
        )
        if not deleted:
            raise NotFound()


def language_set(*, user: User, language: str) -> NotificationSettings:
    """Remember the language the person picked: the web UI and their emails and reminders use it."""
    if language not in dict(settings.LANGUAGES):
        raise InvalidInput({"language": [_("Unknown language.")]})
    with transaction.atomic():
        chosen, _created = NotificationSettings.objects.select_for_update().get_or_create(
            user=user, defaults={"email_kinds": list(Kind.values)}
        )
        if chosen.language != language:
            chosen.language = language
            chosen.save(update_fields=["language"])
    return chosen
