"""Reads. Each selector scopes to what the user may see and fetches what its callers display."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from opsteam.exceptions import NotFound
from roles import permissions
from roles.models import Membership, Team
from roles.permissions import roles_for, teams_visible_to

from . import engine
from .models import (
    Comment,
    IterationLoop,
    Requirement,
    Stage,
    StageEvent,
    TrackingEvent,
    TrackingStatus,
    Transition,
    Workflow,
)

UserLike = User | AnonymousUser


def workflow_current(*, team: Team | int) -> Workflow:
    team_id = team if isinstance(team, int) else team.pk
    return Workflow.objects.get(team_id=team_id, is_current=True)


def workflow_definition(*, workflow: Workflow, stages: list[Stage] | None = None) -> engine.WorkflowDef:
    """The pure definition the engine works on (two queries; one when the caller has the stages)."""
    if stages is None:
        stages = list(workflow.stages.all())
    by_id = {stage.pk: stage for stage in stages}
    transitions = workflow.transitions.all()
    return engine.WorkflowDef(
        stages=tuple(
            engine.StageDef(
                slug=s.slug,
                name=s.name,
                order=s.order,
                owner_roles=frozenset(s.owner_roles),
                sla_hours=s.sla_hours,
            )
            for s in stages
        ),
        transitions=tuple(
            engine.TransitionDef(
                from_stage=by_id[t.from_stage_id].slug,
                to_stage=by_id[t.to_stage_id].slug if t.to_stage_id else None,
                kind=t.kind,
                allowed_roles=frozenset(t.allowed_roles),
                required_fields=tuple(t.required_fields),
            )
            for t in transitions
        ),
    )


def team_get_for_user(*, user: UserLike, team_id: int) -> Team:
    return permissions.team_get_for_user(user=user, team_id=team_id)


def requirement_list_for_user(*, user: UserLike) -> QuerySet[Requirement]:
    return (
        Requirement.objects.filter(team__in=teams_visible_to(user=user))
        .select_related("team", "stage", "assignee", "workflow")
        .prefetch_related("labels", "watchers")
    )


def requirement_get_for_user(
    *, user: UserLike, requirement_id: int | None = None, key: str | None = None, lock: bool = False
) -> Requirement:
    """One requirement the user may see, or NotFound. With lock=True the caller must be inside
    transaction.atomic(); only the requirement row is locked."""
    queryset = Requirement.objects.filter(team__in=teams_visible_to(user=user))
    if requirement_id is not None:
        queryset = queryset.filter(pk=requirement_id)
    elif key:
        queryset = queryset.filter(key=key.upper())
    else:
        raise NotFound()
    related = ("team", "stage", "workflow", "assignee")
    if not lock:
        requirement = queryset.select_related(*related).first()
        if requirement is None:
            raise NotFound()
        return requirement
    # Scope, lock the bare row, then read it with its relations. PostgreSQL re-checks a row that
    # changed while we waited for its lock against the whole query: with a join on the stage (which
    # the winner just changed) or a team subquery, that re-check drops the row.
    pk = queryset.values_list("pk", flat=True).first()
    if pk is None:
        raise NotFound()
    list(
        Requirement.objects.select_for_update(of=("self",))
        .filter(pk=pk)
        .order_by()
        .values_list("pk", flat=True)
    )
    return Requirement.objects.select_related(*related).get(pk=pk)


def _tracking_counts() -> dict[str, Any]:
    """Annotations on loops: events in the tracking plan, and how many are verified."""
    return {
        "tracking_total": Count("tracking_events"),
        "tracking_verified": Count(
            "tracking_events", filter=Q(tracking_events__status=TrackingStatus.VERIFIED)
        ),
    }


def requirement_current_loop(*, requirement: Requirement) -> IterationLoop:
    """The current loop, annotated with its tracking plan's counts for the guards (one query)."""
    return IterationLoop.objects.annotate(**_tracking_counts()).get(
        requirement_id=requirement.pk, number=requirement.loop_number
    )


def tracking_plan_complete(*, total: int | None, verified: int | None) -> bool:
    return bool(total) and total == verified


