"""The data loop on the requirement page: `{% load dataloop %}{% loop_data_panel %}` shows the current
loop's tracking plan and its analysis conclusion with the target metric before and after the launch.

workflows' page cannot import this app, so the panel reads what it needs itself, in a fixed number of
queries: the tracking plan, the team's metric catalogue (or, for readers who cannot write the conclusion,
just the target metric), and the metric's observations around the launch date."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.utils.translation import gettext as _

from roles.models import Role
from workflows import engine
from workflows.markdown import render as render_markdown
from workflows.models import IterationLoop, Requirement, TrackingEvent, TrackingStatus
from workflows.services import TRACKING_EDITORS

from .. import rules, selectors
from ..forms_goals import TRACKING_PREFIX, ConclusionForm, TrackingEventForm, event_prefix
from ..models import Metric

register = template.Library()


def _number(value: Decimal | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{Decimal(value).quantize(Decimal('0.01')).normalize():f}"
    text = "0" if text == "-0" else text
    return f"{text}{unit}" if unit in ("%", "‰") else f"{text} {unit}".strip()


def _signed(value: Decimal | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return ("+" if value > 0 else "") + _number(value, unit)


def _relative(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f}%"


def _status_moves(event: TrackingEvent, roles: frozenset[str]) -> list[dict[str, Any]]:
    """The status changes this user may make to the event: forward first, then back."""
    order = engine.TRACKING_STATUSES
    forward_labels = {"implemented": _("Mark implemented"), "verified": _("Mark verified")}
    back_labels = {"planned": _("Back to planned"), "implemented": _("Back to implemented")}
    moves: list[dict[str, Any]] = []
    for (current, target), allowed in engine.TRACKING_STATUS_ROLES.items():
        if current != event.status or not roles & allowed:
            continue
        forward = order.index(target) > order.index(current)
        label = (forward_labels if forward else back_labels).get(target, target)
        moves.append({"status": target, "label": label, "forward": forward})
    return sorted(moves, key=lambda move: not move["forward"])


def _event_form(
    event: TrackingEvent, members: list[Any], bound: TrackingEventForm | None
) -> TrackingEventForm:
    if bound is not None:
        return bound
    return TrackingEventForm(
        members=members,
        prefix=event_prefix(event.pk),
        initial={
            "name": event.name,
            "trigger": event.trigger,
            "properties": ", ".join(event.properties or []),
            "owner": event.owner_id,
        },
    )


def _guarded_moves(context: Any, requirement: Requirement, guard: str) -> list[str]:
    """The stages a move out of the current one may reach only once `guard` is met."""
    if requirement.is_closed or "definition" not in context:
        return []
    definition: engine.WorkflowDef = context["definition"]
    names: dict[str, str] = context.get("stage_names") or {}
    return [
        names.get(t.target, t.target)
        for t in definition.transitions
        if t.from_stage == requirement.stage.slug and guard in t.required_fields
    ]


def _pick_metric(metrics: list[Metric], name: str, wanted: Any) -> Metric | None:
    """The metric chosen on a bound form, else the one named by the requirement's target metric."""
    if isinstance(wanted, str) and wanted.isdigit():
        chosen = next((m for m in metrics if m.pk == int(wanted)), None)
        if chosen is not None:
            return chosen
    name = name.strip().lower()
    return next((m for m in metrics if m.name.lower() == name), None) if name else None


def _reading(requirement: Requirement, metric: Metric | None) -> dict[str, Any]:
    reading = selectors.before_after_for(requirement=requirement, metric=metric) if metric else None
    values: rules.BeforeAfter | None = reading.values if reading else None
    unit = metric.unit if metric else ""
    return {
        "metric": metric,
        "launch": requirement.launch_date,
        "days": rules.BEFORE_AFTER_DAYS,
        "values": values,
        "before": _number(values.before if values else None, unit),
        "after": _number(values.after if values else None, unit),
        "change": _signed(values.change if values else None, unit),
        "relative": _relative(values.relative if values else None),
    }


