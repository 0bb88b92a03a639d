"""Reads of the data loop, scoped to what the user may see; each fetches what its callers display."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery

from opsteam.exceptions import NotFound
from roles.models import Team
from roles.permissions import teams_visible_to
from workflows.models import AarrrStage, IterationLoop, Requirement, TrackingEvent, TrackingStatus

from . import rules
from .models import Goal, Metric, MetricWatch, Observation, Strategy, WatchFiring

UserLike = User | AnonymousUser

# How far back the metric page and its chart look by default.
SERIES_DAYS = 90


def _valid_id(value: int) -> bool:
    return isinstance(value, int) and 0 < value < 2**63


# ------------------------------------------------------------------------------------------- metrics


def _latest(field: str) -> Subquery:
    """The metric's latest whole-product observation (empty segment): its value or its date."""
    return Subquery(
        Observation.objects.filter(metric_id=OuterRef("pk"), segment="").order_by("-date").values(field)[:1]
    )


def metric_list_for_team(*, team: Team | int) -> QuerySet[Metric]:
    """The team's catalogue with each metric's latest value and date, and how many observations."""
    return (
        Metric.objects.filter(team=team)
        .annotate(
            latest_value=_latest("value"),
            latest_date=_latest("date"),
            observation_count=Count("observations"),
        )
        .order_by("name")
    )


def metric_get_for_user(*, user: UserLike, metric_id: int) -> Metric:
    metric = (
        Metric.objects.filter(pk=metric_id, team__in=teams_visible_to(user=user))
        .select_related("team")
        .first()
        if _valid_id(metric_id)
        else None
    )
    if metric is None:
        raise NotFound()
    return metric


def observation_get_for_user(*, user: UserLike, observation_id: int) -> Observation:
    observation = (
        Observation.objects.filter(pk=observation_id, metric__team__in=teams_visible_to(user=user))
        .select_related("metric")
        .first()
        if _valid_id(observation_id)
        else None
    )
    if observation is None:
        raise NotFound()
    return observation


def observation_list(
    *, metric: Metric, start: dt.date | None = None, end: dt.date | None = None, segment: str | None = None
) -> QuerySet[Observation]:
    """A metric's observations, newest first, with the loop each is linked to."""
    rows = Observation.objects.filter(metric=metric).select_related("loop__requirement", "recorded_by")
    if start is not None:
        rows = rows.filter(date__gte=start)
    if end is not None:
        rows = rows.filter(date__lte=end)
    if segment is not None:
        rows = rows.filter(segment=segment)
    return rows.order_by("-date", "segment")


def observation_list_for_team(*, team: Team | int) -> QuerySet[Observation]:
    return (
        Observation.objects.filter(metric__team=team)
        .select_related("metric", "loop__requirement", "recorded_by")
        .order_by("-date", "metric__name", "segment")
    )


def metric_segments(*, metric: Metric) -> list[str]:
    return list(
        Observation.objects.filter(metric=metric)
        .exclude(segment="")
        .values_list("segment", flat=True)
        .distinct()
    )


def daily_series(
    *, metric: Metric, start: dt.date, end: dt.date, segment: str = ""
) -> list[tuple[dt.date, Decimal]]:
    """(date, value) of one segment between two days, oldest first."""
    return list(
        Observation.objects.filter(metric=metric, segment=segment, date__gte=start, date__lte=end)
        .order_by("date")
        .values_list("date", "value")
    )


# ------------------------------------------------------------------------------------------- watches


def watch_list_for_team(*, team: Team | int) -> QuerySet[MetricWatch]:
    return (
        MetricWatch.objects.filter(team=team)
        .select_related("metric", "assignee", "open_requirement__stage")
        .annotate(firing_count=Count("firings"))
        .order_by("name")
    )


def watch_get_for_user(*, user: UserLike, watch_id: int) -> MetricWatch:
    watch = (
        MetricWatch.objects.filter(pk=watch_id, team__in=teams_visible_to(user=user))
        .select_related("metric", "team", "assignee", "open_requirement__stage")
        .first()
        if _valid_id(watch_id)
        else None
    )
    if watch is None:
        raise NotFound()
    return watch


def watch_firings(*, watch: MetricWatch) -> QuerySet[WatchFiring]:
    return (
        WatchFiring.objects.filter(watch=watch)
        .select_related("requirement__stage")
        .order_by("-fired_at", "-id")
    )


