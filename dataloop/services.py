"""Writes of the data loop. Keyword-only arguments, one transaction each; side effects after commit."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from notifications.models import Kind
from notifications.services import Item, notify
from opsteam.exceptions import InvalidInput, NotFound, RoleNotAllowed
from roles.models import Membership, Role, Team
from roles.permissions import roles_for, team_get_for_user
from workflows import services as workflow_services
from workflows.models import AarrrStage, IterationLoop, Priority, Requirement
from workflows.selectors import requirement_get_for_user

from . import imports, rules
from .models import (
    Comparison,
    Direction,
    Goal,
    Metric,
    MetricWatch,
    Observation,
    Period,
    Source,
    Strategy,
    WatchFiring,
)
from .presets import DEFAULT_METRICS
from .selectors import (
    before_after_for,
    goal_get_for_user,
    metric_get_for_user,
    observation_get_for_user,
    strategy_get_for_user,
    watch_get_for_user,
    watch_series,
    watches_to_evaluate,
)

logger = logging.getLogger("opsteam.events")

METRIC_EDITORS = frozenset({Role.OPS, Role.ANALYST, Role.LEAD})
OBSERVATION_WRITERS = frozenset({Role.OPS, Role.ANALYST, Role.LEAD})
WATCH_EDITORS = frozenset({Role.OPS, Role.ANALYST, Role.LEAD})
GOAL_EDITORS = frozenset({Role.OPS, Role.PM, Role.LEAD})
TEXT_LIMIT = 10_000
VALUE_LIMIT = imports.VALUE_LIMIT


def _team_for(actor: User, team_id: int, allowed: frozenset[str]) -> Team:
    """The team if the actor may see it (else NotFound) and holds one of the roles (else 403)."""
    team = team_get_for_user(user=actor, team_id=team_id)
    if not roles_for(user=actor, team=team) & allowed:
        raise RoleNotAllowed(allowed)
    return team


def _text(
    fields: Mapping[str, Any], name: str, errors: dict[str, list[str]], *, limit: int, required: bool
) -> str:
    value = fields.get(name)
    text = "" if value is None else str(value).strip()
    if required and not text:
        errors[name] = [_("This field is required.")]
    elif len(text) > limit:
        errors[name] = [_("At most %(n)d characters.") % {"n": limit}]
    return text


def _number(value: Any, name: str, errors: dict[str, list[str]], *, required: bool) -> Decimal | None:
    if value in (None, ""):
        if required:
            errors[name] = [_("This field is required.")]
        return None
    parsed = imports.parse_decimal(str(value)) if not isinstance(value, bool) else None
    if parsed is None:
        errors[name] = [_("Enter a number.")]
    return parsed


def _date(value: Any, name: str, errors: dict[str, list[str]]) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    parsed = imports.parse_date(str(value or ""))
    if parsed is None:
        errors[name] = [_("Enter a date as YYYY-MM-DD.")]
    return parsed


def _choice(
    value: Any, choices: Iterable[str], name: str, errors: dict[str, list[str]], *, blank: bool = False
) -> str:
    text = "" if value is None else str(value)
    if blank and not text:
        return ""
    allowed = list(choices)
    if text not in allowed:
        errors[name] = [_("Choose one of: %(choices)s.") % {"choices": ", ".join(allowed)}]
    return text


# ------------------------------------------------------------------------------------------- metrics


def metrics_prefill(*, team: Team) -> list[Metric]:
    """Give a new team the usual operations metrics, named in the language in use (a team setup hook)."""
    existing = set(Metric.objects.filter(team=team).values_list("name", flat=True))
    return Metric.objects.bulk_create(
        Metric(
            team=team,
            name=_(name),
            unit=_(unit) if unit else "",
            direction=direction,
            description=_(description),
        )
        for name, unit, direction, description in DEFAULT_METRICS
        if _(name) not in existing
    )


def _clean_metric(fields: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    unknown = sorted(set(fields) - {"name", "unit", "direction", "description"})
    if unknown:
        errors["detail"] = [_("Unknown fields: %(names)s.") % {"names": ", ".join(unknown)}]
    if "name" in fields or not partial:
        cleaned["name"] = _text(fields, "name", errors, limit=100, required=True)
    if "unit" in fields:
        cleaned["unit"] = _text(fields, "unit", errors, limit=20, required=False)
    if "direction" in fields or not partial:
        cleaned["direction"] = _choice(
            fields.get("direction", Direction.UP), Direction.values, "direction", errors
        )
    if "description" in fields:
        cleaned["description"] = _text(fields, "description", errors, limit=TEXT_LIMIT, required=False)
    if errors:
        raise InvalidInput(errors)
    return cleaned


def _name_taken(team_id: int, name: str, exclude: int | None = None) -> bool:
    same = Metric.objects.filter(team_id=team_id, name__iexact=name)
    return (same.exclude(pk=exclude) if exclude is not None else same).exists()


def metric_create(*, actor: User, team_id: int, **fields: Any) -> Metric:
    team = _team_for(actor, team_id, METRIC_EDITORS)
    cleaned = _clean_metric(fields, partial=False)
    if _name_taken(team.pk, cleaned["name"]):
        raise InvalidInput({"name": [_("The team already has a metric of this name.")]})
    try:
        with transaction.atomic():
            return Metric.objects.create(team=team, **cleaned)
    except IntegrityError as exc:  # the same name added meanwhile by someone else
        raise InvalidInput({"name": [_("The team already has a metric of this name.")]}) from exc


def metric_update(*, actor: User, metric_id: int, **fields: Any) -> Metric:
    with transaction.atomic():
        metric = _metric_locked(actor, metric_id)
        _team_for(actor, metric.team_id, METRIC_EDITORS)
        cleaned = _clean_metric(fields, partial=True)
        if "name" in cleaned and _name_taken(metric.team_id, cleaned["name"], exclude=metric.pk):
            raise InvalidInput({"name": [_("The team already has a metric of this name.")]})
        for name, value in cleaned.items():
            setattr(metric, name, value)
        if cleaned:
            try:
                with transaction.atomic():
                    metric.save(update_fields=list(cleaned))
            except IntegrityError as exc:
                raise InvalidInput({"name": [_("The team already has a metric of this name.")]}) from exc
    return metric


def metric_delete(*, actor: User, metric_id: int) -> None:
    """Only a metric nothing refers to: no observations, watches or goals (their history would go)."""
    with transaction.atomic():
        metric = _metric_locked(actor, metric_id)
        _team_for(actor, metric.team_id, METRIC_EDITORS)
        if (
            metric.observations.exists()
            or metric.watches.exists()
            or Goal.objects.filter(Q(metric=metric) | Q(first_level_metrics=metric)).exists()
        ):
            raise InvalidInput(
                {"detail": [_("This metric has observations, watches or goals; it cannot be deleted.")]}
            )
        metric.delete()


def _metric_locked(actor: User, metric_id: int) -> Metric:
    metric_get_for_user(user=actor, metric_id=metric_id)
    return Metric.objects.select_for_update().get(pk=metric_id)


# -------------------------------------------------------------------------------------- observations


def observation_record(
    *,
    actor: User,
    metric_id: int,
    date: Any,
    value: Any,
    segment: str = "",
    loop_id: int | None = None,
    source: str = Source.MANUAL,
) -> Observation:
    """Record a metric's value for a day (and segment). A second value for the same day replaces the
    first. The metric's watches are evaluated after commit."""
    metric = metric_get_for_user(user=actor, metric_id=metric_id)
    _team_for(actor, metric.team_id, OBSERVATION_WRITERS)
    errors: dict[str, list[str]] = {}
    day = _date(date, "date", errors)
    number = _number(value, "value", errors, required=True)
    segment = _text({"segment": segment}, "segment", errors, limit=100, required=False)
    _choice(source, Source.values, "source", errors)
    loop = None
    if loop_id is not None:
        loop = IterationLoop.objects.filter(pk=loop_id, requirement__team_id=metric.team_id).first()
        if loop is None:
            errors["loop"] = [_("No such loop in this team.")]
    if errors:
        raise InvalidInput(errors)
    assert day is not None and number is not None  # no errors: both parsed
    with transaction.atomic():
        observation, _created = Observation.objects.update_or_create(
            metric=metric,
            date=day,
            segment=segment,
            defaults={"value": number, "loop": loop, "source": source, "recorded_by": actor},
        )
        enqueue_watch_evaluation([metric.pk])
    return observation


