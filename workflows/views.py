"""The pages where the team works every day: board, my queue, the requirement page and its forms.

Views parse input, call a selector or a service, and render. Domain errors become the page again
with the reason (400 / 403 / 409); a requirement outside the user's teams is a 404."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from opsteam.exceptions import Conflict, DomainError, InvalidInput, NotFound, NotPermitted, RoleNotAllowed
from roles.models import Role, Team
from roles.permissions import roles_for, team_get_for_user, teams_visible_to

from . import engine, selectors, services
from .cards import card_html
from .forms import CommentForm, MoveForm, RequirementForm, add_domain_errors
from .markdown import render as render_markdown
from .models import AarrrStage, Priority, Requirement, StageEvent
from .templatetags.opsteam import duration, person

WARN_AT = 0.8  # a card turns amber at 80 % of its stage's SLA, red past 100 %
EMPTY = (None, "", [], (), False)  # a guard field holding one of these is missing (engine._missing)


def _team(request: HttpRequest, team_id: int) -> Team:
    try:
        return team_get_for_user(user=request.user, team_id=team_id)
    except NotFound as exc:
        raise Http404 from exc


def _render(
    request: HttpRequest, team: Team, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """Render with dates and times in the team's time zone."""
    with timezone.override(team.time_zone):
        return render(request, template, {"team": team, **context}, status=status)


def sla_state(requirement: Requirement, now: dt.datetime) -> str:
    """'overdue' past the stage's SLA, 'warn' past 80 % of it, else ''."""
    due = requirement.sla_due_at
    if requirement.is_closed or due is None:
        return ""
    if now >= due:
        return "overdue"
    if now >= requirement.stage_entered_at + (due - requirement.stage_entered_at) * WARN_AT:
        return "warn"
    return ""


def _requirements_prefix() -> str:
    """'/requirements/': cards link to <prefix><key>/ and its move/ and card/ pages, built by
    concatenation, as one reverse() per card and link costs more than the rest of the card."""
    return reverse("requirement", kwargs={"key": "K"})[:-2]


def _card_words() -> dict[str, str]:
    """The words every card repeats, translated once per page rather than once per card."""
    return {
        "priority": _("priority"),
        "overdue": _("overdue"),
        "warn": _("SLA 80%"),
        "assignee": _("assignee"),
        "since": _("in stage since"),
        "loop": _("loop"),
        "move": _("Move"),
        "open_to_move": _("Open the requirement to move it"),
    }


def _card(
    requirement: Requirement,
    definition: engine.WorkflowDef,
    roles: frozenset[str],
    now: dt.datetime,
    labels: list[str] | None = None,
    prefix: str = "",
    zone: dt.tzinfo | None = None,
    memo: dict[tuple, list[engine.Option]] | None = None,
) -> dict:
    fields = selectors.guard_fields_of_annotated(requirement)
    # The options depend on the definition, the stage and which guard fields are empty, not on the
    # values: cards alike share them (`memo`, one per page).
    key = (id(definition), requirement.stage.slug, frozenset(n for n, v in fields.items() if v in EMPTY))
    options = memo.get(key) if memo is not None else None
    if options is None:
        options = engine.options(definition, current=requirement.stage.slug, roles=roles, fields=fields)
        if memo is not None:
            memo[key] = options
    stage_names = {stage.slug: stage.name for stage in definition.stages}
    return {
        "requirement": requirement,
        "url": f"{prefix or _requirements_prefix()}{requirement.key}/",
        "from_stage": requirement.stage.slug,
        "state": sla_state(requirement, now),
        "age": now - requirement.stage_entered_at,
        # What the card prints, formatted here: a filter per card and value costs more than the value.
        "age_text": duration(now - requirement.stage_entered_at),
        "since": timezone.localtime(requirement.stage_entered_at, zone).strftime("%Y-%m-%d %H:%M"),
        "assignee": person(requirement.assignee),
        "labels": [label.name for label in requirement.labels.all()] if labels is None else labels,
        "moves": [
            {"option": option, "name": stage_names.get(option.target, "")}
            for option in options
            if option.allowed
        ],
        "drop_targets": " ".join(
            o.target for o in options if o.allowed and o.target not in engine.LOOP_EXITS
        ),
    }


