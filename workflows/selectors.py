"""Reads. Each selector scopes to what the user may see and fetches what its callers display."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import (
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)

from opsteam.db import PreparedQuery
from opsteam.exceptions import NotFound
from roles import permissions
from roles.models import Membership, Team
from roles.permissions import role_annotations, roles_annotated, roles_for, teams_visible_to

from . import engine
from .models import (
    Comment,
    IterationLoop,
    Label,
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


def workflow_definition(
    *, workflow: Workflow, stages: list[Stage] | None = None, transitions: list[Transition] | None = None
) -> engine.WorkflowDef:
    """The pure definition the engine works on (two queries; none when the caller has the stages and
    the transitions)."""
    if stages is None:
        stages = list(workflow.stages.all())
    by_id = {stage.pk: stage for stage in stages}
    if transitions is None:
        transitions = list(workflow.transitions.all())
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
    """The requirements the user may see, with what their API shape shows: stage and workflow
    version, label names and watcher ids (team, assignee and author are shown by id)."""
    return (
        Requirement.objects.filter(team__in=teams_visible_to(user=user))
        .select_related("stage", "workflow")
        .prefetch_related("labels", Prefetch("watchers", queryset=User.objects.only("pk")))
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


def _first(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """The queryset `.first()` iterates."""
    return (queryset if queryset.ordered else queryset.order_by("pk"))[:1]


# ------------------------------------------------------------------------------------ moving one


def _requirement_for_move(*, user_id: int, lookup: str, value: object) -> QuerySet[Requirement]:
    """The query `requirement_lock_for_move` runs (see there), for the member `user_id` (0: nobody)."""
    from notifications.models import WebhookEndpoint  # notifications never imports workflows
    from worktime.models import WorkCalendar

    queryset = (
        Requirement.objects.select_for_update(of=("self",))
        .filter(**{lookup: value})
        .select_related("team", "workflow")
        .annotate(
            current_loop_id=Subquery(
                IterationLoop.objects.filter(requirement_id=OuterRef("pk"), number=OuterRef("loop_number"))
                .order_by()
                .values("pk")[:1]
            ),
            stage_count=Subquery(
                Stage.objects.filter(workflow_id=OuterRef("workflow_id"))
                .order_by()
                .values("workflow_id")
                .annotate(n=Count("pk"))
                .values("n")[:1]
            ),
            calendar_on=Exists(WorkCalendar.objects.filter(team_id=OuterRef("team_id"), enabled=True)),
            webhooks_on=Exists(WebhookEndpoint.objects.filter(team_id=OuterRef("team_id"), active=True)),
            **role_annotations(user=User(pk=user_id)),
        )
        .order_by()
    )
    return _first(queryset)


# Placeholders no real id or key takes (in the range of the columns: Django compiles a value out of
# range as "no row", not as a parameter).
_USER_PLACEHOLDER = 2_101_234_567
_REQUIREMENT_PLACEHOLDER = 2_101_234_568
_KEY_PLACEHOLDER = "PLACEHOLDER-KEY-2101234567"
_LOCK_BY_ID = PreparedQuery(
    lambda user_id, value: _requirement_for_move(user_id=user_id, lookup="pk", value=value),
    user_id=_USER_PLACEHOLDER,
    value=_REQUIREMENT_PLACEHOLDER,
)
_LOCK_BY_KEY = PreparedQuery(
    lambda user_id, value: _requirement_for_move(user_id=user_id, lookup="key", value=value),
    user_id=_USER_PLACEHOLDER,
    value=_KEY_PLACEHOLDER,
)
_BIGINT = range(-(2**63), 2**63)


def requirement_lock_for_move(
    *, user: UserLike, requirement_id: int | None = None, key: str | None = None
) -> tuple[Requirement, frozenset[str]]:
    """The requirement a transition moves, locked, with its team and workflow, the id of its current
    loop (`current_loop_id`), the number of stages of its workflow version (`stage_count`), whether its team counts SLAs in working time (`calendar_on`) and has
    active webhooks (`webhooks_on`), and the user's roles in the team: all in one query. NotFound when
    absent or not visible to the user. The caller must be inside transaction.atomic().

    Only the requirement row is locked, found by its id or key alone: the joins are on team and
    workflow, which never change, so PostgreSQL's re-check of a row changed while we waited for its
    lock keeps the row. (A join on the stage, which a concurrent winner changes, or a team subquery in
    the WHERE clause would drop it.) Visibility is checked on the locked row, through the roles read
    with it.

    The query is compiled once per connection (`PreparedQuery`): it is the hot path's costliest."""
    # As role_annotations: an anonymous user is nobody's member, and id 0 is no user.
    user_id: int = user.pk if user.is_authenticated else 0
    if requirement_id is not None:
        if type(requirement_id) is int and requirement_id in _BIGINT:
            found = _LOCK_BY_ID.run(user_id=user_id, value=requirement_id)
        else:  # what Django makes of other values (a string of digits, an id out of range)
            found = list(_requirement_for_move(user_id=user_id, lookup="pk", value=requirement_id))
    elif key:
        found = _LOCK_BY_KEY.run(user_id=user_id, value=key.upper())
    else:
        raise NotFound()
    if not found:
        raise NotFound()
    requirement = found[0]
    if requirement.current_loop_id is None:
        # The lock waited for a transaction that iterated the requirement. PostgreSQL hands back the
        # row as that transaction left it (the new loop number), but runs the subquery in the snapshot
        # from before the wait, where the new loop did not exist yet. A new statement sees it.
        requirement.current_loop_id = (
            IterationLoop.objects.filter(requirement_id=requirement.pk, number=requirement.loop_number)
            .values_list("pk", flat=True)
            .get()
        )
    roles = roles_annotated(requirement)
    if not roles and not (user.is_authenticated and user.is_staff):
        raise NotFound()
    return requirement, roles