def observation_delete(*, actor: User, observation_id: int) -> None:
    observation = observation_get_for_user(user=actor, observation_id=observation_id)
    _team_for(actor, observation.metric.team_id, OBSERVATION_WRITERS)
    with transaction.atomic():
        Observation.objects.filter(pk=observation.pk).delete()


def observations_import(*, actor: User | None, team_id: int, content: bytes) -> dict[str, int]:
    """Import observations from CSV into a team: every row is checked (metric known, number, date, loop)
    before anything is written; a bad row rejects the file with its line number. Rows that repeat what
    is stored change nothing, so importing a file twice adds nothing."""
    if actor is not None:
        team = _team_for(actor, team_id, OBSERVATION_WRITERS)
    else:
        team = Team.objects.filter(pk=team_id).first() or _raise_not_found()
    rows, problems = imports.read_csv_rows(content)
    metrics = {metric.name.casefold(): metric for metric in Metric.objects.filter(team=team)}
    keys = {row.loop_key for row in rows if row.loop_key}
    loops: dict[tuple[str, int], IterationLoop] = {}
    current: dict[str, int] = {}
    if keys:
        for requirement_key, loop_number in Requirement.objects.filter(team=team, key__in=keys).values_list(
            "key", "loop_number"
        ):
            current[requirement_key] = loop_number
        for loop in IterationLoop.objects.filter(
            requirement__team=team, requirement__key__in=keys
        ).select_related("requirement"):
            loops[(loop.requirement.key, loop.number)] = loop
    for row in rows:
        if row.metric.casefold() not in metrics:
            problems.append(
                imports.Problem(
                    message=_("Unknown metric “%(name)s”: add it to the catalogue first.")
                    % {"name": row.metric[:100]},
                    field="metric",
                    line=row.line,
                )
            )
        if row.loop_key:
            number = row.loop_number or current.get(row.loop_key)
            if number is None or (row.loop_key, number) not in loops:
                problems.append(
                    imports.Problem(message=_("No such loop in this team."), field="loop", line=row.line)
                )
    if problems:
        raise imports.ObservationsRejected(sorted(problems, key=lambda p: (p.line or 0, p.field)))
    created = updated = unchanged = 0
    with transaction.atomic():
        stored = {
            (o.metric_id, o.date, o.segment): o
            for o in Observation.objects.filter(
                metric__team=team,
                date__gte=min(row.date for row in rows),
                date__lte=max(row.date for row in rows),
            )
        }
        new: list[Observation] = []
        changed: list[Observation] = []
        for row in rows:
            metric = metrics[row.metric.casefold()]
            linked = (
                loops.get((row.loop_key, row.loop_number or current.get(row.loop_key, 0)))
                if row.loop_key
                else None
            )
            existing = stored.get((metric.pk, row.date, row.segment))
            if existing is None:
                new.append(
                    Observation(
                        metric=metric,
                        date=row.date,
                        segment=row.segment,
                        value=row.value,
                        loop=linked,
                        source=Source.IMPORT,
                        recorded_by=actor,
                    )
                )
            elif existing.value != row.value or existing.loop_id != (linked.pk if linked else None):
                existing.value = row.value
                existing.loop = linked
                existing.source = Source.IMPORT
                existing.recorded_by = actor
                changed.append(existing)
            else:
                unchanged += 1
        Observation.objects.bulk_create(new, batch_size=1000)
        Observation.objects.bulk_update(changed, ["value", "loop", "source", "recorded_by"], batch_size=1000)
        created, updated = len(new), len(changed)
        if new or changed:
            enqueue_watch_evaluation(sorted({o.metric_id for o in [*new, *changed]}))
    return {"created": created, "updated": updated, "unchanged": unchanged}


