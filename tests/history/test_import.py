"""Import checks everything before writing anything, maps unknown people to placeholders, and adds
nothing the second time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User

from history import formats, services
from history.formats import HistoryRejected
from opsteam.exceptions import InvalidInput, NotFound, NotPermitted
from roles.models import Membership, Team
from tests.conftest import Crew
from tests.history.conftest import at, counts, log_of, loops_of, state_of
from workflows import services as workflow_services
from workflows.models import Requirement, StageEvent

pytestmark = pytest.mark.django_db

HEADER = "key,title,loop,from,to,kind,actor,timestamp,note"
# Line numbers: the header is line 1.
GOOD = [
    HEADER,
    "GROW-1,Red packet,1,,propose,create,ops,2026-03-02T09:00:00+00:00,",  # 2
    "GROW-1,Red packet,1,propose,design,forward,ops,2026-03-02T15:00:00+00:00,",  # 3
    "GROW-1,Red packet,1,design,build,forward,pm,2026-03-05T02:00:00+08:00,spec done",  # 4
    "GROW-2,Push,1,,propose,create,ops,2026-03-03T09:00:00Z,",  # 5
    "GROW-2,Push,1,propose,,close,lead,2026-03-04T09:00:00Z,not now",  # 6
]


def visits_chained(team: Team) -> bool:
    """Each imported event's `since` is the time of its requirement's event before it (none for the
    creation), as the services write it."""
    log = list(
        StageEvent.objects.filter(requirement__team=team)
        .order_by("requirement_id", "at", "id")
        .values_list("requirement_id", "at", "since")
    )
    assert log
    return all(
        since == (before[1] if before and before[0] == requirement_id else None)
        for before, (requirement_id, _at, since) in zip([None, *log], log, strict=False)
    )


def csv_file(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def replaced(line: int, text: str) -> list[str]:
    lines = list(GOOD)
    lines[line - 1] = text
    return lines


def import_csv(team: Team, lines: list[str], **kwargs: Any) -> services.ImportResult:
    return services.history_import(
        team=team, content=csv_file(lines), actor=None, file_format="csv", **kwargs
    )


def rejection(team: Team, lines: list[str]) -> list[str]:
    with pytest.raises(HistoryRejected) as caught:
        import_csv(team, lines)
    return caught.value.errors["rows"]


def test_a_good_file_imports_its_requirements_loops_and_events(crew: Crew) -> None:
    result = import_csv(crew.team, GOOD)
    assert (result.requirements, result.loops, result.events, result.skipped) == (2, 2, 5, 0)
    assert log_of(crew.team) == [
        (1, 1, "", "propose", "create", at(2, 9)),
        (1, 1, "propose", "design", "forward", at(2, 15)),
        (1, 1, "design", "build", "forward", at(4, 18)),
        (2, 1, "", "propose", "create", at(3, 9)),
        (2, 1, "propose", "", "close", at(4, 9)),
    ]


def test_imported_requirements_agree_with_their_log(crew: Crew) -> None:
    import_csv(crew.team, GOOD)
    one, two = Requirement.objects.filter(team=crew.team).select_related("stage").order_by("number")
    assert (one.key, one.stage.slug, one.stage_entered_at, one.closed_at, one.loop_number) == (
        "GROW-1",
        "build",
        at(4, 18),
        None,
        1,
    )
    assert one.sla_due_at == at(4, 18) + (at(14, 18) - at(4, 18))  # build's 10-day SLA
    assert (two.stage.slug, two.closed_at, two.sla_due_at, two.sla_next_at) == (
        "propose",
        at(4, 9),
        None,
        None,
    )
    assert loops_of(crew.team) == [(1, 1, at(2, 9), None, ""), (2, 1, at(3, 9), at(4, 9), "close")]


BAD_ROWS = [
    (
        3,
        "GROW-1,Red packet,1,propose,desing,forward,ops,2026-03-02T15:00:00+00:00,",
        "line 3, to: unknown stage “desing”.",
    ),
    (
        3,
        "GROW-1,Red packet,1,propose,design,forward,ops,2026-13-02T15:00:00+00:00,",
        "line 3, timestamp: “2026-13-02",
    ),
    (
        3,
        "GROW-1,Red packet,1,propose,design,forward,ops,2026-03-02T15:00:00,",
        "line 3, timestamp: “2026-03-02T15:00:00” has no UTC offset",
    ),
    (
        3,
        "GROW-1,Red packet,3,propose,design,forward,ops,2026-03-02T15:00:00+00:00,",
        "line 3, loop: loop 3 out of order",
    ),
    (
        5,
        "OTHER-2,Push,1,,propose,create,ops,2026-03-03T09:00:00Z,",
        "line 5, key: “OTHER-2” has another prefix",
    ),
    (
        4,
        "GROW-1,Red packet,1,design,build,forward,pm,2026-03-02T14:00:00+00:00,",
        "line 4, timestamp: earlier than the event before it",
    ),
    (
        2,
        "GROW-1,Red packet,1,propose,design,forward,ops,2026-03-02T09:00:00+00:00,",
        "line 2, from: the first event of a requirement is its creation",
    ),
    (
        4,
        "GROW-1,Red packet,1,propose,build,forward,pm,2026-03-05T02:00:00+08:00,",
        "line 4, from: “propose”, but the requirement is in “design”",
    ),
    (
        4,
        "GROW-1,Red packet,1,design,build,sideways,pm,2026-03-05T02:00:00+08:00,",
        "line 4, kind: “sideways” is not one of",
    ),
    (
        4,
        "GROW-1,Red packet,1,design,build,forward,pm,2026-03-05T02:00:00+08:00",
        "line 4: 8 cells, but the header has 9.",
    ),
    (
        4,
        "GROW-1,Red packet,x,design,build,forward,pm,2026-03-05T02:00:00+08:00,",
        "line 4, loop: a whole number from 1",
    ),
    (
        4,
        "GROW-1," + "t" * 201 + ",1,design,build,forward,pm,2026-03-05T02:00:00+08:00,",
        "line 4, title: at most 200 characters.",
    ),
    (
        2,
        "GROW-0,Red packet,1,,propose,create,ops,2026-03-02T09:00:00+00:00,",
        "line 2, key: “GROW-0” is not a key",
    ),
]


@pytest.mark.parametrize(("line", "text", "message"), BAD_ROWS)
def test_a_bad_row_is_reported_with_its_line_and_nothing_is_imported(
    crew: Crew, line: int, text: str, message: str
) -> None:
    before = counts()
    rows = rejection(crew.team, replaced(line, text))
    assert [row for row in rows if row.startswith(message)] != [], rows
    assert counts() == before


def test_nothing_may_follow_a_close(crew: Crew) -> None:
    lines = [*GOOD, "GROW-2,Push,1,propose,design,forward,ops,2026-03-05T09:00:00Z,"]
    assert rejection(crew.team, lines) == ["line 7, kind: nothing may follow the close of GROW-2."]


def test_every_bad_row_is_reported_not_just_the_first(crew: Crew) -> None:
    lines = replaced(3, "GROW-1,Red packet,1,propose,desing,forward,ops,2026-03-02T15:00:00+00:00,")
    lines[5] = "GROW-2,Push,1,propose,,close,lead,yesterday,not now"
    rows = rejection(crew.team, lines)
    assert rows[0].startswith("line 3, to:") and rows[1].startswith("line 6, timestamp:"), rows


def test_a_nul_character_is_a_row_error_not_a_database_error(crew: Crew) -> None:
    rows = rejection(
        crew.team, replaced(4, "GROW-1,Red\x00packet,1,design,build,forward,pm,2026-03-05T02:00:00+08:00,")
    )
    assert rows == ["line 4, title: contains a NUL character."]


def test_the_structured_errors_carry_line_field_and_message(crew: Crew) -> None:
    with pytest.raises(HistoryRejected) as caught:
        import_csv(
            crew.team,
            replaced(3, "GROW-1,Red packet,1,propose,desing,forward,ops,2026-03-02T15:00:00+00:00,"),
        )
    assert caught.value.as_dict()["errors"] == [
        {"line": 3, "path": None, "field": "to", "message": "unknown stage “desing”."}
    ]


def test_json_problems_are_reported_with_their_path(crew: Crew) -> None:
    document = {
        "format": "opsteam-history",
        "version": 1,
        "team": {"key_prefix": "GROW", "name": "Growth", "time_zone": "UTC"},
        "requirements": [
            {
                "key": "GROW-1",
                "title": "Red packet",
                "loops": [
                    {
                        "number": 1,
                        "events": [
                            {
                                "from": "",
                                "to": "propose",
                                "kind": "create",
                                "actor": "ops",
                                "at": "2026-03-02T09:00:00Z",
                            },
                            {
                                "from": "propose",
                                "to": "design",
                                "kind": "forward",
                                "actor": "ops",
                                "at": "2026-03-02 15:00",
                            },
                        ],
                    }
                ],
            }
        ],
    }
    before = counts()
    with pytest.raises(HistoryRejected) as caught:
        services.history_import(team=crew.team, content=json.dumps(document).encode(), actor=None)
    assert caught.value.errors["rows"] == [
        "requirements[0].loops[0].events[1].at: “2026-03-02 15:00” has no UTC offset: add one, such as +08:00 or Z."
    ]
    assert counts() == before


def test_json_loops_must_be_numbered_in_order(crew: Crew) -> None:
    document = {
        "format": "opsteam-history",
        "version": 1,
        "team": {"key_prefix": "GROW", "name": "Growth", "time_zone": "UTC"},
        "requirements": [
            {
                "key": "GROW-1",
                "title": "Red packet",
                "loops": [
                    {
                        "number": 2,
                        "events": [
                            {"from": "", "to": "propose", "kind": "create", "at": "2026-03-02T09:00:00Z"}
                        ],
                    }
                ],
            }
        ],
    }
    with pytest.raises(HistoryRejected) as caught:
        services.history_import(team=crew.team, content=json.dumps(document).encode(), actor=None)
    assert caught.value.errors["rows"][0].startswith("requirements[0].loops[0].number: loop 2 out of order")


# --------------------------------------------------------------------------------- kinds a CSV leaves out


def test_kinds_left_out_are_derived_from_the_workflow(crew: Crew) -> None:
    lines = [
        "key,loop,from,to,timestamp",
        "GROW-1,1,,propose,2026-03-02T09:00:00Z",
        "GROW-1,1,propose,design,2026-03-02T10:00:00Z",  # forward
        "GROW-1,1,design,propose,2026-03-02T11:00:00Z",  # rework
        "GROW-1,1,propose,analyze,2026-03-02T12:00:00Z",  # a skip: override
        "GROW-1,1,analyze,optimize,2026-03-02T13:00:00Z",  # forward
        "GROW-1,2,optimize,propose,2026-03-02T14:00:00Z",  # numbered with the next loop: iterate
        "GROW-1,2,propose,iterate,2026-03-02T15:00:00Z",  # iterate, named
        "GROW-1,3,propose,close,2026-03-02T16:00:00Z",  # close
    ]
    with pytest.raises(HistoryRejected):  # the titles are missing
        import_csv(crew.team, lines)
    lines = [line + ",Red packet" for line in lines]
    lines[0] = "key,loop,from,to,timestamp,title"
    import_csv(crew.team, lines)
    assert [(loop, kind) for _n, loop, _f, _t, kind, _at in log_of(crew.team)] == [
        (1, "create"),
        (1, "forward"),
        (1, "rework"),
        (1, "override"),
        (1, "forward"),
        (1, "iterate"),
        (2, "iterate"),
        (3, "close"),
    ]
    assert [loop[1:] for loop in loops_of(crew.team)] == [
        (1, at(2, 9), at(2, 14), "iterate"),
        (2, at(2, 14), at(2, 15), "iterate"),
        (3, at(2, 15), at(2, 16), "close"),
    ]


def test_a_file_without_a_title_for_a_requirement_is_refused(crew: Crew) -> None:
    lines = ["key,from,to,timestamp", "GROW-1,,propose,2026-03-02T09:00:00Z"]
    assert rejection(crew.team, lines) == ["line 2, title: GROW-1 has no title."]


# ------------------------------------------------------------------------------------- unknown people


def test_unknown_people_become_placeholders_that_cannot_sign_in(crew: Crew) -> None:
    lines = replaced(4, "GROW-1,Red packet,1,design,build,forward,zhang.san,2026-03-05T02:00:00+08:00,")
    result = import_csv(crew.team, lines)
    placeholder = User.objects.get(username="imported.zhang.san")
    assert result.users_created == 1
    assert (placeholder.first_name, placeholder.is_active, placeholder.has_usable_password()) == (
        "zhang.san",
        False,
        False,
    )
    assert authenticate(username="imported.zhang.san", password="") is None
    assert not Membership.objects.filter(user=placeholder).exists()
    assert StageEvent.objects.get(to_stage="build").actor == placeholder


def test_members_of_the_team_are_themselves(crew: Crew) -> None:
    import_csv(crew.team, GOOD)
    assert StageEvent.objects.get(to_stage="build").actor == crew.pm
    assert Requirement.objects.get(key="GROW-1").created_by == crew.ops


def test_a_user_outside_the_team_is_not_named_by_a_file(crew: Crew, empty_team: Team) -> None:
    """A file cannot attribute moves to an account of another team (or to the site's admin)."""
    import_csv(empty_team, GOOD)
    assert StageEvent.objects.get(to_stage="build").actor.username == "imported.pm"


def test_placeholders_are_reused_by_the_next_import(crew: Crew) -> None:
    lines = replaced(4, "GROW-1,Red packet,1,design,build,forward,Zhang San,2026-03-05T02:00:00+08:00,")
    import_csv(crew.team, lines)
    second = [HEADER, "GROW-9,Other,1,,propose,create,Zhang San,2026-03-06T09:00:00Z,"]
    result = import_csv(crew.team, second)
    placeholders = User.objects.filter(username__startswith="imported.")
    assert result.users_created == 0
    assert [(u.first_name, u.username.startswith("imported.Zhang_San-")) for u in placeholders] == [
        ("Zhang San", True)
    ]
    assert Requirement.objects.get(key="GROW-9").created_by == placeholders.get()


def test_a_name_and_its_placeholders_username_are_one_placeholder(crew: Crew) -> None:
    lines = replaced(3, "GROW-1,Red packet,1,propose,design,forward,bob,2026-03-02T15:00:00+00:00,")
    lines[3] = "GROW-1,Red packet,1,design,build,forward,imported.bob,2026-03-05T02:00:00+08:00,"
    result = import_csv(crew.team, lines)
    bob = User.objects.get(username="imported.bob")
    assert result.users_created == 1
    assert list(
        StageEvent.objects.filter(requirement__key="GROW-1", to_stage__in=["design", "build"]).values_list(
            "actor", flat=True
        )
    ) == [
        bob.pk,
        bob.pk,
    ]


def test_a_placeholder_name_taken_by_a_real_account_is_refused(crew: Crew) -> None:
    User.objects.create_user(username="imported.mallory", password="pw")
    lines = replaced(4, "GROW-1,Red packet,1,design,build,forward,mallory,2026-03-05T02:00:00+08:00,")
    before = counts()
    assert rejection(crew.team, lines) == [
        "The placeholder for “mallory”, imported.mallory, is taken by an account."
    ]
    assert counts() == before


# ---------------------------------------------------------------------------------------- idempotency


def test_importing_the_same_file_twice_adds_nothing(crew: Crew) -> None:
    import_csv(crew.team, GOOD)
    before = (counts(), User.objects.count())
    result = import_csv(crew.team, GOOD)
    assert (result.requirements, result.loops, result.events, result.users_created, result.skipped) == (
        0,
        0,
        0,
        0,
        2,
    )
    assert (counts(), User.objects.count()) == before


def test_a_longer_history_of_an_imported_requirement_adds_only_the_later_events(crew: Crew) -> None:
    import_csv(crew.team, GOOD[:4])
    later = [
        *GOOD[:4],
        "GROW-1,Red packet,1,build,instrument,forward,engineer,2026-03-06T18:00:00Z,",
        "GROW-1,Red packet,1,instrument,optimize,override,lead,2026-03-07T06:00:00Z,",
        "GROW-1,Red packet,1,optimize,propose,iterate,ops,2026-03-09T12:00:00Z,",
    ]
    result = import_csv(crew.team, later)
    assert (result.requirements, result.extended, result.loops, result.events) == (0, 1, 1, 3)
    requirement = Requirement.objects.select_related("stage").get(key="GROW-1")
    assert (requirement.stage.slug, requirement.loop_number, requirement.stage_entered_at) == (
        "propose",
        2,
        at(9, 12),
    )
    assert loops_of(crew.team) == [(1, 1, at(2, 9), at(9, 12), "iterate"), (1, 2, at(9, 12), None, "")]
    # The first added event's visit began at the last event that was already there.
    assert StageEvent.objects.get(requirement=requirement, at=at(6, 18)).since == at(4, 18)
    assert visits_chained(crew.team)


def test_an_older_export_of_a_requirement_adds_nothing(crew: Crew) -> None:
    import_csv(crew.team, GOOD)
    result = import_csv(crew.team, GOOD[:3])
    assert (result.events, result.skipped) == (0, 1)


def test_a_requirement_there_with_another_history_refuses_the_whole_import(crew: Crew) -> None:
    workflow_services.requirement_create(team=crew.team, actor=crew.ops, title="Already here", at=at(1, 9))
    before = counts()
    assert rejection(crew.team, GOOD) == [
        "line 2, key: GROW-1 already exists in this team with a different history."
    ]
    assert counts() == before


def test_a_number_taken_in_a_team_with_another_prefix_refuses_the_import(
    crew: Crew, empty_team: Team
) -> None:
    lead = empty_team.memberships.get().user
    workflow_services.requirement_create(team=empty_team, actor=lead, title="Already here", at=at(1, 9))
    before = counts()
    assert rejection(empty_team, GOOD) == [
        "line 2, key: GROW-1 would be imported as NEW-1, which already exists in this team with a different history."
    ]
    assert counts() == before


def test_requirements_created_after_an_import_take_the_next_free_number(crew: Crew) -> None:
    import_csv(crew.team, [HEADER, "GROW-41,Imported,1,,propose,create,ops,2026-03-02T09:00:00Z,"])
    requirement = workflow_services.requirement_create(team=crew.team, actor=crew.ops, title="New")
    assert requirement.key == "GROW-42"


def test_a_dry_run_counts_what_it_would_import_and_writes_nothing(crew: Crew) -> None:
    lines = replaced(4, "GROW-1,Red packet,1,design,build,forward,zhang.san,2026-03-05T02:00:00+08:00,")
    before = (counts(), User.objects.count())
    result = import_csv(crew.team, lines, dry_run=True)
    assert (result.requirements, result.loops, result.events, result.users_created, result.dry_run) == (
        2,
        2,
        5,
        1,
        True,
    )
    assert (counts(), User.objects.count()) == before


# ------------------------------------------------------------------------------ huge and malformed files


def test_a_file_past_the_size_limit_is_refused(crew: Crew) -> None:
    content = csv_file(GOOD) + b"x" * formats.MAX_BYTES
    with pytest.raises(HistoryRejected) as caught:
        services.history_import(team=crew.team, content=content, actor=None, file_format="csv")
    assert caught.value.errors["rows"] == ["The file is larger than 20 MB."]


def test_a_file_past_the_row_limit_is_refused(crew: Crew, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_ROWS", 4)
    assert rejection(crew.team, GOOD) == ["More than 4 rows."]


@pytest.mark.parametrize(
    ("content", "file_format", "message"),
    [
        (b"\xff\xfe\x00garbage", "csv", "The file is not UTF-8 text (byte 1)."),
        (b"", "csv", "The file is empty."),
        (b'{"format": "opsteam-history", "version": 1, "team": ', "json", "line 1, file: not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "json", "The JSON is nested too deeply."),
        (b'{"format": "something else"}', "json", "This is not an opsteam history file"),
        (b"key,title,from,to\nGROW-1,x,,propose\n", "csv", "The header lacks timestamp"),
        (
            b'key,from,to,timestamp\n"GROW-1,,propose,2026\n',
            "csv",
            "line 2: not valid CSV: unexpected end of data.",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_a_clear_message(
    crew: Crew, content: bytes, file_format: str, message: str
) -> None:
    before = counts()
    with pytest.raises(HistoryRejected) as caught:
        services.history_import(team=crew.team, content=content, actor=None, file_format=file_format)
    assert caught.value.errors["rows"][0].startswith(message), caught.value.errors
    assert counts() == before


def test_the_file_format_is_guessed_from_the_name_then_the_content(crew: Crew) -> None:
    assert formats.guess_format("history.CSV", b"{") == "csv"
    assert formats.guess_format("upload", b"\xef\xbb\xbf  {\n") == "json"
    assert formats.guess_format("upload", csv_file(GOOD)) == "csv"


def test_the_team_named_in_the_file_is_the_default_target(crew: Crew) -> None:
    result = services.history_import(team=None, content=csv_file(GOOD), actor=None)
    assert (result.key_prefix, result.requirements) == ("GROW", 2)


def test_a_file_naming_a_team_that_does_not_exist_needs_a_target(db: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        services.history_import(team=None, content=csv_file(GOOD), actor=None)
    assert caught.value.errors == {
        "team": ["No team has the key prefix GROW: create it first, or choose another team."]
    }


def test_only_leads_may_import(crew: Crew) -> None:
    with pytest.raises(NotPermitted):
        services.history_import(team=crew.team, content=csv_file(GOOD), actor=crew.ops)
    assert counts() == (0, 0, 0)


def test_a_lead_of_another_team_is_told_the_team_is_not_found(crew: Crew, empty_team: Team) -> None:
    with pytest.raises(NotFound):
        services.history_import(
            team=crew.team, content=csv_file(GOOD), actor=empty_team.memberships.get().user
        )
    assert counts() == (0, 0, 0)


def test_a_lead_imports_as_themselves_but_names_in_the_file_keep_their_people(crew: Crew) -> None:
    result = services.history_import(team=crew.team, content=csv_file(GOOD), actor=crew.lead)
    assert result.requirements == 2
    assert StageEvent.objects.get(to_stage="build").actor == crew.pm


def test_state_after_import_matches_what_the_services_would_have_made(crew: Crew, empty_team: Team) -> None:
    """The same moves made through the services in one team and imported in another agree row for row."""
    requirement = workflow_services.requirement_create(
        team=crew.team,
        actor=crew.ops,
        title="Red packet",
        at=at(2, 9),
        hypothesis="h",
        target_metric="m",
        aarrr_stage="retention",
    )
    workflow_services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design", at=at(2, 15)
    )
    workflow_services.requirement_update(requirement_id=requirement.pk, actor=crew.pm, design="spec")
    workflow_services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.pm, from_stage="design", to_stage="build", at=at(4, 18)
    )
    import_csv(empty_team, GOOD[:4])
    assert state_of(empty_team) == state_of(crew.team)
    assert loops_of(empty_team) == loops_of(crew.team)
    assert visits_chained(empty_team) and visits_chained(crew.team)
    imported = StageEvent.objects.filter(requirement__team=empty_team).order_by("at", "id")
    made = StageEvent.objects.filter(requirement__team=crew.team).order_by("at", "id")
    assert list(imported.values_list("since", flat=True)) == list(made.values_list("since", flat=True))