def _transitions_of(workflow_id: int) -> QuerySet[Transition]:
    # The default order within one workflow, without the joins to its team that the default brings.
    return (
        Transition.objects.filter(workflow_id=workflow_id)
        .select_related("from_stage", "to_stage")
        .order_by("from_stage__order", "kind")
    )


_TRANSITIONS = PreparedQuery(_transitions_of, workflow_id=2_101_234_569)


# (database alias, workflow id, revision) → its stages and transitions, per process.
_WORKFLOWS: dict[tuple[str, int, int], tuple[list[Stage], list[Transition]]] = {}
_WORKFLOWS_KEPT = 256


def workflow_stages_and_transitions(*, requirement: Requirement) -> tuple[list[Stage], list[Transition]]:
    """The stages (in order) and transitions of the requirement's workflow version (as
    `requirement_lock_for_move` reads it, with its revision), kept per process under the version's
    revision, which changes whenever a stage or transition is saved or deleted: the admin edits them in
    place. The objects are shared by the moves of the process: read them, never change them.

    Read in one query when every stage is on some transition: the transitions with their stages.
    `stage_count` (from `requirement_lock_for_move`) tells whether some stage was left out; then the
    stages are read too."""
    key = (requirement._state.db or "default", requirement.workflow_id, requirement.workflow.revision)
    kept = _WORKFLOWS.get(key)
    if kept is not None:
        return kept
    found = _read_stages_and_transitions(requirement)
    if len(_WORKFLOWS) >= _WORKFLOWS_KEPT:
        _WORKFLOWS.clear()
    _WORKFLOWS[key] = found
    return found


def _read_stages_and_transitions(requirement: Requirement) -> tuple[list[Stage], list[Transition]]:
    transitions: list[Transition] = _TRANSITIONS.run(workflow_id=requirement.workflow_id)
    stages: dict[int, Stage] = {}
    for transition in transitions:
        stages[transition.from_stage_id] = transition.from_stage
        if transition.to_stage is not None:
            stages[transition.to_stage.pk] = transition.to_stage
    if len(stages) != requirement.stage_count:  # type: ignore[attr-defined]
        stages = {stage.pk: stage for stage in Stage.objects.filter(workflow_id=requirement.workflow_id)}
    return sorted(stages.values(), key=lambda stage: (stage.order, stage.pk)), transitions


@functools.cache
def _labels_and_watchers_sql() -> str:
    """One statement for both: the labels (kind 0, in Label's order, by name) and the watchers' ids
    (kind 1) of the requirement given twice."""
    quote = connection.ops.quote_name
    labels = Requirement.labels.through._meta
    watchers = Requirement.watchers.through._meta
    link, watch = quote(labels.db_table), quote(watchers.db_table)
    return f"""
        SELECT 0, l.{quote("id")}, l.{quote("team_id")}, l.{quote("name")}
        FROM {quote(Label._meta.db_table)} l JOIN {link} t ON t.{quote("label_id")} = l.{quote("id")}
        WHERE t.{quote("requirement_id")} = %s
        UNION ALL
        SELECT 1, w.{quote("user_id")}, NULL, NULL FROM {watch} w WHERE w.{quote("requirement_id")} = %s
        ORDER BY 1, 4, 2"""  # noqa: S608 (table and column names, no input)