def _raise_not_found() -> Team:
    raise NotFound()


# ------------------------------------------------------------------------------------ conclusions


def conclusion_record(
    *,
    requirement_id: int,
    actor: User,
    conclusion: str,
    verdict: str,
    core_metric_moved: bool | None,
    behaviour_moved: bool | None,
    feedback_positive: bool | None,
    metric_id: int | None = None,
) -> IterationLoop:
    """Write the current loop's conclusion with the target metric's mean before and after the launch
    date read from the observations (the metric named, else the catalogue metric whose name is the
    requirement's target metric)."""
    requirement = requirement_get_for_user(user=actor, requirement_id=requirement_id)
    if not roles_for(user=actor, team=requirement.team_id) & {Role.ANALYST, Role.LEAD}:
        raise RoleNotAllowed({Role.ANALYST, Role.LEAD})
    metric = None
    if metric_id is not None:
        metric = Metric.objects.filter(pk=metric_id, team_id=requirement.team_id).first()
        if metric is None:
            raise InvalidInput({"metric": [_("No such metric in this team.")]})
    reading = before_after_for(requirement=requirement, metric=metric)
    return workflow_services.loop_record_analysis(
        requirement_id=requirement.pk,
        actor=actor,
        conclusion=conclusion,
        verdict=verdict,
        core_metric_moved=core_metric_moved,
        behaviour_moved=behaviour_moved,
        feedback_positive=feedback_positive,
        metric_name=reading.metric.name if reading.metric else "",
        metric_before=reading.values.before if reading.values else None,
        metric_after=reading.values.after if reading.values else None,
    )