def _stored(loop: IterationLoop, metrics: list[Metric | None]) -> dict[str, Any]:
    """The values saved with a conclusion, as they were read when it was written (with the unit of the
    metric of that name, when the page has it at hand)."""
    values = rules.BeforeAfter(
        before=loop.metric_before, after=loop.metric_after, before_days=0, after_days=0
    )
    unit = next((m.unit for m in metrics if m is not None and m.name == loop.metric_name), "")
    return {
        "name": loop.metric_name,
        "before": _number(loop.metric_before, unit),
        "after": _number(loop.metric_after, unit),
        "change": _signed(values.change, unit),
        "relative": _relative(values.relative),
    }


def _answer(value: bool | None) -> str:
    if value is None:
        return "—"
    return _("Yes") if value else _("No")


@register.inclusion_tag("dataloop/partials/loop_panel.html", takes_context=True)
def loop_data_panel(context: Any) -> dict[str, Any]:
    """Reads the requirement page's context: requirement, current_loop, roles, members, definition,
    stage_names, may_analyse, conclusion_html, and any bound forms a failed POST put there."""
    requirement: Requirement = context["requirement"]
    loop: IterationLoop = context["current_loop"]
    roles: frozenset[str] = context.get("roles") or frozenset()
    members = context.get("members") or []
    is_open = not requirement.is_closed
    may_analyse = bool(roles & {Role.ANALYST, Role.LEAD}) and is_open

    events = selectors.tracking_plan(loop=loop)
    progress = selectors.tracking_progress(events)
    complete = bool(progress["total"]) and progress["total"] == progress[TrackingStatus.VERIFIED]
    may_plan = bool(roles & TRACKING_EDITORS) and is_open
    edit_id = context.get("tracking_edit_id")
    rows = [
        {
            "event": event,
            "moves": _status_moves(event, roles) if is_open else [],
            "form": _event_form(
                event, members, context.get("tracking_edit_form") if edit_id == event.pk else None
            )
            if may_plan
            else None,
            "form_open": edit_id == event.pk,
        }
        for event in events
    ]

    bound = context.get("conclusion_form")
    if may_analyse:
        metrics = list(selectors.metric_list_for_team(team=requirement.team_id))
        metric = _pick_metric(metrics, requirement.target_metric, bound.data.get("metric") if bound else None)
    else:
        metrics = []
        metric = selectors.metric_for_requirement(requirement=requirement)
    show_reading = may_analyse or not loop.conclusion
    conclusion_form = bound or (
        ConclusionForm(metrics=metrics, initial=_conclusion_initial(loop, metric)) if may_analyse else None
    )
    return {
        "csrf_token": context.get("csrf_token"),
        "requirement": requirement,
        "loop": loop,
        "events": rows,
        "progress": progress,
        "complete": complete,
        "blocked_moves": [] if complete else _guarded_moves(context, requirement, "tracking_plan"),
        "may_plan": may_plan,
        "tracking_form": context.get("tracking_form")
        or (TrackingEventForm(members=members, prefix=TRACKING_PREFIX) if may_plan else None),
        "may_analyse": may_analyse,
        "conclusion_form": conclusion_form,
        "conclusion_open": bound is not None
        or (not loop.conclusion and bool(_guarded_moves(context, requirement, "conclusion"))),
        "conclusion_html": context.get("conclusion_html") or render_markdown(loop.conclusion),
        "checks": [
            (_("Did the core metric move?"), _answer(loop.core_metric_moved)),
            (_("Did user behaviour move?"), _answer(loop.behaviour_moved)),
            (_("Is user feedback positive?"), _answer(loop.feedback_positive)),
        ],
        "stored": _stored(loop, [*metrics, metric]),
        # Readers of a concluded loop see the values saved with it; the live reading is for writing one.
        "show_reading": show_reading,
        "reading": _reading(requirement, metric) if show_reading else None,
    }


def _conclusion_initial(loop: IterationLoop, metric: Metric | None) -> dict[str, Any]:
    def yes_no(value: bool | None) -> str | None:
        return None if value is None else ("yes" if value else "no")

    return {
        "conclusion": loop.conclusion,
        "verdict": loop.verdict or None,
        "core_metric_moved": yes_no(loop.core_metric_moved),
        "behaviour_moved": yes_no(loop.behaviour_moved),
        "feedback_positive": yes_no(loop.feedback_positive),
        "metric": metric.pk if metric else None,
    }