def requirement_guard_fields(*, requirement: Requirement, loop: IterationLoop) -> dict[str, Any]:
    """The values transition guards look at: the requirement's fields and its current loop's analysis."""
    return {
        "title": requirement.title,
        "hypothesis": requirement.hypothesis,
        "target_metric": requirement.target_metric,
        "aarrr_stage": requirement.aarrr_stage,
        "design": requirement.design,
        "launch_date": requirement.launch_date,
        "assignee": requirement.assignee_id,
        "due_date": requirement.due_date,
        "description": requirement.description,
        "conclusion": loop.conclusion,
        "verdict": loop.verdict,
        # The loop must come annotated with _tracking_counts(): a missing count is a bug, not "no plan".
        "tracking_plan": tracking_plan_complete(
            total=loop.tracking_total,  # type: ignore[attr-defined]
            verified=loop.tracking_verified,  # type: ignore[attr-defined]
        ),
    }


def requirement_history(*, requirement: Requirement) -> QuerySet[StageEvent]:
    return (
        StageEvent.objects.filter(requirement_id=requirement.pk)
        .select_related("actor", "loop")
        .order_by("at", "id")
    )


def team_overview_for_user(*, user: User) -> list[dict[str, Any]]:
    """The user's teams with their roles and the open requirements in each stage of the current
    workflow (three queries whatever the number of teams)."""
    teams = list(teams_visible_to(user=user).order_by("name"))
    memberships = {m.team_id: m for m in Membership.objects.filter(user_id=user.pk, team__in=teams)}
    counts = {
        (row["team_id"], row["stage__slug"]): row["n"]
        for row in Requirement.objects.filter(team__in=teams, closed_at__isnull=True)
        .values("team_id", "stage__slug")
        .annotate(n=Count("id"))
    }
    stages = (
        Workflow.objects.filter(team__in=teams, is_current=True)
        .prefetch_related("stages")
        .annotate(closed=Count("team__requirements", filter=Q(team__requirements__closed_at__isnull=False)))
    )
    by_team = {w.team_id: w for w in stages}
    overview = []
    for team in teams:
        workflow = by_team.get(team.pk)
        membership = memberships.get(team.pk)
        overview.append(
            {
                "team": team,
                "roles": sorted(membership.roles) if membership else [],
                "stages": [
                    {"stage": s, "open": counts.get((team.pk, s.slug), 0)}
                    for s in (workflow.stages.all() if workflow else [])
                ],
                "closed": workflow.closed if workflow else 0,
            }
        )
    return overview