def watches_to_evaluate(*, scope: Q, limit: int, skip_locked: bool = False) -> list[MetricWatch]:
    """Up to `limit` active watches in `scope`, in id order, locked for the caller's transaction (with
    `skip_locked`, watches another evaluation holds are left to it), each with its metric, team and the
    requirement it opened last, and `latest_observed`: the day of its metric's latest whole-product
    observation (None without any). One query."""
    latest = Observation.objects.filter(metric_id=OuterRef("metric_id"), segment="").order_by("-date")
    return list(
        MetricWatch.objects.select_for_update(of=("self",), skip_locked=skip_locked)
        .filter(scope, is_active=True)
        .select_related("metric", "team", "open_requirement")
        .annotate(latest_observed=Subquery(latest.values("date")[:1]))
        .order_by("pk")[:limit]
    )


def watch_series(watches: Sequence[MetricWatch]) -> dict[int, list[tuple[dt.date, Decimal]]]:
    """For each watch (by id) its metric's values, one per period (whole product), over just enough
    recent periods to decide the latest streak (rules.window_start), for all of them in one query. The
    watches come from watches_to_evaluate, which tells the day each window ends on."""
    since: dict[int, dt.date] = {}  # by watch
    by_metric: dict[int, dt.date] = {}  # the earliest day any of the metric's watches needs
    for watch in watches:
        latest: dt.date | None = watch.latest_observed  # type: ignore[attr-defined]
        if latest is None:
            continue
        start = since[watch.pk] = rules.window_start(latest, period=watch.period, periods=watch.periods)
        by_metric[watch.metric_id] = min(start, by_metric.get(watch.metric_id, start))
    rows: dict[int, list[tuple[dt.date, Decimal]]] = {}
    if by_metric:
        windows = reduce(
            operator.or_,
            (Q(metric_id=metric_id, date__gte=day) for metric_id, day in sorted(by_metric.items())),
        )
        for metric_id, day, value in (
            Observation.objects.filter(windows, segment="")
            .order_by()
            .values_list("metric_id", "date", "value")
        ):
            rows.setdefault(metric_id, []).append((day, value))
    return {
        watch.pk: rules.period_values(
            [(day, value) for day, value in rows.get(watch.metric_id, []) if day >= since[watch.pk]],
            watch.period,
        )
        if watch.pk in since
        else []
        for watch in watches
    }


# ------------------------------------------------------------------------------ tracking and analysis


def tracking_plan(*, loop: IterationLoop) -> list[TrackingEvent]:
    return list(TrackingEvent.objects.filter(loop=loop).select_related("owner", "loop").order_by("id"))


def tracking_progress(events: list[TrackingEvent]) -> dict[str, int]:
    counts = {status: 0 for status in TrackingStatus.values}
    for event in events:
        counts[event.status] += 1
    return {"total": len(events), **counts}


@dataclass(frozen=True)
class Reading:
    """The target metric around a requirement's launch date."""

    metric: Metric | None
    launch: dt.date | None
    values: rules.BeforeAfter | None


def metric_for_requirement(*, requirement: Requirement) -> Metric | None:
    """The catalogue metric named by the requirement's target metric (case-insensitive), if any."""
    name = (requirement.target_metric or "").strip()
    if not name:
        return None
    return Metric.objects.filter(team_id=requirement.team_id, name__iexact=name).first()


def before_after_for(*, requirement: Requirement, metric: Metric | None = None) -> Reading:
    metric = metric or metric_for_requirement(requirement=requirement)
    launch = requirement.launch_date
    if metric is None or launch is None:
        return Reading(metric=metric, launch=launch, values=None)
    days = dt.timedelta(days=rules.BEFORE_AFTER_DAYS)
    rows = daily_series(metric=metric, start=launch - days, end=launch + days)
    return Reading(metric=metric, launch=launch, values=rules.before_after(rows, launch=launch))


# --------------------------------------------------------------------------------------------- goals


def goal_list_for_team(*, team: Team | int) -> list[Goal]:
    """The team's goals, each with its progress (`progress` attributes set; two queries in all)."""
    goals: list[Goal] = list(
        Goal.objects.filter(team=team)
        .select_related("metric")
        .annotate(strategy_count=Count("strategies", distinct=True))
        .order_by("-end", "title")
    )
    _attach_progress(goals)
    return goals


def _attach_progress(goals: list[Goal]) -> None:
    metric_ids = {goal.metric_id for goal in goals}
    if not metric_ids:
        return
    history: dict[int, list[tuple[dt.date, Decimal]]] = {}
    for metric_id, day, value in (
        Observation.objects.filter(metric_id__in=metric_ids, segment="")
        .order_by("metric_id", "date")
        .values_list("metric_id", "date", "value")
    ):
        history.setdefault(metric_id, []).append((day, value))
    for goal in goals:
        rows = history.get(goal.metric_id, [])
        baseline = next((value for day, value in reversed(rows) if day <= goal.start), None)
        latest_row = next(((day, value) for day, value in reversed(rows) if day <= goal.end), None)
        goal.baseline = baseline  # type: ignore[attr-defined]
        goal.latest_value = latest_row[1] if latest_row else None  # type: ignore[attr-defined]
        goal.latest_date = latest_row[0] if latest_row else None  # type: ignore[attr-defined]
        goal.progress = rules.goal_progress(  # type: ignore[attr-defined]
            baseline=baseline,
            latest=goal.latest_value,  # type: ignore[attr-defined]
            target=goal.target,
            direction=goal.metric.direction,
        )