# --------------------------------------------------------------------------------------------- watches

WATCH_FIELDS = (
    "name",
    "metric",
    "comparison",
    "threshold",
    "periods",
    "period",
    "is_active",
    "title",
    "aarrr_stage",
    "priority",
    "assignee",
    "owner_role",
    "description",
)


def _clean_watch(
    team: Team, fields: Mapping[str, Any], *, partial: bool, current: MetricWatch | None
) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    unknown = sorted(set(fields) - set(WATCH_FIELDS))
    if unknown:
        errors["detail"] = [_("Unknown fields: %(names)s.") % {"names": ", ".join(unknown)}]

    def wanted(name: str) -> bool:
        return name in fields or not partial

    if wanted("name"):
        cleaned["name"] = _text(fields, "name", errors, limit=120, required=True)
    if wanted("metric"):
        raw = fields.get("metric")
        metric_id = getattr(raw, "pk", raw)
        metric = (
            Metric.objects.filter(pk=metric_id, team=team).first() if isinstance(metric_id, int) else None
        )
        if metric is None:
            errors["metric"] = [_("Choose a metric of this team.")]
        cleaned["metric"] = metric
    if wanted("comparison"):
        cleaned["comparison"] = _choice(fields.get("comparison"), Comparison.values, "comparison", errors)
    if wanted("threshold"):
        cleaned["threshold"] = _number(fields.get("threshold"), "threshold", errors, required=False)
    if wanted("periods"):
        periods = fields.get("periods", 1)
        if isinstance(periods, str) and periods.strip().isdigit():
            periods = int(periods)
        if not isinstance(periods, int) or isinstance(periods, bool) or not 1 <= periods <= 90:
            errors["periods"] = [_("A whole number from 1 to 90.")]
        cleaned["periods"] = periods
    if wanted("period"):
        cleaned["period"] = _choice(fields.get("period", Period.DAY), Period.values, "period", errors)
    if "is_active" in fields:
        if not isinstance(fields["is_active"], bool):
            errors["is_active"] = [_("Must be true or false.")]
        cleaned["is_active"] = fields["is_active"]
    if wanted("title"):
        cleaned["title"] = _text(fields, "title", errors, limit=200, required=True)
    if wanted("aarrr_stage"):
        cleaned["aarrr_stage"] = _choice(
            fields.get("aarrr_stage", ""), AarrrStage.values, "aarrr_stage", errors, blank=True
        )
    if wanted("priority"):
        cleaned["priority"] = _choice(
            fields.get("priority", Priority.P1), Priority.values, "priority", errors
        )
    if wanted("assignee"):
        raw = fields.get("assignee")
        user_id = getattr(raw, "pk", raw)
        if user_id in (None, ""):
            cleaned["assignee_id"] = None
        elif (
            not isinstance(user_id, int) or not Membership.objects.filter(team=team, user_id=user_id).exists()
        ):
            errors["assignee"] = [_("The assignee must be a member of the team.")]
        else:
            cleaned["assignee_id"] = user_id
    if wanted("owner_role"):
        cleaned["owner_role"] = _choice(
            fields.get("owner_role", ""), Role.values, "owner_role", errors, blank=True
        )
    if wanted("description"):
        cleaned["description"] = _text(fields, "description", errors, limit=TEXT_LIMIT, required=False)

    comparison = cleaned.get("comparison", current.comparison if current else "")
    threshold = cleaned.get("threshold", current.threshold if current else None)
    if comparison in ("lt", "lte", "gt", "gte") and threshold is None and "threshold" not in errors:
        errors["threshold"] = [_("A comparison with < ≤ > ≥ needs a threshold.")]
    assignee = cleaned.get("assignee_id", current.assignee_id if current else None)
    owner_role = cleaned.get("owner_role", current.owner_role if current else "")
    if not assignee and not owner_role and "assignee" not in errors:
        errors["owner_role"] = [_("Choose an assignee or an owner role: someone must be told.")]
    if errors:
        raise InvalidInput(errors)
    return cleaned


def watch_create(*, actor: User, team_id: int, **fields: Any) -> MetricWatch:
    team = _team_for(actor, team_id, WATCH_EDITORS)
    cleaned = _clean_watch(team, fields, partial=False, current=None)
    with transaction.atomic():
        watch = MetricWatch.objects.create(team=team, created_by=actor, **cleaned)
        enqueue_watch_evaluation([watch.metric_id])
    return watch


