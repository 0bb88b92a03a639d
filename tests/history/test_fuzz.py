"""Whatever a file holds, reading and importing it ends in a history or a list of problems, never in
another exception (which the API would answer with a 500)."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from history import formats, selectors, services
from history.formats import HistoryRejected
from roles.models import Team
from tests.conftest import Crew
from tests.history.conftest import counts, log_of, loops_of, state_of

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "opsteam-hypothesis")
FUZZ = settings(
    max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

STAGES = st.sampled_from(["", "propose", "design", "build", "optimize", "close", "iterate", "desing", "=x"])
KINDS = st.sampled_from(["", "create", "forward", "rework", "override", "iterate", "close", "odd"])
TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        ["2026-03-02T09:00:00", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00", "", "x"]
    ),
)
CELL = st.text(max_size=12)


def csv_row(key: str, loop: str, frm: str, to: str, kind: str, actor: str, when: str, note: str) -> str:
    cells = [key, "Title", loop, frm, to, kind, actor, when, note]
    return ",".join('"' + cell.replace('"', '""') + '"' for cell in cells)


ROWS = st.lists(
    st.builds(
        csv_row,
        st.sampled_from(["GROW-1", "GROW-2", "grow-3", "OTHER-1", "GROW-0", "GROW-99999999999", ""]),
        st.sampled_from(["", "1", "2", "3", "0", "x"]),
        STAGES,
        STAGES,
        KINDS,
        st.sampled_from(["", "ops", "lead", "Zhang San", "imported.x", "@a", "x" * 151]),
        TIMES,
        CELL,
    ),
    max_size=12,
)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused(content: bytes) -> None:
    for file_format in formats.FORMATS:
        with contextlib.suppress(HistoryRejected):
            formats.parse(content, file_format)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | TIMES | STAGES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
EVENT = st.fixed_dictionaries(
    {"from": STAGES, "to": STAGES, "kind": KINDS, "at": TIMES},
    optional={"actor": JSON_VALUES, "note": JSON_VALUES},
)
REQUIREMENT = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["GROW-1", "GROW-2", "OTHER-1", "GROW-x"]) | JSON_VALUES,
        "title": st.sampled_from(["Red packet", ""]) | JSON_VALUES,
        "loops": st.lists(
            st.fixed_dictionaries(
                {
                    "number": st.integers(0, 3) | JSON_VALUES,
                    "events": st.lists(EVENT, max_size=4) | JSON_VALUES,
                },
                optional={"verdict": JSON_VALUES, "conclusion": JSON_VALUES},
            ),
            max_size=3,
        )
        | JSON_VALUES,
    },
    optional={
        name: JSON_VALUES
        for name in ["priority", "labels", "created_at", "created_by", "outcome", "due_date"]
    },
)


def json_document(requirements: Any) -> bytes:
    return json.dumps(
        {
            "format": "opsteam-history",
            "version": 1,
            "team": {"key_prefix": "GROW", "name": "Growth", "time_zone": "UTC"},
            "requirements": requirements,
        }
    ).encode()


@pytest.mark.django_db
@FUZZ
@given(rows=ROWS)
def test_any_csv_rows_import_or_are_refused_whole(crew: Crew, rows: list[str]) -> None:
    content = ("key,title,loop,from,to,kind,actor,timestamp,note\n" + "\n".join(rows)).encode()
    before = counts()
    try:
        result = services.history_import(
            team=crew.team, content=content, actor=None, file_format="csv", dry_run=True
        )
    except HistoryRejected:
        assert counts() == before
    else:
        assert result.dry_run


@pytest.mark.django_db
@FUZZ
@given(requirements=st.lists(REQUIREMENT, max_size=3) | JSON_VALUES)
def test_any_json_document_imports_or_is_refused_whole(crew: Crew, requirements: Any) -> None:
    before = counts()
    try:
        services.history_import(
            team=crew.team, content=json_document(requirements), actor=None, file_format="json"
        )
    except HistoryRejected:
        assert counts() == before


# ------------------------------------------------------------------- valid histories, generated


STAGE_SLUGS = ["propose", "design", "build", "instrument", "analyze", "optimize"]
DEFINED = {
    ("propose", "design"): "forward",
    ("design", "build"): "forward",
    ("build", "instrument"): "forward",
    ("instrument", "analyze"): "forward",
    ("analyze", "optimize"): "forward",
    ("design", "propose"): "rework",
    ("build", "design"): "rework",
    ("instrument", "build"): "rework",
    ("analyze", "instrument"): "rework",
}
OFFSETS = [dt.timedelta(0), dt.timedelta(hours=8), dt.timedelta(hours=-5, minutes=-30)]
_numbers = itertools.count(1)


@st.composite
def requirement_rows(draw: st.DrawFn) -> tuple[int, list[str], list[tuple[Any, ...]]]:
    """A requirement's CSV rows, moved at random through the default workflow (kinds given or left
    to derive, times in several offsets, ties included), and the log an import must give."""
    number = next(_numbers)
    key = f"GROW-{number}"
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=draw(st.integers(0, 10**7)))
    stage, loop = "propose", 1

    def stamp() -> str:
        return when.astimezone(dt.timezone(draw(st.sampled_from(OFFSETS)))).isoformat()

    rows = [f"{key},R{number},1,,propose,create,ops,{stamp()},,"]
    log = [(number, 1, "", "propose", "create", when)]
    moves = draw(
        st.lists(
            st.tuples(
                st.sampled_from([*STAGE_SLUGS, "iterate", "close"]),
                st.sampled_from([0, 1, 3600, 86_400 * 3]),
                st.booleans(),
                st.sampled_from(["ops", "lead", "Zhang San", ""]),
            ),
            max_size=12,
        )
    )
    for target, delta, give_kind, actor in moves:
        if target == stage:
            continue
        when += dt.timedelta(seconds=delta)
        if target == "close":
            outcome = draw(st.sampled_from(["done", "wont_do", ""]))
            rows.append(
                f"{key},R{number},{loop},{stage},,{'close' if give_kind else ''},{actor},{stamp()},,{outcome}"
            )
            log.append((number, loop, stage, "", "close", when))
            break
        if target == "iterate":
            # Named by its kind, or by the next loop's number on its row.
            row_loop, kind = (loop, "iterate") if give_kind else (loop + 1, "")
            rows.append(f"{key},R{number},{row_loop},{stage},propose,{kind},{actor},{stamp()},next,")
            log.append((number, loop, stage, "propose", "iterate", when))
            stage, loop = "propose", loop + 1
            continue
        derived = DEFINED.get((stage, target), "override")
        kind = draw(st.sampled_from(["forward", "rework", "override"])) if give_kind else ""
        rows.append(f'{key},R{number},{loop},{stage},{target},{kind},{actor},{stamp()},"a, note",')
        log.append((number, loop, stage, target, kind or derived, when))
        stage = target
    return number, rows, log


HEADER = "key,title,loop,from,to,kind,actor,timestamp,note,outcome"


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(generated=st.lists(requirement_rows(), min_size=1, max_size=3))
def test_generated_histories_import_exactly_once_and_survive_the_round_trip(
    crew: Crew, empty_team: Team, generated: list[tuple[int, list[str], list[tuple[Any, ...]]]]
) -> None:
    rows = [row for _number, requirement, _log in generated for row in requirement]
    content = "\n".join([HEADER, *rows]).encode()
    services.history_import(team=crew.team, content=content, actor=None, file_format="csv")
    numbers = {number for number, _rows, _log in generated}
    assert [e for e in log_of(crew.team) if e[0] in numbers] == [e for _n, _r, log in generated for e in log]

    before = counts()
    again = services.history_import(team=crew.team, content=content, actor=None, file_format="csv")
    assert (counts(), again.skipped) == (before, len(generated))

    for file_format in formats.FORMATS:
        history = selectors.history_for_team(team=crew.team)
        text = formats.dump_csv(history) if file_format == "csv" else formats.dump_json(history)
        services.history_import(team=empty_team, content=text.encode(), actor=None, file_format=file_format)
        assert log_of(empty_team) == log_of(crew.team)
        assert loops_of(empty_team) == loops_of(crew.team)
        assert state_of(empty_team) == state_of(crew.team)