# ---------------------------------------------------------------------------------------------- board


@login_required
@require_GET
def board_pick(request: HttpRequest) -> HttpResponse:
    """The team switcher's target: the chosen team's board, or the first team's."""
    wanted = request.GET.get("team", "")
    teams = teams_visible_to(user=request.user).order_by("name")
    team = None
    if wanted.isdigit() and len(wanted) < 19:
        team = teams.filter(pk=int(wanted)).first()
    team = team or teams.first()
    if team is None:
        return redirect("home")
    return redirect("board", team_id=team.pk)


def _filters(request: HttpRequest) -> selectors.BoardFilters:
    get = request.GET
    aarrr = get.get("aarrr", "")
    priority = get.get("priority", "")
    return selectors.BoardFilters(
        assignee=get.get("assignee", "")[:20],
        aarrr_stage=aarrr if aarrr in AarrrStage.values else "",
        priority=priority if priority in Priority.values else "",
        label=get.get("label", "")[:50],
        text=get.get("q", "").strip()[:200],
    )


@login_required
@require_GET
def board(request: HttpRequest, team_id: int) -> HttpResponse:
    try:
        team, roles = selectors.team_for_board(user=request.user, team_id=team_id)
    except NotFound as exc:
        raise Http404 from exc
    filters = _filters(request)
    now = timezone.now()
    current_id = team.current_workflow_id  # type: ignore[attr-defined]
    requirements = list(selectors.board_requirements(team=team, user=request.user, filters=filters))
    label_names, labels_of = selectors.board_labels(team=team)
    definitions = selectors.workflow_definitions(
        workflow_ids={current_id, *(r.workflow_id for r in requirements)}
    )
    stages, _current_definition = definitions[current_id]
    prefix = _requirements_prefix()
    zone = ZoneInfo(team.time_zone)
    memo: dict[tuple, list[engine.Option]] = {}
    words = _card_words()
    aarrr_labels = {value: str(label) for value, label in AarrrStage.choices}
    by_stage: dict[str, list[dict]] = {stage.slug: [] for stage in stages}
    for requirement in requirements:
        definition = definitions[requirement.workflow_id][1]
        card = _card(
            requirement, definition, roles, now, labels_of.get(requirement.pk, []), prefix, zone, memo
        )
        card["html"] = card_html(card, words=words, lazy_moves=True, aarrr_labels=aarrr_labels)
        by_stage.setdefault(requirement.stage.slug, []).append(card)
    columns = [{"stage": stage, "cards": by_stage.get(stage.slug, [])} for stage in stages]
    context = {
        "nav": "board",
        "columns": columns,
        "filters": filters,
        "members": selectors.team_members(team=team),
        "labels": label_names,
        "aarrr_choices": AarrrStage.choices,
        "priority_choices": Priority.choices,
        "total": len(requirements),
        "may_write": bool(roles),
        "board_url": request.get_full_path(),
    }
    template = (
        "workflows/_board.html" if request.htmx and request.htmx.target == "board" else "workflows/board.html"
    )
    return _render(request, team, template, context)


@login_required
@require_GET
def requirement_card(request: HttpRequest, key: str) -> HttpResponse:
    """One board card as it is now (the board reloads a card with it after a conflict). With
    `?from=<stage>`, only the card's move form for the stage the board showed it in: the board loads
    it when the card's Move menu opens, and a move from a stale card is then refused as a conflict."""
    requirement = _requirement_for_card(request, key)
    seen = request.GET.get("from")
    if seen is not None:
        return _moves_response(request, requirement, seen)
    return _card_response(request, requirement)