def requirement_prefetch_labels_and_watchers(*, requirement: Requirement) -> None:
    """Read the requirement's labels and watchers (their ids) into its prefetch cache, as
    `prefetch_related_objects([requirement], "labels", Prefetch("watchers", User.objects.only("pk")))`
    does, in one query instead of two: the instances are made as the ORM makes them (`from_db`, the
    watchers with every field but the id deferred)."""
    with connection.cursor() as cursor:
        cursor.execute(_labels_and_watchers_sql(), [requirement.pk, requirement.pk])
        rows = cursor.fetchall()
    alias = connection.alias
    labels = [Label.from_db(alias, ["id", "team_id", "name"], row[1:]) for row in rows if row[0] == 0]
    watchers = [User.from_db(alias, ["id"], [row[1]]) for row in rows if row[0] == 1]
    cache: dict[str, QuerySet[Any]] = requirement.__dict__.setdefault("_prefetched_objects_cache", {})
    if "labels" not in cache:
        label_set = requirement.labels.get_queryset()
        label_set._result_cache = labels
        label_set._prefetch_done = True  # type: ignore[attr-defined]
        cache["labels"] = label_set
    if "watchers" not in cache:
        watcher_set = requirement.watchers._apply_rel_filters(User.objects.only("pk"))  # type: ignore[attr-defined]
        watcher_set._result_cache = watchers
        watcher_set._prefetch_done = True
        cache["watchers"] = watcher_set


LOOP_GUARDS = frozenset({"conclusion", "verdict", "tracking_plan"})