def watch_update(*, actor: User, watch_id: int, **fields: Any) -> MetricWatch:
    watch = watch_get_for_user(user=actor, watch_id=watch_id)
    team = _team_for(actor, watch.team_id, WATCH_EDITORS)
    with transaction.atomic():
        watch = MetricWatch.objects.select_for_update().get(pk=watch.pk)
        cleaned = _clean_watch(team, fields, partial=True, current=watch)
        for name, value in cleaned.items():
            setattr(watch, name, value)
        if cleaned:
            watch.save(
                update_fields=[name.removesuffix("_id") if name.endswith("_id") else name for name in cleaned]
            )
        enqueue_watch_evaluation([watch.metric_id])
    return watch


def watch_delete(*, actor: User, watch_id: int) -> None:
    watch = watch_get_for_user(user=actor, watch_id=watch_id)
    _team_for(actor, watch.team_id, WATCH_EDITORS)
    with transaction.atomic():
        MetricWatch.objects.filter(pk=watch.pk).delete()


def enqueue_watch_evaluation(metric_ids: Iterable[int]) -> None:
    """After commit, ask a worker to evaluate the metrics' watches. A hint only: if the broker is down
    the hourly sweep evaluates them anyway."""
    ids = sorted(set(metric_ids))
    if not ids:
        return

    def send() -> None:
        from .tasks import evaluate_watches

        try:
            evaluate_watches.delay(metric_ids=ids)
        except Exception:  # the broker is down: the sweep will do it
            logger.warning("watch evaluation for metrics %s not queued; the sweep will run it", ids)

    transaction.on_commit(send)


# How many watches one evaluation transaction locks and reads. A batch costs the same few queries however
# many watches and observations it holds, plus a few for each watch that fires.
WATCH_BATCH = 100


def watch_evaluate(*, watch_id: int, now: dt.datetime | None = None) -> WatchFiring | None:
    """Evaluate one watch: if its metric has met the condition for the required consecutive periods
    (after the streak that fired it last) and the requirement it opened last is not open, open one from
    its template, record the firing, and tell the owners. Runs under the watch's row lock, and the
    firing is unique per streak, so concurrent or repeated runs fire at most once. An explicit `now`
    (demo history) dates the firing and the requirement it opens, and notifies nobody."""
    _watches, firings = _watch_batch_evaluate(scope=Q(pk=watch_id), now=now, skip_locked=False)
    return firings[0] if firings else None


def watches_evaluate(*, metric_ids: Iterable[int] | None = None, now: dt.datetime | None = None) -> int:
    """Evaluate the active watches (of the given metrics, or all), as watch_evaluate does each one, in
    batches of WATCH_BATCH in id order, one transaction per batch; returns how many fired. The sweep
    (all watches) skips a watch another evaluation holds, since that one is evaluating it; an evaluation
    for given metrics waits for it instead, so it reads the observations that asked for it."""
    scope = Q() if metric_ids is None else Q(metric_id__in=sorted(set(metric_ids)))
    fired = 0
    after = 0
    while True:
        watches, firings = _watch_batch_evaluate(
            scope=scope & Q(pk__gt=after), now=now, skip_locked=metric_ids is None
        )
        fired += len(firings)
        if len(watches) < WATCH_BATCH:
            return fired
        after = watches[-1].pk


def _watch_batch_evaluate(
    *, scope: Q, now: dt.datetime | None, skip_locked: bool
) -> tuple[list[MetricWatch], list[WatchFiring]]:
    """Lock up to WATCH_BATCH active watches in `scope`, read the recent windows of their metrics, and
    fire those whose condition holds: the watches evaluated and the firings, in one transaction. Three
    queries when none fires, whatever the number of watches and observations."""
    opened_at = now
    now = now or timezone.now()
    with transaction.atomic():
        watches = watches_to_evaluate(scope=scope, limit=WATCH_BATCH, skip_locked=skip_locked)
        if not watches:
            return [], []
        due = [w for w in watches if w.open_requirement is None or w.open_requirement.is_closed]
        series = watch_series(due)
        fired: list[tuple[MetricWatch, rules.Streak]] = []
        for watch in due:
            streak = rules.firing_streak(
                series[watch.pk],
                comparison=watch.comparison,
                threshold=watch.threshold,
                periods=watch.periods,
                period=watch.period,
                after=watch.fired_through,
            )
            if streak is not None:
                fired.append((watch, streak))
        MetricWatch.objects.filter(pk__in=[watch.pk for watch in watches]).update(evaluated_at=now)
        for watch in watches:
            watch.evaluated_at = now
        firings = _watches_fire(fired, now=now, opened_at=opened_at) if fired else []
    return watches, firings