def _moves_response(request: HttpRequest, requirement: Requirement, seen: str) -> HttpResponse:
    definition = selectors.workflow_definitions(workflow_ids=[requirement.workflow_id])[
        requirement.workflow_id
    ][1]
    if not any(stage.slug == seen for stage in definition.stages):
        seen = requirement.stage.slug
    options = engine.options(
        definition,
        current=seen,
        roles=roles_for(user=request.user, team=requirement.team_id),
        fields=selectors.guard_fields_of_annotated(requirement),
    )
    stage_names = {stage.slug: stage.name for stage in definition.stages}
    card = {
        "requirement": requirement,
        "url": f"{_requirements_prefix()}{requirement.key}/",
        "from_stage": seen,
        "moves": [
            {"option": option, "name": stage_names.get(option.target, "")}
            for option in options
            if option.allowed
        ],
    }
    board_url = request.htmx.current_url_abs_path if request.htmx else ""
    return _render(
        request,
        requirement.team,
        "workflows/_moves.html",
        {"card": card, "board_url": board_url or ""},
    )


def _requirement_for_card(request: HttpRequest, key: str) -> Requirement:
    try:
        return selectors.requirement_card_for_user(user=request.user, key=key)
    except NotFound as exc:
        raise Http404 from exc


def _card_response(
    request: HttpRequest, requirement: Requirement, notice: str = "", status: int = 200
) -> HttpResponse:
    definition = selectors.workflow_definitions(workflow_ids=[requirement.workflow_id])[
        requirement.workflow_id
    ][1]
    roles = roles_for(user=request.user, team=requirement.team_id)
    card = _card(requirement, definition, roles, timezone.now(), zone=ZoneInfo(requirement.team.time_zone))
    closed = requirement.is_closed
    moves_html = ""
    if card["moves"] and not closed:
        moves_html = render_to_string(
            "workflows/_moves.html", {"card": card, "board_url": request.POST.get("next", "")}, request
        )
    html = card_html(
        card, words=_card_words(), lazy_moves=False, notice=notice, closed=closed, moves_html=moves_html
    )
    return _render(request, requirement.team, "workflows/_card.html", {"card": {"html": html}}, status=status)


# ------------------------------------------------------------------------------------------- my queue


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = selectors.queue_for_user(user=request.user)
    for row in rows:
        row["state"] = sla_state(row["requirement"], now)
        row["age"] = now - row["requirement"].stage_entered_at
    return render(request, "workflows/queue.html", {"nav": "queue", "rows": rows})


# ---------------------------------------------------------------------------------- requirement page


def _page_context(request: HttpRequest, key: str) -> dict[str, Any]:
    try:
        page = selectors.requirement_page(user=request.user, key=key)
    except NotFound as exc:
        raise Http404 from exc
    requirement: Requirement = page["requirement"]
    members = selectors.team_members(team=requirement.team_id)
    # Default stage names are msgids: shown in the reader's language; names a lead typed stay as typed.
    stage_names = {stage.slug: _(stage.name) for stage in page["stages"]}
    page["timeline"] = _timeline(page["events"], page["comments"], stage_names)
    page["stage_names"] = stage_names
    page["allowed"] = [o for o in page["options"] if o.allowed]
    page["unavailable"] = [
        {
            "option": o,
            "name": stage_names.get(o.target, ""),
            "reason": role_reason(o.roles) if o.roles else o.reason,
        }
        for o in page["options"]
        if not o.allowed
    ]
    page["exits_allowed"] = [o for o in page["allowed"] if o.target in engine.LOOP_EXITS]
    page["moves_allowed"] = [
        {"option": o, "name": stage_names.get(o.target, o.target)}
        for o in page["allowed"]
        if o.target not in engine.LOOP_EXITS
    ]
    page["description_html"] = render_markdown(requirement.description)
    page["design_html"] = render_markdown(requirement.design)
    page["conclusion_html"] = render_markdown(page["current_loop"].conclusion)
    page["members"] = members
    page["mention_names"] = [
        {"username": m.user.username, "name": m.user.get_full_name() or m.user.username} for m in members
    ]
    page["may_write"] = bool(page["roles"])
    page["may_analyse"] = bool(page["roles"] & {Role.ANALYST, Role.LEAD}) and not requirement.is_closed
    page["state"] = sla_state(requirement, timezone.now())
    page["age"] = timezone.now() - requirement.stage_entered_at
    page["nav"] = "board"
    return page