def requirement_guard_fields_for_move(
    *, requirement: Requirement, definition: engine.WorkflowDef, current: str, target: str
) -> dict[str, Any]:
    """The guard fields `engine.decide` reads for one move. The current loop's analysis is read (one
    query, after the lock, so it is fresh) only when the move's guards look at it."""
    transition = definition.transition(current, target)
    if transition is not None and LOOP_GUARDS & set(transition.required_fields):
        loop: Any = requirement_current_loop(requirement=requirement)
    else:
        loop = SimpleNamespace(conclusion="", verdict="", tracking_total=0, tracking_verified=0)
    return requirement_guard_fields(requirement=requirement, loop=loop)


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
    """Each workflow version's stages (in order) and engine definition, for any number of versions: one
    query, the transitions with their stages and the number of stages of their version, when every stage
    is on some transition (as in every workflow opsteam makes); the stages are read too when not."""
    ids = set(workflow_ids)
    stage_count = (
        Stage.objects.filter(workflow_id=OuterRef("workflow_id"))
        .order_by()
        .values("workflow_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    transitions_by_workflow: dict[int, list[Transition]] = defaultdict(list)
    found: dict[int, dict[int, Stage]] = defaultdict(dict)
    counts: dict[int, int] = {}
    for transition in (
        Transition.objects.filter(workflow_id__in=ids)
        .select_related("from_stage", "to_stage")
        .annotate(stage_count=Subquery(stage_count))
        .order_by("id")
    ):
        transitions_by_workflow[transition.workflow_id].append(transition)
        found[transition.workflow_id].setdefault(transition.from_stage_id, transition.from_stage)
        if transition.to_stage is not None:
            found[transition.workflow_id].setdefault(transition.to_stage.pk, transition.to_stage)
        counts[transition.workflow_id] = transition.stage_count
    incomplete = {workflow_id for workflow_id in ids if len(found[workflow_id]) != counts.get(workflow_id)}
    if incomplete:
        for stage in Stage.objects.filter(workflow_id__in=incomplete):
            found[stage.workflow_id].setdefault(stage.pk, stage)
    result = {}
    for workflow_id in ids:
        stages = sorted(found[workflow_id].values(), key=lambda stage: (stage.order, stage.pk))
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
    # No ordering in the subqueries: a loop's default one would join its requirement and team per row.
    current = IterationLoop.objects.filter(
        requirement_id=OuterRef("pk"), number=OuterRef("loop_number")
    ).order_by()
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


def team_for_board(*, user: UserLike, team_id: int) -> tuple[Team, frozenset[str]]:
    """A team the user may see, with the id of its current workflow (`current_workflow_id`), and the
    user's roles in it: one query. NotFound when not visible."""
    team = None
    if 0 < team_id < 2**63:
        team = (
            teams_visible_to(user=user)
            .filter(pk=team_id)
            .annotate(
                current_workflow_id=Subquery(
                    Workflow.objects.filter(team_id=OuterRef("pk"), is_current=True)
                    .order_by()
                    .values("pk")[:1]
                ),
                **role_annotations(user=user, team_field="pk"),
            )
            .first()
        )
    if team is None:
        raise NotFound()
    return team, roles_annotated(team)


def board_labels(*, team: Team) -> tuple[list[str], dict[int, list[str]]]:
    """The team's label names, and the label names of each of its open requirements (the board's cards),
    in one query that reads nothing of the closed requirements, however many years of them there are."""
    every = (
        Label.objects.filter(team=team)
        .annotate(card=Value(None, output_field=IntegerField()))
        .order_by()
        .values_list("name", "card")
    )
    on_cards = (
        Requirement.labels.through.objects.filter(requirement__team=team, requirement__closed_at__isnull=True)
        .order_by()
        .values_list("label__name", "requirement_id")
    )
    names: set[str] = set()
    by_requirement: dict[int, list[str]] = defaultdict(list)
    for name, requirement_id in sorted(every.union(on_cards, all=True), key=lambda row: row[0]):
        names.add(name)
        if requirement_id is not None:
            by_requirement[requirement_id].append(name)
    return sorted(names), by_requirement


def board_requirements(*, team: Team, user: UserLike, filters: BoardFilters) -> QuerySet[Requirement]:
    """The team's open requirements for the board, filtered, with what each card shows (their labels
    come from `board_labels`)."""
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
        .order_by("priority", "stage_entered_at", "id")
    )


def queue_for_user(*, user: User) -> list[dict[str, Any]]:
    """What waits on the user across their teams, oldest first: requirements assigned to them,
    unassigned ones in a stage their role owns, and ones they were mentioned on (unread)."""
    from notifications.models import Kind, Notification  # notifications never imports workflows

    member_of = Membership.objects.filter(user_id=user.pk).values("team_id")
    # The stages of every workflow version of the user's teams, each with the user's roles in its team.
    owned_stage_ids = [
        stage.pk
        for stage in Stage.objects.filter(workflow__team_id__in=member_of)
        .annotate(**role_annotations(user=user, team_field="workflow__team_id"))
        .only("pk", "owner_roles")
        .order_by()
        if roles_annotated(stage) & set(stage.owner_roles)
    ]
    mentioned = (
        Notification.objects.filter(
            recipient_id=user.pk, kind=Kind.MENTIONED, read_at__isnull=True, requirement__isnull=False
        )
        .order_by()
        .values("requirement_id")
    )
    requirements = (
        Requirement.objects.filter(team_id__in=member_of, closed_at__isnull=True)
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
    """Everything the requirement page shows, in a constant number of queries. The requirement is read
    with the user's roles in its team."""
    requirement = (
        Requirement.objects.filter(team__in=teams_visible_to(user=user), key=key.upper())
        .select_related("team", "stage", "workflow", "assignee", "created_by")
        .annotate(**role_annotations(user=user))
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
    roles = roles_annotated(requirement)
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


# SQL on x(since, expected): the two differ, NULL counting as a value (portable IS DISTINCT FROM).
SINCE_DISAGREES = """CASE WHEN x.since IS NULL AND x.expected IS NULL THEN 0
    WHEN x.since IS NULL OR x.expected IS NULL THEN 1 WHEN x.since = x.expected THEN 0 ELSE 1 END = 1"""


def event_since_expected_sql() -> str:
    """SQL: each stage event's id, its `since` and the time of its requirement's event before it (log
    order: time, then id; NULL for the first), the pairs that must agree."""
    table = connection.ops.quote_name(StageEvent._meta.db_table)
    return f"""SELECT id, since, LAG(at) OVER (PARTITION BY requirement_id ORDER BY at, id) AS expected
        FROM {table}"""  # noqa: S608 — a table name, no input


def event_since_mismatches() -> int:
    """How many stage events carry a `since` other than the time of the event before them: zero
    whenever the log was written by opsteam's own writers (the services, the history import,
    generate_load), which all set it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM ({event_since_expected_sql()}) x WHERE {SINCE_DISAGREES}"  # noqa: S608
        )
        return int(cursor.fetchone()[0])
