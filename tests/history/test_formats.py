"""The file formats and the replay rules, without a database."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from history import formats, rules
from history.formats import EventRecord, HistoryFile, HistoryRejected, LoopRecord, RequirementRecord
from workflows import engine
from workflows.defaults import DEFAULT_STAGES, DEFAULT_TRANSITIONS

DEFAULT = engine.WorkflowDef(
    stages=tuple(
        engine.StageDef(slug=slug, name=name, order=order, owner_roles=frozenset(owners), sla_hours=sla)
        for order, (slug, name, owners, sla) in enumerate(DEFAULT_STAGES, start=1)
    ),
    transitions=tuple(
        engine.TransitionDef(
            from_stage=f, to_stage=t, kind=k, allowed_roles=frozenset(r), required_fields=tuple(q)
        )
        for f, t, k, r, q in DEFAULT_TRANSITIONS
    ),
)


def t(hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, 2, hour, tzinfo=dt.UTC)


def document(*loops: dict[str, Any], **fields: Any) -> bytes:
    requirement = {"key": "GROW-1", "title": "Red packet", "loops": list(loops), **fields}
    return json.dumps(
        {
            "format": "opsteam-history",
            "version": 1,
            "team": {"key_prefix": "GROW", "name": "Growth", "time_zone": "UTC"},
            "requirements": [requirement],
        }
    ).encode()


def event(from_stage: str, to: str, kind: str, hour: int) -> dict[str, Any]:
    return {"from": from_stage, "to": to, "kind": kind, "actor": "ops", "at": t(hour).isoformat()}


def replayed(content: bytes) -> tuple[rules.Replay | None, list[str]]:
    history = formats.parse(content, "json")
    assert history.problems == []
    replay, problems = rules.replay(history.requirements[0], DEFAULT)
    return replay, [str(problem) for problem in problems]


# --------------------------------------------------------------------------------------- neutralising


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),
        ("'plain", "'plain"),
        ("plain = fine", "plain = fine"),
        ("", ""),
    ],
)
def test_formula_cells_get_a_leading_quote_that_import_takes_off_again(value: str, written: str) -> None:
    assert formats.neutralise(value) == written
    assert formats.unneutralise(written) == value


def test_csv_export_neutralises_every_cell_and_reads_back_the_same() -> None:
    history = HistoryFile(
        team_prefix="GROW",
        requirements=[
            RequirementRecord(
                number=1,
                prefix="GROW",
                fields={"title": "=1+2"},
                events=[
                    EventRecord(
                        from_stage="",
                        to_stage="propose",
                        kind="create",
                        actor="-x",
                        at=t(9),
                        note="@me",
                        loop=1,
                    )
                ],
            )
        ],
    )
    text = formats.dump_csv(history)
    assert text.splitlines()[1] == "GROW-1,'=1+2,1,,propose,create,'-x,2026-03-02T09:00:00+00:00,'@me,"
    back = formats.parse(text.encode(), "csv")
    assert (back.requirements[0].fields["title"], back.requirements[0].events[0].actor) == ("=1+2", "-x")
    assert back.requirements[0].events[0].note == "@me"


def test_timestamps_are_written_in_the_teams_time_zone_with_their_offset() -> None:
    history = HistoryFile(
        team_prefix="GROW",
        time_zone="Asia/Shanghai",
        requirements=[
            RequirementRecord(
                number=1,
                prefix="GROW",
                fields={"title": "x"},
                loops=[LoopRecord(number=1)],
                events=[
                    EventRecord(from_stage="", to_stage="propose", kind="create", actor="", at=t(9), loop=1)
                ],
                created_at=t(9),
            )
        ],
    )
    written = formats.to_json(history)["requirements"][0]
    assert written["created_at"] == "2026-03-02T17:00:00+08:00"
    assert written["loops"][0]["events"][0]["at"] == "2026-03-02T17:00:00+08:00"
    assert written["loops"][0]["events"][0]["actor"] is None


def test_timestamps_with_any_offset_are_read_as_the_same_instant() -> None:
    history = formats.parse(
        b"key,title,from,to,timestamp\nGROW-1,x,,propose,2026-03-02T17:00:00+08:00\n", "csv"
    )
    assert history.requirements[0].events[0].at == t(9)


# ----------------------------------------------------------------------------------------- the replay


def test_the_replay_of_the_worked_loop_opens_loop_two_at_the_iterate() -> None:
    script = [
        event("", "propose", "create", 0),
        event("propose", "design", "forward", 6),
        event("design", "build", "forward", 8),
        event("build", "instrument", "forward", 9),
        event("instrument", "analyze", "forward", 10),
        event("analyze", "optimize", "forward", 11),
        event("optimize", "propose", "iterate", 12),
    ]
    replay, problems = replayed(document({"number": 1, "events": script}, {"number": 2, "events": []}))
    assert problems == []
    assert replay is not None
    assert [(loop.number, loop.started_at, loop.closed_at, loop.outcome) for loop in replay.loops] == [
        (1, t(0), t(12), "iterate"),
        (2, t(12), None, ""),
    ]
    assert (replay.stage, replay.stage_entered_at, replay.loop_number, replay.closed_at) == (
        "propose",
        t(12),
        2,
        None,
    )


def test_a_lead_may_iterate_from_any_stage() -> None:
    script = [event("", "propose", "create", 0), event("propose", "propose", "iterate", 1)]
    replay, problems = replayed(document({"number": 1, "events": script}))
    assert problems == []
    assert replay is not None and replay.loop_number == 2


def test_a_closed_requirement_stays_in_the_stage_it_closed_from() -> None:
    script = [
        event("", "propose", "create", 0),
        event("propose", "design", "forward", 1),
        event("design", "", "close", 2),
    ]
    replay, _problems = replayed(document({"number": 1, "events": script}, outcome="done"))
    assert replay is not None
    assert (replay.stage, replay.stage_entered_at, replay.closed_at) == ("design", t(1), t(2))


def test_a_loop_no_iterate_opens_is_refused() -> None:
    script = [event("", "propose", "create", 0)]
    _replay, problems = replayed(document({"number": 1, "events": script}, {"number": 2, "events": []}))
    assert problems == ["requirements[0].loops[1].number: loop 2 was never opened: no iterate leads into it."]


def test_an_event_listed_under_the_wrong_loop_is_refused() -> None:
    _replay, problems = replayed(
        document(
            {"number": 1, "events": [event("", "propose", "create", 0)]},
            {"number": 2, "events": [event("propose", "design", "forward", 1)]},
        )
    )
    assert problems == [
        "requirements[0].loops[1].events[0].loop: loop 2 out of order: the requirement is in loop 1 at this point."
    ]


def test_an_outcome_on_an_open_requirement_is_refused() -> None:
    _replay, problems = replayed(
        document({"number": 1, "events": [event("", "propose", "create", 0)]}, outcome="done")
    )
    assert problems == ["requirements[0].outcome: an open requirement has no outcome."]


def test_created_at_must_be_the_time_of_the_creation() -> None:
    _replay, problems = replayed(
        document({"number": 1, "events": [event("", "propose", "create", 0)]}, created_at=t(1).isoformat())
    )
    assert problems == ["requirements[0].created_at: differs from the time of the creation event."]


def test_a_kind_that_does_not_fit_the_move_is_refused() -> None:
    script = [event("", "propose", "create", 0), event("propose", "design", "close", 1)]
    _replay, problems = replayed(document({"number": 1, "events": script}))
    assert problems == ["requirements[0].loops[0].events[1].to: a close goes to no stage: leave “to” empty."]


def test_a_second_creation_is_refused() -> None:
    script = [event("", "propose", "create", 0), event("", "propose", "create", 1)]
    _replay, problems = replayed(document({"number": 1, "events": script}))
    assert problems == [
        "requirements[0].loops[0].events[1].from: only the first event is a creation (with no “from”)."
    ]


def test_a_key_twice_in_a_json_file_is_refused() -> None:
    content = json.loads(document({"number": 1, "events": [event("", "propose", "create", 0)]}))
    content["requirements"].append(content["requirements"][0])
    history = formats.parse(json.dumps(content).encode(), "json")
    assert [str(p) for p in history.problems] == ["requirements[1].key: GROW-1 appears twice in the file."]


def test_a_json_key_with_another_prefix_than_the_files_team_is_refused() -> None:
    content = json.loads(document({"number": 1, "events": [event("", "propose", "create", 0)]}))
    content["requirements"][0]["key"] = "OTHER-1"
    history = formats.parse(json.dumps(content).encode(), "json")
    assert [str(p) for p in history.problems] == [
        "requirements[0].key: “OTHER-1” does not start with the file's team prefix GROW."
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": 5}, "requirements[0].title: must be text."),
        ({"priority": "P9"}, "requirements[0].priority: “P9” is not one of: P0, P1, P2, P3."),
        ({"due_date": "tomorrow"}, "requirements[0].due_date: a date such as 2026-03-02, or nothing."),
        ({"labels": ["x" * 51]}, "requirements[0].labels[0]: at most 50 characters."),
        ({"description": "\ud800"}, "requirements[0].description: is not valid Unicode."),
    ],
)
def test_bad_fields_are_reported_with_their_path(fields: dict[str, Any], message: str) -> None:
    history = formats.parse(
        document({"number": 1, "events": [event("", "propose", "create", 0)]}, **fields), "json"
    )
    assert [str(p) for p in history.problems] == [message]


def test_too_many_problems_are_cut_short_with_a_count() -> None:
    rejected = HistoryRejected(
        [formats.Problem(message="bad", line=n) for n in range(formats.MAX_REPORTED + 5)]
    )
    assert rejected.errors["rows"][-1] == "… and 5 more problems."
    assert len(rejected.as_dict()["errors"]) == formats.MAX_REPORTED
