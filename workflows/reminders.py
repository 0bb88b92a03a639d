"""Who is told what, and when: notifications for stage changes, assignments and mentions (written in
the caller's transaction), and the sweeps Celery beat runs (SLA, due dates, daily digest)."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Case, F, OuterRef, Q, QuerySet, Subquery, When
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_noop

from notifications.models import Kind, SentMarker, WebhookEndpoint
from notifications.services import Item, Words, mark_once, notify
from opsteam.db import PreparedQuery
from roles.models import Membership, Role, Team, role_flag
from worktime.hours import CalendarDef, add_working_seconds
from worktime.selectors import calendar_definition

from .models import Comment, IterationLoop, Requirement, Stage, StageEvent, StageReminder

DIGEST_HOUR = 9


# ------------------------------------------------------------------------------------------ deadlines


def sla_deadlines(
    *, team: Team, stage: Stage, entered_at: dt.datetime, calendar: CalendarDef | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """When a visit to `stage` entered at `entered_at` passes 100 % and 200 % of its SLA."""
    if not stage.sla_hours:
        return None, None
    seconds = stage.sla_hours * 3600
    if calendar is None:
        return entered_at + dt.timedelta(seconds=seconds), entered_at + dt.timedelta(seconds=2 * seconds)
    return add_working_seconds(entered_at, seconds, calendar), add_working_seconds(
        entered_at, 2 * seconds, calendar
    )


class _Unread:
    """The team's calendar has not been read yet (set_sla reads it when the stage has an SLA)."""


CALENDAR_UNREAD: CalendarDef | _Unread | None = _Unread()


def set_sla(
    requirement: Requirement,
    *,
    stage: Stage | None,
    entered_at: dt.datetime,
    calendar: CalendarDef | _Unread | None = CALENDAR_UNREAD,
) -> list[str]:
    """Set the SLA fields for a new stage visit (None: the requirement closed); returns the fields.
    `calendar` is the team's working-hours calendar when the caller knows it (None: calendar time);
    by default it is read, and only when the stage has an SLA."""
    if stage is None or not stage.sla_hours:
        due = escalate = None
    else:
        if isinstance(calendar, _Unread):
            calendar = calendar_definition(team=requirement.team)
        due, escalate = sla_deadlines(
            team=requirement.team, stage=stage, entered_at=entered_at, calendar=calendar
        )
    requirement.sla_due_at = due
    requirement.sla_escalate_at = escalate
    requirement.sla_next_at = due
    return ["sla_due_at", "sla_escalate_at", "sla_next_at"]


# -------------------------------------------------------------------------------------------- helpers


def _link(requirement: Requirement) -> str:
    return reverse("requirement", kwargs={"key": requirement.key})


def _role_holders(team_ids: Iterable[int]) -> dict[tuple[int, str], set[int]]:
    """(team id, role) → ids of the team's members holding the role: one query for every role, so a
    sweep's count does not depend on which stages its requirements wait in."""
    ids = set(team_ids)
    if not ids:
        return {}
    flags = [role_flag(role) for role in Role.values]
    found: dict[tuple[int, str], set[int]] = defaultdict(set)
    for team_id, user_id, *held in Membership.objects.filter(team_id__in=ids).values_list(
        "team_id", "user_id", *flags
    ):
        for role, holds in zip(Role.values, held, strict=True):
            if holds:
                found[(team_id, role)].add(user_id)
    return found