def _timeline(events: list[StageEvent], comments: list, stage_names: dict[str, str]) -> list[dict]:
    """Events and comments in time order; each move says how long the requirement spent where it left."""
    items: list[dict] = []
    previous_at = None
    for event in events:
        items.append(
            {
                "type": "event",
                "at": event.at,
                "event": event,
                "from_name": stage_names.get(event.from_stage, event.from_stage),
                "to_name": stage_names.get(event.to_stage, event.to_stage),
                "spent": event.at - previous_at if previous_at is not None else None,
            }
        )
        previous_at = event.at
    items += [{"type": "comment", "at": comment.created_at, "comment": comment} for comment in comments]
    items.sort(key=lambda item: (item["at"], 0 if item["type"] == "event" else 1))
    return items


def _requirement_page(
    request: HttpRequest,
    key: str,
    *,
    status: int = 200,
    notice: str = "",
    notice_kind: str = "error",
    **extra: Any,
) -> HttpResponse:
    """The requirement page. `extra` goes into the template's context as it is: bound forms with their
    errors (comment_form, move_form, and the data loop panel's conclusion_form, tracking_form …)."""
    context = _page_context(request, key)
    context.setdefault("comment_form", CommentForm())
    context.setdefault("move_form", MoveForm())
    context.update(extra)
    context["notice"] = notice
    context["notice_kind"] = notice_kind
    return _render(request, context["requirement"].team, "workflows/requirement.html", context, status=status)


@login_required
@require_GET
def requirement_detail(request: HttpRequest, key: str) -> HttpResponse:
    return _requirement_page(request, key)


def _requirement_id(request: HttpRequest, key: str) -> int:
    try:
        return selectors.requirement_get_for_user(user=request.user, key=key).pk
    except NotFound as exc:
        raise Http404 from exc


def _status_of(error: DomainError) -> int:
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, NotPermitted):
        return 403
    return 400


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


@login_required
@require_POST
def requirement_move(request: HttpRequest, key: str) -> HttpResponse:
    """Make a transition. From the board (htmx) the card answers; from the page, the page does."""
    requirement_id = _requirement_id(request, key)
    form = MoveForm(request.POST)
    from_board = bool(request.htmx) and request.POST.get("source") == "board"
    if not form.is_valid():
        message = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
        if from_board:
            return _card_response(request, _requirement_for_card(request, key), notice=message, status=400)
        return _requirement_page(request, key, status=400, notice=message, move_form=form)
    data = form.cleaned_data
    try:
        event = services.requirement_transition(
            requirement_id=requirement_id,
            actor=request.user,
            from_stage=data["from_stage"],
            to_stage=data["to"],
            note=data["note"],
            outcome=data["outcome"] if data["to"] == engine.CLOSE else "",
        )
    except DomainError as error:
        status = _status_of(error)
        if from_board:
            card = _requirement_for_card(request, key)
            return _card_response(request, card, notice=_error_text(error, card), status=status)
        kind = "conflict" if status == 409 else "error"
        now_at = Requirement.objects.select_related("stage").get(pk=requirement_id)
        return _requirement_page(
            request, key, status=status, notice=_error_text(error, now_at), notice_kind=kind, move_form=form
        )
    messages.success(request, _moved_message(event, key))
    if from_board:
        return HttpResponseClientRefresh()
    return redirect(_safe_next(request, reverse("requirement", kwargs={"key": key.upper()})))