def _watches_fire(
    fired: list[tuple[MetricWatch, rules.Streak]], *, now: dt.datetime, opened_at: dt.datetime | None
) -> list[WatchFiring]:
    """Open a requirement from each watch's template, record the firings and tell the owners (unless
    backdated). The caller holds the watches' row locks, so no other run records a firing for them
    meanwhile; a streak already recorded (the unique firing) is skipped rather than failing the batch."""
    recorded = set(
        WatchFiring.objects.filter(
            watch_id__in=[watch.pk for watch, _streak in fired],
            streak_end__in=sorted({streak.end for _watch, streak in fired}),
        ).values_list("watch_id", "streak_end")
    )
    # Opening a requirement locks its team's row until the batch commits: taking them in team order
    # keeps two batches firing in the same teams from deadlocking.
    fired = sorted(
        ((watch, streak) for watch, streak in fired if (watch.pk, streak.end) not in recorded),
        key=lambda pair: (pair[0].team_id, pair[0].pk),
    )
    if not fired:
        return []
    members = _members_by_team({watch.team_id for watch, _streak in fired})
    firings: list[WatchFiring] = []
    for watch, streak in fired:
        requirement = _open_from_template(watch, streak, at=opened_at, members=members[watch.team_id])
        watch.open_requirement = requirement
        watch.fired_through = streak.end
        logger.info("watch %s fired: opened %s", watch.pk, requirement.key)
        firings.append(
            WatchFiring(
                watch=watch,
                fired_at=now,
                streak_start=streak.start,
                streak_end=streak.end,
                values=[str(value.normalize()) for value in streak.values],
                requirement=requirement,
            )
        )
    firings = WatchFiring.objects.bulk_create(firings)
    MetricWatch.objects.bulk_update(
        [watch for watch, _streak in fired], ["open_requirement", "fired_through"]
    )
    if opened_at is None:  # backdated evaluations (demo history) tell nobody, as backdated moves don't
        notify([item for firing in firings for item in _watch_fired_items(firing, members)])
    return firings


def _members_by_team(team_ids: Iterable[int]) -> dict[int, list[Membership]]:
    members: dict[int, list[Membership]] = {team_id: [] for team_id in team_ids}
    for membership in Membership.objects.filter(team_id__in=members):
        members[membership.team_id].append(membership)
    return members


def _open_from_template(
    watch: MetricWatch, streak: rules.Streak, *, at: dt.datetime | None, members: list[Membership]
) -> Requirement:
    """`members` are the watch's team's memberships: the template's assignee gets the requirement only
    while still a member."""
    values = ", ".join(_format_value(value, watch.metric.unit) for value in streak.values)
    note = _("Opened by the metric watch “%(name)s”: %(metric)s was %(values)s (%(start)s to %(end)s).") % {
        "name": watch.name,
        "metric": watch.metric.name,
        "values": values,
        "start": streak.start.isoformat(),
        "end": streak.end.isoformat(),
    }
    fields: dict[str, Any] = {
        "description": watch.description,
        "aarrr_stage": watch.aarrr_stage,
        "priority": watch.priority,
        "target_metric": watch.metric.name,
    }
    if watch.assignee_id and any(membership.user_id == watch.assignee_id for membership in members):
        fields["assignee"] = watch.assignee_id
    return workflow_services.requirement_create(
        team=watch.team, actor=None, title=watch.title, at=at, origin=f"watch:{watch.pk}", note=note, **fields
    )


def _format_value(value: Decimal, unit: str) -> str:
    text = f"{value.quantize(Decimal('0.01')).normalize():f}"
    return f"{text}{unit}" if unit in ("%", "‰") else f"{text} {unit}".strip()