def membership_list_for_team(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def workflow_list_for_user(*, user: UserLike) -> QuerySet[Workflow]:
    return Workflow.objects.filter(team__in=teams_visible_to(user=user)).prefetch_related(
        "stages", "transitions__from_stage", "transitions__to_stage"
    )


def loop_list_for_user(*, user: UserLike) -> QuerySet[IterationLoop]:
    return IterationLoop.objects.filter(requirement__team__in=teams_visible_to(user=user)).select_related(
        "requirement"
    )


def comment_list_for_requirement(*, requirement: Requirement) -> QuerySet[Comment]:
    return Comment.objects.filter(requirement_id=requirement.pk).select_related("author")


def comment_get_for_user(*, user: UserLike, comment_id: int) -> Comment:
    comment = (
        Comment.objects.filter(pk=comment_id, requirement__team__in=teams_visible_to(user=user))
        .select_related("author")
        .first()
    )
    if comment is None:
        raise NotFound()
    return comment


def user_summary(*, user: User) -> dict[str, Any]:
    """The signed-in user and their teams with their roles in each (two queries)."""
    memberships = {m.team_id: m for m in Membership.objects.filter(user_id=user.pk)}
    teams = teams_visible_to(user=user).order_by("name")
    return {
        "id": user.pk,
        "username": user.get_username(),
        "name": user.get_full_name() or user.get_username(),
        "email": user.email,
        "is_staff": user.is_staff,
        "teams": [
            {
                "id": team.pk,
                "name": team.name,
                "key_prefix": team.key_prefix,
                "roles": sorted(memberships[team.pk].roles) if team.pk in memberships else [],
            }
            for team in teams
        ],
    }


def requirement_available_transitions(*, user: UserLike, requirement: Requirement) -> list[engine.Option]:
    """Each move from the current stage with whether this user may make it now, and why not."""
    definition = workflow_definition(workflow=requirement.workflow)
    loop = requirement_current_loop(requirement=requirement)
    return engine.options(
        definition,
        current=requirement.stage.slug,
        roles=roles_for(user=user, team=requirement.team_id),
        fields=requirement_guard_fields(requirement=requirement, loop=loop),
        closed=requirement.is_closed,
    )


# ------------------------------------------------------------------------------------------ web pages


def workflow_definitions(*, workflow_ids: Iterable[int]) -> dict[int, tuple[list[Stage], engine.WorkflowDef]]:
    """Each workflow version's stages and engine definition (two queries for any number of versions)."""
    ids = set(workflow_ids)
    stages_by_workflow: dict[int, list[Stage]] = defaultdict(list)
    for stage in Stage.objects.filter(workflow_id__in=ids).order_by("workflow_id", "order"):
        stages_by_workflow[stage.workflow_id].append(stage)
    transitions_by_workflow: dict[int, list[Transition]] = defaultdict(list)
    for transition in Transition.objects.filter(workflow_id__in=ids).order_by("id"):
        transitions_by_workflow[transition.workflow_id].append(transition)
    result = {}
    for workflow_id in ids:
        stages = stages_by_workflow[workflow_id]
        by_id = {stage.pk: stage for stage in stages}
        result[workflow_id] = (
            stages,
            engine.WorkflowDef(
                stages=tuple(_stage_def(s) for s in stages),
                transitions=tuple(
                    engine.TransitionDef(
                        from_stage=by_id[t.from_stage_id].slug,
                        to_stage=by_id[t.to_stage_id].slug if t.to_stage_id else None,
                        kind=t.kind,
                        allowed_roles=frozenset(t.allowed_roles),
                        required_fields=tuple(t.required_fields),
                    )
                    for t in transitions_by_workflow[workflow_id]
                ),
            ),
        )
    return result


def _stage_def(stage: Stage) -> engine.StageDef:
    return engine.StageDef(
        slug=stage.slug,
        name=stage.name,
        order=stage.order,
        owner_roles=frozenset(stage.owner_roles),
        sla_hours=stage.sla_hours,
    )


def _with_loop_analysis(queryset: QuerySet[Requirement]) -> QuerySet[Requirement]:
    """Annotate the current loop's conclusion and verdict, which transition guards read."""
    current = IterationLoop.objects.filter(requirement_id=OuterRef("pk"), number=OuterRef("loop_number"))
    events = TrackingEvent.objects.filter(
        loop__requirement_id=OuterRef("pk"), loop__number=OuterRef("loop_number")
    ).order_by()
    counted = events.values("loop_id").annotate(
        total=Count("pk"), verified=Count("pk", filter=Q(status=TrackingStatus.VERIFIED))
    )
    return queryset.annotate(
        loop_conclusion=Subquery(current.values("conclusion")[:1]),
        loop_verdict=Subquery(current.values("verdict")[:1]),
        loop_tracking_total=Subquery(counted.values("total")[:1]),
        loop_tracking_verified=Subquery(counted.values("verified")[:1]),
    )


def requirement_card_for_user(*, user: UserLike, key: str) -> Requirement:
    """One requirement as a board card shows it (with its loop's analysis for the guards), or NotFound."""
    requirement = (
        _with_loop_analysis(Requirement.objects.filter(team__in=teams_visible_to(user=user), key=key.upper()))
        .select_related("stage", "assignee", "team")
        .prefetch_related("labels")
        .first()
    )
    if requirement is None:
        raise NotFound()
    return requirement


def guard_fields_of_annotated(requirement: Requirement) -> dict[str, Any]:
    """Guard fields of a requirement read through board_requirements / queue (no extra query)."""
    loop = SimpleNamespace(
        conclusion=getattr(requirement, "loop_conclusion", "") or "",
        verdict=getattr(requirement, "loop_verdict", "") or "",
        tracking_total=getattr(requirement, "loop_tracking_total", 0) or 0,
        tracking_verified=getattr(requirement, "loop_tracking_verified", 0) or 0,
    )
    return requirement_guard_fields(requirement=requirement, loop=loop)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BoardFilters:
    assignee: str = ""  # a user id, "me" or "none"
    aarrr_stage: str = ""
    priority: str = ""
    label: str = ""
    text: str = ""

    @property
    def active(self) -> bool:
        return any((self.assignee, self.aarrr_stage, self.priority, self.label, self.text))


def board_requirements(*, team: Team, user: UserLike, filters: BoardFilters) -> QuerySet[Requirement]:
    """The team's open requirements for the board, filtered, with what each card shows."""
    queryset = Requirement.objects.filter(team=team, closed_at__isnull=True)
    if filters.assignee == "me":
        queryset = queryset.filter(assignee_id=user.pk)
    elif filters.assignee == "none":
        queryset = queryset.filter(assignee__isnull=True)
    elif filters.assignee.isdigit() and len(filters.assignee) < 19:
        queryset = queryset.filter(assignee_id=int(filters.assignee))
    if filters.aarrr_stage:
        queryset = queryset.filter(aarrr_stage=filters.aarrr_stage)
    if filters.priority:
        queryset = queryset.filter(priority=filters.priority)
    if filters.label:
        queryset = queryset.filter(labels__name=filters.label)
    if filters.text:
        queryset = queryset.filter(Q(title__icontains=filters.text) | Q(key__iexact=filters.text.strip()))
    return (
        _with_loop_analysis(queryset)
        .select_related("stage", "assignee")
        .prefetch_related("labels")
        .order_by("priority", "stage_entered_at", "id")
    )


def queue_for_user(*, user: User) -> list[dict[str, Any]]:
    """What waits on the user across their teams, oldest first: requirements assigned to them,
    unassigned ones in a stage their role owns, and ones they were mentioned on (unread)."""
    from notifications.models import Kind, Notification  # notifications never imports workflows

    memberships = {m.team_id: m.roles for m in Membership.objects.filter(user_id=user.pk)}
    owned_stage_ids = [
        stage.pk
        for stage in Stage.objects.filter(workflow__team_id__in=list(memberships))
        .only("pk", "owner_roles", "workflow__team_id")
        .select_related("workflow")
        if memberships[stage.workflow.team_id] & set(stage.owner_roles)
    ]
    mentioned = Notification.objects.filter(
        recipient_id=user.pk, kind=Kind.MENTIONED, read_at__isnull=True, requirement__isnull=False
    ).values("requirement_id")
    requirements = (
        Requirement.objects.filter(team_id__in=list(memberships), closed_at__isnull=True)
        .filter(
            Q(assignee_id=user.pk)
            | Q(assignee__isnull=True, stage_id__in=owned_stage_ids)
            | Q(pk__in=Subquery(mentioned))
        )
        .annotate(mentioned=Exists(mentioned.filter(requirement_id=OuterRef("pk"))))
        .select_related("team", "stage", "assignee")
        .order_by("stage_entered_at", "id")
    )
    rows = []
    for requirement in requirements:
        reasons = []
        if requirement.assignee_id == user.pk:
            reasons.append("assigned")
        elif requirement.assignee_id is None and requirement.stage_id in owned_stage_ids:
            reasons.append("stage")
        if requirement.mentioned:
            reasons.append("mentioned")
        rows.append({"requirement": requirement, "reasons": reasons})
    return rows


def team_members(*, team: Team | int) -> list[Membership]:
    team_id = team if isinstance(team, int) else team.pk
    return list(Membership.objects.filter(team_id=team_id).select_related("user").order_by("user__username"))


def requirement_page(*, user: UserLike, key: str) -> dict[str, Any]:
    """Everything the requirement page shows, in a constant number of queries."""
    requirement = (
        Requirement.objects.filter(team__in=teams_visible_to(user=user), key=key.upper())
        .select_related("team", "stage", "workflow", "assignee", "created_by")
        .prefetch_related("labels", "watchers")
        .first()
    )
    if requirement is None:
        raise NotFound()
    loops = list(
        IterationLoop.objects.filter(requirement_id=requirement.pk)
        .annotate(**_tracking_counts())
        .order_by("number")
    )
    current_loop = next((loop for loop in loops if loop.number == requirement.loop_number), loops[-1])
    stages, definition = workflow_definitions(workflow_ids=[requirement.workflow_id])[requirement.workflow_id]
    roles = roles_for(user=user, team=requirement.team_id)
    options = engine.options(
        definition,
        current=requirement.stage.slug,
        roles=roles,
        fields=requirement_guard_fields(requirement=requirement, loop=current_loop),
        closed=requirement.is_closed,
    )
    events = list(requirement_history(requirement=requirement))
    comments = list(comment_list_for_requirement(requirement=requirement))
    return {
        "requirement": requirement,
        "loops": loops,
        "current_loop": current_loop,
        "stages": stages,
        "definition": definition,
        "roles": roles,
        "options": options,
        "events": events,
        "comments": comments,
    }