def _error_text(error: DomainError, requirement: Requirement | None = None) -> str:
    """The reason in the user's words: who moved it where, or which roles may make the move."""
    if isinstance(error, Conflict):
        current = requirement.stage.name if requirement is not None else error.current
        if error.moved_by:
            return _("%(who)s moved this meanwhile; it is in %(stage)s now. Nothing was changed.") % {
                "who": error.moved_by,
                "stage": _(current),
            }
        return _("This moved meanwhile; it is in %(stage)s now. Nothing was changed.") % {"stage": _(current)}
    if isinstance(error, RoleNotAllowed):
        return role_reason(error.allowed_roles)
    return str(error.message)


def role_reason(roles: tuple[str, ...] | frozenset[str]) -> str:
    labels = dict(Role.choices)
    names = [str(labels.get(role, role)) for role in sorted(roles, key=list(labels).index)]
    return _("Only %(roles)s may do this.") % {"roles": " / ".join(names)}


def _moved_message(event: StageEvent, key: str) -> str:
    if event.kind == "close":
        return _("%(key)s is closed.") % {"key": key.upper()}
    if event.kind == "iterate":
        return _("%(key)s starts its next loop.") % {"key": key.upper()}
    return _("%(key)s moved.") % {"key": key.upper()}


@login_required
@require_POST
def requirement_comment(request: HttpRequest, key: str) -> HttpResponse:
    requirement_id = _requirement_id(request, key)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            comment = services.comment_create(
                requirement_id=requirement_id, actor=request.user, body=form.cleaned_data["body"]
            )
        except NotPermitted as error:
            raise PermissionDenied(str(error.message)) from error
        except DomainError as error:
            add_domain_errors(form, error)
        else:
            return redirect(reverse("requirement", kwargs={"key": key.upper()}) + f"#comment-{comment.pk}")
    return _requirement_page(request, key, status=400, comment_form=form)


# ---------------------------------------------------------------------------------- create and edit


def _member_ids(team: Team | int) -> list[int]:
    return [m.user_id for m in selectors.team_members(team=team)]


@login_required
def requirement_create(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team(request, team_id)
    if not roles_for(user=request.user, team=team):
        raise PermissionDenied(_("Only members of the team may propose requirements."))
    form = RequirementForm(request.POST or None, team_user_ids=_member_ids(team))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            fields = form.service_fields()
            title = fields.pop("title")
            try:
                requirement = services.requirement_create(
                    team=team, actor=request.user, title=title, **fields
                )
            except NotPermitted as error:
                raise PermissionDenied(str(error.message)) from error
            except InvalidInput as error:
                add_domain_errors(form, error)
            else:
                messages.success(
                    request,
                    _("%(key)s is proposed: %(title)s")
                    % {"key": requirement.key, "title": requirement.title},
                )
                return redirect("requirement", key=requirement.key)
    return _render(
        request,
        team,
        "workflows/requirement_form.html",
        {"form": form, "nav": "board", "creating": True},
        status,
    )


@login_required
def requirement_edit(request: HttpRequest, key: str) -> HttpResponse:
    requirement = (
        Requirement.objects.filter(team__in=teams_visible_to(user=request.user), key=key.upper())
        .select_related("team", "stage")
        .prefetch_related("labels", "watchers")
        .first()
    )
    if requirement is None:
        raise Http404
    team = requirement.team
    if not roles_for(user=request.user, team=team):
        raise PermissionDenied(_("Only members of the team may change its requirements."))
    form = RequirementForm(request.POST or None, instance=requirement, team_user_ids=_member_ids(team))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.requirement_update(
                    requirement_id=requirement.pk, actor=request.user, **form.service_fields()
                )
            except NotPermitted as error:
                raise PermissionDenied(str(error.message)) from error
            except InvalidInput as error:
                add_domain_errors(form, error)
            else:
                messages.success(request, _("Saved."))
                return redirect("requirement", key=requirement.key)
    return _render(
        request,
        team,
        "workflows/requirement_form.html",
        {"form": form, "nav": "board", "creating": False, "requirement": requirement},
        status,
    )