def _watch_fired_items(firing: WatchFiring, members: Mapping[int, list[Membership]]) -> list[Item]:
    """The notifications of one firing: to the requirement's assignee and the members holding the
    watch's owner role."""
    watch, requirement = firing.watch, firing.requirement
    assert requirement is not None  # just opened
    recipients: set[int] = set()
    if requirement.assignee_id:
        recipients.add(requirement.assignee_id)
    if watch.owner_role:
        recipients |= {m.user_id for m in members[watch.team_id] if watch.owner_role in m.roles}
    return [
        Item(
            recipient_id=user_id,
            team_id=watch.team_id,
            requirement_id=requirement.pk,
            kind=Kind.WATCH_FIRED,
            message=gettext_noop("Metric watch “%(watch)s” fired: %(key)s %(title)s was opened"),
            params={"watch": watch.name, "key": requirement.key, "title": requirement.title},
            link=reverse("requirement", kwargs={"key": requirement.key}),
        )
        for user_id in sorted(recipients)
    ]


# ----------------------------------------------------------------------------------------------- goals

GOAL_FIELDS = ("title", "metric", "target", "start", "end", "description", "first_level_metrics")


def _clean_goal(
    team: Team, fields: Mapping[str, Any], *, partial: bool, current: Goal | None
) -> tuple[dict[str, Any], list[Metric] | None]:
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    unknown = sorted(set(fields) - set(GOAL_FIELDS))
    if unknown:
        errors["detail"] = [_("Unknown fields: %(names)s.") % {"names": ", ".join(unknown)}]

    def wanted(name: str) -> bool:
        return name in fields or not partial

    if wanted("title"):
        cleaned["title"] = _text(fields, "title", errors, limit=200, required=True)
    if wanted("metric"):
        raw = fields.get("metric")
        metric_id = getattr(raw, "pk", raw)
        metric = (
            Metric.objects.filter(pk=metric_id, team=team).first() if isinstance(metric_id, int) else None
        )
        if metric is None:
            errors["metric"] = [_("Choose a metric of this team.")]
        cleaned["metric"] = metric
    if wanted("target"):
        cleaned["target"] = _number(fields.get("target"), "target", errors, required=True)
    if wanted("start"):
        cleaned["start"] = _date(fields.get("start"), "start", errors)
    if wanted("end"):
        cleaned["end"] = _date(fields.get("end"), "end", errors)
    if wanted("description"):
        cleaned["description"] = _text(fields, "description", errors, limit=TEXT_LIMIT, required=False)
    first_level = None
    if "first_level_metrics" in fields:
        raw_ids = [getattr(v, "pk", v) for v in (fields["first_level_metrics"] or [])]
        first_level = list(
            Metric.objects.filter(team=team, pk__in=[i for i in raw_ids if isinstance(i, int)])
        )
        if len(first_level) != len(set(raw_ids)):
            errors["first_level_metrics"] = [_("Choose metrics of this team.")]
    start = cleaned.get("start", current.start if current else None)
    end = cleaned.get("end", current.end if current else None)
    if start and end and end < start and "end" not in errors:
        errors["end"] = [_("The end comes before the start.")]
    if errors:
        raise InvalidInput(errors)
    return cleaned, first_level


def goal_create(*, actor: User, team_id: int, **fields: Any) -> Goal:
    team = _team_for(actor, team_id, GOAL_EDITORS)
    cleaned, first_level = _clean_goal(team, fields, partial=False, current=None)
    with transaction.atomic():
        goal = Goal.objects.create(team=team, created_by=actor, **cleaned)
        if first_level is not None:
            goal.first_level_metrics.set(first_level)
    return goal


def goal_update(*, actor: User, goal_id: int, **fields: Any) -> Goal:
    goal = goal_get_for_user(user=actor, goal_id=goal_id)
    team = _team_for(actor, goal.team_id, GOAL_EDITORS)
    with transaction.atomic():
        goal = Goal.objects.select_for_update().get(pk=goal.pk)
        cleaned, first_level = _clean_goal(team, fields, partial=True, current=goal)
        for name, value in cleaned.items():
            setattr(goal, name, value)
        if cleaned:
            goal.save(update_fields=list(cleaned))
        if first_level is not None:
            goal.first_level_metrics.set(first_level)
    return goal


def goal_delete(*, actor: User, goal_id: int) -> None:
    goal = goal_get_for_user(user=actor, goal_id=goal_id)
    _team_for(actor, goal.team_id, GOAL_EDITORS)
    with transaction.atomic():
        Goal.objects.filter(pk=goal.pk).delete()


