"""manage.py export_history and import_history."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from history import formats
from roles.models import Team
from tests.conftest import Crew
from tests.history.conftest import counts, log_of, loops_of
from workflows.models import Requirement

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_export_writes_json_to_standard_output(crew: Crew, history: list[Requirement]) -> None:
    document = json.loads(run("export_history", "GROW"))
    assert [r["key"] for r in document["requirements"]] == ["GROW-1", "GROW-2", "GROW-3"]


def test_export_finds_the_team_by_id_or_lower_case_prefix(crew: Crew, history: list[Requirement]) -> None:
    assert run("export_history", str(crew.team.pk)) == run("export_history", "grow")


@pytest.mark.parametrize("file_format", ["json", "csv"])
def test_export_then_import_into_an_empty_team_reproduces_the_log(
    crew: Crew, history: list[Requirement], empty_team: Team, tmp_path: Path, file_format: str
) -> None:
    path = tmp_path / f"grow.{file_format}"
    run("export_history", "GROW", "--output", str(path))
    output = run("import_history", str(path), "--team", "NEW")
    assert output == (
        "Imported into NEW: 3 requirements, 5 loops, 19 events; 5 placeholder users; 0 already there, 0 extended.\n"
    )
    assert log_of(empty_team) == log_of(crew.team)
    assert loops_of(empty_team) == loops_of(crew.team)


def test_the_output_files_extension_chooses_csv(
    crew: Crew, history: list[Requirement], tmp_path: Path
) -> None:
    path = tmp_path / "grow.csv"
    run("export_history", "GROW", "-o", str(path))
    assert path.read_text(encoding="utf-8-sig").startswith(",".join(formats.CSV_COLUMNS))


def test_import_defaults_to_the_team_the_file_names(
    crew: Crew, history: list[Requirement], tmp_path: Path
) -> None:
    path = tmp_path / "grow.json"
    run("export_history", "GROW", "--output", str(path))
    before = counts()
    assert "0 requirements" in run("import_history", str(path))
    assert counts() == before


def test_a_dry_run_says_what_it_would_import(
    crew: Crew, history: list[Requirement], empty_team: Team, tmp_path: Path
) -> None:
    path = tmp_path / "grow.json"
    run("export_history", "GROW", "--output", str(path))
    before = counts()
    assert run("import_history", str(path), "--team", "NEW", "--dry-run").startswith(
        "Would import into NEW: 3 requirements"
    )
    assert counts() == before


def test_a_bad_file_lists_its_problems_and_imports_nothing(crew: Crew, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "key,title,loop,from,to,kind,actor,timestamp,note\n"
        "GROW-1,Red packet,1,,propose,create,ops,2026-03-02T09:00:00+00:00,\n"
        "GROW-1,Red packet,1,propose,desing,forward,ops,2026-03-02T15:00:00+00:00,\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError) as caught:
        run("import_history", str(path))
    assert str(caught.value) == (
        "Nothing was imported; the file has these problems:\n  line 3, to: unknown stage “desing”."
    )
    assert counts() == (0, 0, 0)


def test_an_unknown_team_is_a_command_error(crew: Crew, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No team with key prefix or id “NOPE”"):
        run("export_history", "NOPE")
    path = tmp_path / "grow.json"
    run("export_history", "GROW", "--output", str(path))
    with pytest.raises(CommandError, match="No team with key prefix or id “NOPE”"):
        run("import_history", str(path), "--team", "NOPE")


def test_a_file_for_a_team_that_does_not_exist_needs_team(crew: Crew, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text(
        "key,title,from,to,timestamp\nOTHER-1,x,,propose,2026-03-02T09:00:00Z\n", encoding="utf-8"
    )
    with pytest.raises(CommandError, match="No team has the key prefix OTHER"):
        run("import_history", str(path))


def test_a_file_past_the_size_limit_is_refused_before_it_is_read(
    crew: Crew, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "MAX_BYTES", 10)
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 11)
    with pytest.raises(CommandError, match="is larger than"):
        run("import_history", str(path))