def goal_get_for_user(*, user: UserLike, goal_id: int) -> Goal:
    goal = (
        Goal.objects.filter(pk=goal_id, team__in=teams_visible_to(user=user))
        .select_related("team", "metric")
        .first()
        if _valid_id(goal_id)
        else None
    )
    if goal is None:
        raise NotFound()
    return goal


def strategy_get_for_user(*, user: UserLike, strategy_id: int) -> Strategy:
    strategy = (
        Strategy.objects.filter(pk=strategy_id, goal__team__in=teams_visible_to(user=user))
        .select_related("goal__team", "goal__metric")
        .first()
        if _valid_id(strategy_id)
        else None
    )
    if strategy is None:
        raise NotFound()
    return strategy


def goal_tree(*, goal: Goal) -> dict[str, Any]:
    """A goal with its progress, its first-level metrics with their latest values, and its strategies
    with the requirements carrying each (stage, loop count, open or closed). A fixed number of queries."""
    _attach_progress([goal])
    latest = {metric.pk: metric for metric in metric_list_for_team(team=goal.team_id)}
    first_level = [
        latest[pk] for pk in goal.first_level_metrics.order_by("name").values_list("pk", flat=True)
    ]
    requirements = Requirement.objects.select_related("stage", "assignee").order_by("key")
    strategies = list(
        goal.strategies.select_related("metric")
        .prefetch_related(Prefetch("requirements", queryset=requirements))
        .order_by("order", "id")
    )
    rows = []
    for strategy in strategies:
        members = list(strategy.requirements.all())
        rows.append(
            {
                "strategy": strategy,
                "metric": latest.get(strategy.metric_id) if strategy.metric_id else None,
                "requirements": members,
                "open": sum(1 for r in members if r.closed_at is None),
                "loops": sum(r.loop_number for r in members),
            }
        )
    return {"goal": goal, "first_level": first_level, "strategies": rows}


# -------------------------------------------------------------------------------------------- funnel


def funnel(*, team: Team | int, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Per AARRR stage (and one row for requirements without one): requirements open at the end of the
    period, requirements closed in it, loops started and closed in it, and the verdicts of the loops
    closed in it. Two aggregate queries."""
    requirements = (
        Requirement.objects.filter(team=team)
        .values("aarrr_stage")
        .annotate(
            open=Count(
                "pk", filter=Q(created_at__lt=end) & (Q(closed_at__isnull=True) | Q(closed_at__gte=end))
            ),
            closed=Count("pk", filter=Q(closed_at__gte=start, closed_at__lt=end)),
        )
        .order_by()
    )
    loops = (
        IterationLoop.objects.filter(requirement__team=team)
        .values(stage=F("requirement__aarrr_stage"))
        .annotate(
            started=Count("pk", filter=Q(started_at__gte=start, started_at__lt=end)),
            loops_closed=Count("pk", filter=Q(closed_at__gte=start, closed_at__lt=end)),
            improved=Count("pk", filter=Q(closed_at__gte=start, closed_at__lt=end, verdict="improved")),
            flat=Count("pk", filter=Q(closed_at__gte=start, closed_at__lt=end, verdict="flat")),
            worse=Count("pk", filter=Q(closed_at__gte=start, closed_at__lt=end, verdict="worse")),
        )
        .order_by()
    )
    by_stage: dict[str, dict[str, Any]] = {
        stage: {
            "stage": stage,
            "label": label,
            "open": 0,
            "closed": 0,
            "loops_started": 0,
            "loops_closed": 0,
            "improved": 0,
            "flat": 0,
            "worse": 0,
        }
        for stage, label in [*AarrrStage.choices, ("", None)]
    }
    for row in requirements:
        entry = by_stage[row["aarrr_stage"] or ""]
        entry["open"] += row["open"]
        entry["closed"] += row["closed"]
    for loop_row in loops:
        entry = by_stage[loop_row["stage"] or ""]
        entry["loops_started"] += loop_row["started"]
        entry["loops_closed"] += loop_row["loops_closed"]
        for verdict in ("improved", "flat", "worse"):
            entry[verdict] += loop_row[verdict]
    return list(by_stage.values())