def _clean_strategy(
    goal: Goal, fields: Mapping[str, Any], *, partial: bool
) -> tuple[dict[str, Any], list[int] | None]:
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    unknown = sorted(set(fields) - {"title", "description", "metric", "requirements", "order"})
    if unknown:
        errors["detail"] = [_("Unknown fields: %(names)s.") % {"names": ", ".join(unknown)}]
    if "title" in fields or not partial:
        cleaned["title"] = _text(fields, "title", errors, limit=200, required=True)
    if "description" in fields:
        cleaned["description"] = _text(fields, "description", errors, limit=TEXT_LIMIT, required=False)
    if "metric" in fields:
        raw = fields["metric"]
        metric_id = getattr(raw, "pk", raw)
        if metric_id in (None, ""):
            cleaned["metric"] = None
        else:
            metric = (
                Metric.objects.filter(pk=metric_id, team_id=goal.team_id).first()
                if isinstance(metric_id, int)
                else None
            )
            if metric is None:
                errors["metric"] = [_("Choose a metric of this team.")]
            cleaned["metric"] = metric
    if "order" in fields:
        order = fields["order"]
        if not isinstance(order, int) or isinstance(order, bool) or not 0 <= order <= 1000:
            errors["order"] = [_("A whole number from 0 to 1000.")]
        cleaned["order"] = order
    requirement_ids = None
    if "requirements" in fields:
        wanted = _requirement_ids(goal.team_id, fields["requirements"] or [], errors)
        requirement_ids = wanted
    if errors:
        raise InvalidInput(errors)
    return cleaned, requirement_ids


def _requirement_ids(team_id: int, values: Iterable[Any], errors: dict[str, list[str]]) -> list[int]:
    """Requirements named by id or key, all of the team."""
    ids = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    keys = [v.strip().upper() for v in values if isinstance(v, str) and v.strip()]
    if len(ids) + len(keys) != len(list(values)):
        errors["requirements"] = [_("Name requirements by id or key.")]
        return []
    found = dict(
        Requirement.objects.filter(team_id=team_id)
        .filter(Q(pk__in=ids) | Q(key__in=keys))
        .values_list("pk", "key")
    )
    missing = [str(i) for i in ids if i not in found] + [k for k in keys if k not in found.values()]
    if missing:
        errors["requirements"] = [
            _("Not requirements of this team: %(names)s.") % {"names": ", ".join(missing[:10])}
        ]
    return sorted(found)


def strategy_create(*, actor: User, goal_id: int, **fields: Any) -> Strategy:
    goal = goal_get_for_user(user=actor, goal_id=goal_id)
    _team_for(actor, goal.team_id, GOAL_EDITORS)
    cleaned, requirement_ids = _clean_strategy(goal, fields, partial=False)
    with transaction.atomic():
        if "order" not in cleaned:
            cleaned["order"] = goal.strategies.count()
        strategy = Strategy.objects.create(goal=goal, **cleaned)
        if requirement_ids is not None:
            strategy.requirements.set(requirement_ids)
    return strategy


def strategy_update(*, actor: User, strategy_id: int, **fields: Any) -> Strategy:
    strategy = strategy_get_for_user(user=actor, strategy_id=strategy_id)
    _team_for(actor, strategy.goal.team_id, GOAL_EDITORS)
    cleaned, requirement_ids = _clean_strategy(strategy.goal, fields, partial=True)
    with transaction.atomic():
        strategy = Strategy.objects.select_for_update().get(pk=strategy.pk)
        for name, value in cleaned.items():
            setattr(strategy, name, value)
        if cleaned:
            strategy.save(update_fields=list(cleaned))
        if requirement_ids is not None:
            strategy.requirements.set(requirement_ids)
    return strategy


def strategy_link(
    *, actor: User, strategy_id: int, add: Iterable[Any] = (), remove: Iterable[Any] = ()
) -> Strategy:
    """Add requirements to a strategy and take others off it (by id or key), under the strategy's row
    lock, so two people linking at once both keep their links."""
    strategy = strategy_get_for_user(user=actor, strategy_id=strategy_id)
    _team_for(actor, strategy.goal.team_id, GOAL_EDITORS)
    errors: dict[str, list[str]] = {}
    adding = _requirement_ids(strategy.goal.team_id, list(add), errors)
    removing = _requirement_ids(strategy.goal.team_id, list(remove), errors) if not errors else []
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic():
        strategy = Strategy.objects.select_for_update().get(pk=strategy.pk)
        if adding:
            strategy.requirements.add(*adding)
        if removing:
            strategy.requirements.remove(*removing)
    return strategy


def strategy_delete(*, actor: User, strategy_id: int) -> None:
    strategy = strategy_get_for_user(user=actor, strategy_id=strategy_id)
    _team_for(actor, strategy.goal.team_id, GOAL_EDITORS)
    with transaction.atomic():
        Strategy.objects.filter(pk=strategy.pk).delete()