def format_duration(seconds: float) -> str:
    hours = int(seconds // 3600)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    return f"{hours}h"


# --------------------------------------------------------------------------- in the caller's transaction


def _stage_people(
    *, owner_roles: Sequence[str], team_id: int | None, assignee_id: int | None, actor_id: int | None
) -> QuerySet[User]:
    """The members of the team who hold one of `owner_roles`, and the assignee, but not the actor,
    with their notification settings."""
    owning = Q()
    for role in owner_roles:
        owning |= Q(**{role_flag(role): True})
    # A subquery, not a join: the (team, user) index finds the owners, and nobody comes back twice.
    owners = Membership.objects.filter(owning, team_id=team_id) if owning else Membership.objects.none()
    condition = Q(pk__in=owners.values("user_id"))
    if assignee_id:
        condition |= Q(pk=assignee_id)
    return User.objects.filter(condition).exclude(pk=actor_id).select_related("notification_settings")


# One prepared query per shape: the stage's owner roles, and whether the requirement has an assignee.
_STAGE_PEOPLE: dict[tuple[tuple[str, ...], bool], PreparedQuery] = {}
_PLACEHOLDERS = {"team_id": 2_101_234_570, "assignee_id": 2_101_234_571, "actor_id": 2_101_234_572}


def _stage_people_prepared(owner_roles: tuple[str, ...], assigned: bool) -> PreparedQuery:
    prepared = _STAGE_PEOPLE.get((owner_roles, assigned))
    if prepared is None:
        # Only the values that reach the SQL: no owner roles, no team.
        names = ["actor_id", *(["team_id"] if owner_roles else []), *(["assignee_id"] if assigned else [])]
        prepared = _STAGE_PEOPLE[(owner_roles, assigned)] = PreparedQuery(
            lambda team_id=None, assignee_id=None, actor_id=None: _stage_people(
                owner_roles=owner_roles, team_id=team_id, assignee_id=assignee_id, actor_id=actor_id
            ),
            **{name: _PLACEHOLDERS[name] for name in names},
        )
    return prepared


def notify_stage_entered(
    *,
    requirement: Requirement,
    stage: Stage,
    actor: User,
    webhooks: Sequence[WebhookEndpoint] | None = None,
) -> None:
    """Your turn: the members who own the stage, and the assignee, learn that it waits on them. The
    people are read with their notification settings in one query (compiled once per shape). `webhooks`
    are the team's active webhooks when the caller knows them (an empty list when it has none); by
    default they are read."""
    owner_roles = tuple(stage.owner_roles)
    assigned = bool(requirement.assignee_id)
    if type(actor.pk) is int and all(type(role) is str for role in owner_roles):
        values = {
            "actor_id": actor.pk,
            "team_id": requirement.team_id,
            "assignee_id": requirement.assignee_id,
        }
        prepared = _stage_people_prepared(owner_roles, assigned)
        found: list[User] = prepared.run(**{name: values[name] for name in prepared.placeholders})
    else:
        found = list(
            _stage_people(
                owner_roles=owner_roles,
                team_id=requirement.team_id,
                assignee_id=requirement.assignee_id,
                actor_id=actor.pk,
            )
        )
    people = {user.pk: user for user in found}
    recipients = sorted(people)
    notify(
        [
            Item(
                recipient_id=user_id,
                team_id=requirement.team_id,
                requirement_id=requirement.pk,
                kind=Kind.YOUR_TURN,
                message=gettext_noop("%(key)s %(title)s is now in %(stage)s"),
                params={"key": requirement.key, "title": requirement.title, "stage": Words(stage.name)},
                link=_link(requirement),
            )
            for user_id in recipients
        ],
        users=list(people.values()),
        webhooks=webhooks,
    )


def notify_assigned(*, requirement: Requirement, actor: User) -> None:
    if not requirement.assignee_id or requirement.assignee_id == actor.pk:
        return
    notify(
        [
            Item(
                recipient_id=requirement.assignee_id,
                team_id=requirement.team_id,
                requirement_id=requirement.pk,
                kind=Kind.YOUR_TURN,
                message=gettext_noop("%(who)s assigned %(key)s %(title)s to you"),
                params={"who": str(actor), "key": requirement.key, "title": requirement.title},
                link=_link(requirement),
            )
        ]
    )


MENTION = re.compile(r"(?<![\w@])@([\w.@+-]{1,150})")


def notify_mentions(*, comment: Comment, requirement: Requirement, actor: User) -> list[int]:
    """Tell the team members a comment @mentions; returns their ids."""
    names = {name.rstrip(".") for name in MENTION.findall(comment.body)}
    if not names:
        return []
    mentioned = list(
        Membership.objects.filter(team_id=requirement.team_id, user__username__in=names)
        .exclude(user_id=actor.pk)
        .values_list("user_id", flat=True)
    )
    notify(
        [
            Item(
                recipient_id=user_id,
                team_id=requirement.team_id,
                requirement_id=requirement.pk,
                kind=Kind.MENTIONED,
                message=gettext_noop("%(who)s mentioned you on %(key)s"),
                params={"who": str(actor), "key": requirement.key},
                body=comment.body[:1000],
                link=_link(requirement),
            )
            for user_id in mentioned
        ]
    )
    return mentioned


# ------------------------------------------------------------------------------------------------ sweeps


def _latest_event() -> Subquery:
    return Subquery(
        StageEvent.objects.filter(requirement_id=OuterRef("pk")).order_by("-at", "-id").values("pk")[:1]
    )


def _current_loop() -> Subquery:
    # order_by(): the loop's default ordering would join the requirement and its team to sort one row.
    return Subquery(
        IterationLoop.objects.filter(requirement_id=OuterRef("pk"), number=OuterRef("loop_number"))
        .order_by()
        .values("pk")[:1]
    )


def sla_sweep(*, now: dt.datetime | None = None, batch: int | None = None) -> tuple[int, bool]:
    """Remind at 100 % of a stage's SLA and escalate to the leads at 200 %, once per stage visit.
    Returns (reminders sent, whether more may be waiting). A constant number of queries, however many
    visits are due: by default every due visit is taken in one pass (at most one per open requirement,
    ~3,300 reminders from 6,000 open requirements in ~1 s; BENCHMARKS.md), their rows locked for that
    long. `batch` caps the visits taken, and `more` then says whether to sweep again."""
    now = now or timezone.now()
    with transaction.atomic():
        queryset = Requirement.objects.filter(closed_at__isnull=True, sla_next_at__lte=now)
        if connection.features.has_select_for_update_skip_locked:
            # Concurrent sweeps take disjoint batches; SQLite serialises writers instead.
            queryset = queryset.select_for_update(skip_locked=True, of=("self",))
        queryset = (
            queryset.select_related("stage", "team")
            .annotate(visit_id=_latest_event(), loop_pk=_current_loop())
            .order_by("sla_next_at", "pk")
        )
        candidates = list(queryset if batch is None else queryset[:batch])
        if not candidates:
            return 0, False
        done = set(
            StageReminder.objects.filter(visit_id__in=[r.visit_id for r in candidates]).values_list(
                "visit_id", "level"
            )
        )
        new: list[tuple[Requirement, int]] = []
        rows: list[StageReminder] = []
        for requirement in candidates:
            levels = [1] + ([2] if requirement.sla_escalate_at and requirement.sla_escalate_at <= now else [])
            for level in levels:
                if (requirement.visit_id, level) not in done:
                    new.append((requirement, level))
                    rows.append(
                        StageReminder(loop_id=requirement.loop_pk, visit_id=requirement.visit_id, level=level)
                    )
        StageReminder.objects.bulk_create(rows)
        # Next look: at the escalation when it is still ahead, otherwise never for this visit. One set-based
        # UPDATE (a bulk_update's CASE per row cost ~0.2 s per batch of 200).
        Requirement.objects.filter(pk__in=[r.pk for r in candidates]).update(
            sla_next_at=Case(When(sla_escalate_at__gt=now, then=F("sla_escalate_at")), default=None)
        )
        notify(_sla_items(new, now), now=now)
    return len(new), batch is not None and len(candidates) == batch


def _sla_items(new: Sequence[tuple[Requirement, int]], now: dt.datetime) -> list[Item]:
    if not new:
        return []
    holders = _role_holders({r.team_id for r, _level in new})
    waiting_on = _waiting_on([r for r, level in new if level == 1], holders)
    items = []
    for requirement, level in new:
        people = (
            waiting_on[requirement.pk] if level == 1 else holders.get((requirement.team_id, Role.LEAD), set())
        )
        params: dict[str, object] = {
            "key": requirement.key,
            "title": requirement.title,
            "stage": Words(requirement.stage.name),
            "elapsed": format_duration((now - requirement.stage_entered_at).total_seconds()),
            "sla": format_duration((requirement.stage.sla_hours or 0) * 3600),
        }
        message = (
            gettext_noop("%(key)s %(title)s has been in %(stage)s for %(elapsed)s, past its %(sla)s SLA")
            if level == 1
            else gettext_noop(
                "Escalation: %(key)s %(title)s has been in %(stage)s for %(elapsed)s, twice its %(sla)s SLA"
            )
        )
        items += [
            Item(
                recipient_id=user_id,
                team_id=requirement.team_id,
                requirement_id=requirement.pk,
                kind=Kind.STAGE_OVERDUE if level == 1 else Kind.ESCALATION,
                message=message,
                params=params,
                link=_link(requirement),
            )
            for user_id in sorted(people)
        ]
    return items


def _local_now(team: Team, now: dt.datetime) -> dt.datetime:
    return now.astimezone(ZoneInfo(team.time_zone))


def _is_workday(day: dt.date, calendar: CalendarDef | None) -> bool:
    return calendar.is_workday(day) if calendar else day.weekday() < 5


def _next_workday(day: dt.date, calendar: CalendarDef | None) -> dt.date:
    following = day + dt.timedelta(days=1)
    for _day in range(366):
        if _is_workday(following, calendar):
            return following
        following += dt.timedelta(days=1)
    return following


def due_sweep(*, now: dt.datetime | None = None) -> int:
    """Due dates: a reminder on the working day before (due soon) and on the day (due today), each
    once, from 09:00 in the team's time zone. Returns how many reminders were sent."""
    now = now or timezone.now()
    with transaction.atomic():
        window = (now - dt.timedelta(days=2)).date(), (now + dt.timedelta(days=14)).date()
        queryset = Requirement.objects.filter(closed_at__isnull=True, due_date__range=window)
        if connection.features.has_select_for_update_skip_locked:
            # Concurrent sweeps take disjoint requirements, so their markers never collide.
            queryset = queryset.select_for_update(skip_locked=True, of=("self",))
        requirements = list(queryset.select_related("team", "stage").order_by("pk"))
        calendars: dict[int, CalendarDef | None] = {}
        candidates: dict[str, tuple[Requirement, str]] = {}
        for requirement in requirements:
            team = requirement.team
            local = _local_now(team, now)
            if local.hour < DIGEST_HOUR or requirement.due_date is None:
                continue
            if team.pk not in calendars:
                calendars[team.pk] = calendar_definition(team=team)
            today = local.date()
            if requirement.due_date == today:
                level = Kind.DUE_TODAY
            elif _is_workday(today, calendars[team.pk]) and today < requirement.due_date <= _next_workday(
                today, calendars[team.pk]
            ):
                level = Kind.DUE_SOON
            else:
                continue
            candidates[f"due:{requirement.pk}:{requirement.due_date.isoformat()}:{level}"] = (
                requirement,
                level,
            )
        # One query for the markers already set and one to set the new ones, however many are due.
        done = set(SentMarker.objects.filter(key__in=list(candidates)).values_list("key", flat=True))
        SentMarker.objects.bulk_create(SentMarker(key=key) for key in candidates if key not in done)
        due = [reminder for key, reminder in candidates.items() if key not in done]
        people = _waiting_on([r for r, _level in due], _role_holders({r.team_id for r, _level in due}))
        items = [
            Item(
                recipient_id=user_id,
                team_id=requirement.team_id,
                requirement_id=requirement.pk,
                kind=level,
                message=(
                    gettext_noop("%(key)s %(title)s is due today")
                    if level == Kind.DUE_TODAY
                    else gettext_noop("%(key)s %(title)s is due on %(date)s")
                ),
                params={
                    "key": requirement.key,
                    "title": requirement.title,
                    "date": str(requirement.due_date),
                },
                link=_link(requirement),
            )
            for requirement, level in due
            for user_id in sorted(people[requirement.pk])
        ]
        notify(items, now=now)
    return len(items)


def _waiting_on(
    requirements: Sequence[Requirement], holders: dict[tuple[int, str], set[int]]
) -> dict[int, set[int]]:
    """requirement id → who it waits on: its assignee, or else the members owning its stage (`holders`
    as `_role_holders` reads them for the requirements' teams)."""
    found: dict[int, set[int]] = {}
    for requirement in requirements:
        if requirement.assignee_id:
            found[requirement.pk] = {requirement.assignee_id}
        else:
            found[requirement.pk] = set().union(
                *(holders.get((requirement.team_id, role), set()) for role in requirement.stage.owner_roles)
            )
    return found


def digest_sweep(*, now: dt.datetime | None = None) -> int:
    """From 09:00 in each team's time zone, once a day, each member gets what waits on them, what is
    overdue and what moved yesterday; nobody with nothing waiting gets anything. Returns digests sent."""
    now = now or timezone.now()
    due: dict[str, tuple[Team, dt.date]] = {}
    for team in Team.objects.all():
        local = _local_now(team, now)
        if local.hour >= DIGEST_HOUR:
            due[_digest_key(team, local.date())] = (team, local.date())
    # Each team's digest goes out once a day, at the first sweep from 09:00: someone whose queue fills
    # later in the day hears of it in tomorrow's digest, not in a second "daily" one at 15:00.
    done = set(SentMarker.objects.filter(key__in=list(due)).values_list("key", flat=True))
    sent = 0
    for key, (team, today) in sorted(due.items()):
        if key in done:
            continue
        with transaction.atomic():
            if mark_once(key):  # a concurrent sweep that got here first has sent it
                sent += _team_digest(team=team, now=now, today=today)
    return sent


def _digest_key(team: Team, today: dt.date) -> str:
    return f"digest:{team.pk}:{today.isoformat()}"


def _team_digest(*, team: Team, now: dt.datetime, today: dt.date) -> int:
    """Caller holds a transaction and the day's digest marker. A constant number of queries per team."""
    members = list(Membership.objects.filter(team=team))
    open_requirements = list(
        Requirement.objects.filter(team=team, closed_at__isnull=True)
        .select_related("stage")
        .order_by("stage_entered_at", "id")
    )
    yesterday = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(0), ZoneInfo(team.time_zone))
    moved: dict[int, list[StageEvent]] = defaultdict(list)
    for event in (
        StageEvent.objects.filter(
            requirement__team=team, at__gte=yesterday, at__lt=yesterday + dt.timedelta(days=1)
        )
        .exclude(kind="create")
        .select_related("requirement")
        .order_by("at", "id")
    ):
        moved[event.requirement_id].append(event)
    items = []
    for membership in members:
        roles = membership.roles
        waiting = [
            r
            for r in open_requirements
            if r.assignee_id == membership.user_id or (not r.assignee_id and roles & set(r.stage.owner_roles))
        ]
        if not waiting:
            continue
        overdue = [r for r in waiting if r.sla_due_at and r.sla_due_at <= now]
        waiting_ids = {r.pk for r in waiting}
        lines: list[tuple[str, dict[str, object]]] = [
            (gettext_noop("Waiting on you (%(n)d):"), {"n": len(waiting)})
        ]
        lines += [
            (
                "- %(key)s %(title)s · %(stage)s",
                {"key": r.key, "title": r.title, "stage": Words(r.stage.name)},
            )
            for r in waiting[:30]
        ]
        if overdue:
            lines.append((gettext_noop("Past the SLA (%(n)d):"), {"n": len(overdue)}))
            lines += [("- %(key)s %(title)s", {"key": r.key, "title": r.title}) for r in overdue[:30]]
        events = [
            event
            for pk, evs in moved.items()
            if pk in waiting_ids or evs[0].requirement.assignee_id == membership.user_id
            for event in evs
        ]
        if events:
            lines.append((gettext_noop("Moved yesterday:"), {}))
            lines += [
                (
                    "- %(key)s %(from)s → %(to)s",
                    {"key": e.requirement.key, "from": e.from_stage, "to": e.to_stage or e.kind},
                )
                for e in events
            ]
        items.append(
            Item(
                recipient_id=membership.user_id,
                team_id=team.pk,
                kind=Kind.DAILY_DIGEST,
                message=gettext_noop("Daily digest: %(n)d waiting on you, %(late)d past the SLA"),
                params={"n": len(waiting), "late": len(overdue)},
                body_lines=tuple(lines),
                link=reverse("requirement-list") + f"?team={team.pk}&open=true",
            )
        )
    notify(items, now=now)
    return len(items)
