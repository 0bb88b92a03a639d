"""The history file formats, JSON and CSV, read into plain dataclasses and written from them.

Pure: no queries. Reading checks what can be checked without the target team (syntax, types, dates
with their offsets, lengths, key shapes) and reports every problem with its line (CSV) or path (JSON);
checks against the team's workflow are in `rules.py`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

from opsteam.exceptions import InvalidInput
from workflows.models import AarrrStage, EventKind, IncidentKind, Outcome, Priority, Verdict, WorkType

FORMAT_NAME = "opsteam-history"
FORMAT_VERSION = 1
JSON = "json"
CSV = "csv"
FORMATS = (JSON, CSV)

# Refuse rather than choke: a file larger than this, or with more rows (CSV) / events (JSON).
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
# An answer lists at most this many problems (and says how many it left out).
MAX_REPORTED = 200

CSV_COLUMNS = ("key", "title", "loop", "from", "to", "kind", "actor", "timestamp", "note", "outcome")
CSV_REQUIRED = frozenset({"key", "from", "to", "timestamp"})
# A CSV cell that starts with one of these is a formula to a spreadsheet: it is written with a leading '.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEUTRALISED = re.compile(r"^'+[=+\-@\t\r]")

KEY = re.compile(r"^([A-Z][A-Z0-9]{1,9})-([1-9][0-9]{0,9})$")
MAX_NUMBER = 2_147_483_647  # Requirement.number is a PositiveIntegerField

CLOSE = "close"
ITERATE = "iterate"

# Text limits: the model's columns, and the services' limits for the long fields.
LIMITS = {
    "title": 200,
    "description": 20_000,
    "hypothesis": 5_000,
    "target_metric": 200,
    "design": 10_000,
    "note": 10_000,
    "conclusion": 20_000,
    "actor": 150,
    "label": 50,
    "stage": 32,
}
MAX_LABELS = 50
CHOICES: dict[str, tuple[str, ...]] = {
    "aarrr_stage": ("", *AarrrStage.values),
    "priority": tuple(Priority.values),
    "incident_kind": ("", *IncidentKind.values),
    "work_type": tuple(WorkType.values),
    "verdict": ("", *Verdict.values),
    "outcome": ("", *Outcome.values),
}
DEFAULTS = {"priority": Priority.P2.value, "work_type": WorkType.BASE.value}
TEXT_FIELDS = ("title", "description", "hypothesis", "target_metric", "design")
CHOICE_FIELDS = ("aarrr_stage", "priority", "incident_kind", "work_type")
DATE_FIELDS = ("launch_date", "due_date")

# In CSV, what JSON calls `at` is the `timestamp` column.
_CSV_NAMES = {"at": "timestamp"}


# ----------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (a CSV line or a JSON path), which field, and what."""

    message: str
    field: str = ""
    line: int | None = None
    path: str = ""

    def __str__(self) -> str:
        if self.line is not None:
            if self.field:
                return _("line %(line)d, %(field)s: %(message)s") % {
                    "line": self.line,
                    "field": self.field,
                    "message": self.message,
                }
            return _("line %(line)d: %(message)s") % {"line": self.line, "message": self.message}
        if self.path:
            return f"{self.path}: {self.message}"
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "path": self.path or None, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Where:
    """A place in a file: a CSV line, or a JSON path such as `requirements[3].loops[0].events[2]`."""

    line: int | None = None
    path: str = ""

    def problem(self, field_name: str, message: str) -> Problem:
        if self.line is not None:
            name = _CSV_NAMES.get(field_name, field_name)
            return Problem(message=message, field=name, line=self.line)
        path = f"{self.path}.{field_name}" if self.path and field_name else self.path or field_name
        return Problem(message=message, field=field_name, path=path)

    def child(self, name: str) -> Where:
        return Where(line=self.line, path=f"{self.path}.{name}" if self.path else name)


class HistoryRejected(InvalidInput):
    """The file has problems; nothing was imported. Maps to 400 with each problem as a line of `rows`
    and, structured, in `errors`."""

    code = "history_rejected"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_REPORTED]
        rows = [str(problem) for problem in shown]
        if len(self.problems) > len(shown):
            rows.append(_("… and %(n)d more problems.") % {"n": len(self.problems) - len(shown)})
        super().__init__({"rows": rows})

    def as_dict(self) -> dict[str, list[Any]]:
        return {
            "rows": self.errors["rows"],
            "errors": [problem.as_dict() for problem in self.problems[:MAX_REPORTED]],
        }


def _refuse(message: str) -> HistoryRejected:
    return HistoryRejected([Problem(message=message, field="file")])


# -------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class EventRecord:
    """One transition as the file gives it. `to_stage` may also be "close" or "iterate" (CSV), `kind`
    may be empty (CSV: derived on import), `loop` is None when the file does not say."""

    from_stage: str
    to_stage: str
    kind: str
    actor: str
    at: dt.datetime
    note: str = ""
    loop: int | None = None
    where: Where = field(default=Where(), compare=False)


@dataclass(frozen=True)
class StageRef:
    """A stage named in a row, kept even when the row has other problems, so that an unknown stage
    is reported alongside them."""

    where: Where
    field: str
    slug: str


@dataclass(frozen=True)
class LoopRecord:
    number: int
    conclusion: str = ""
    verdict: str = ""
    where: Where = field(default=Where(), compare=False)


@dataclass
class RequirementRecord:
    number: int
    prefix: str
    fields: dict[str, Any]  # title, description, … as the model holds them
    labels: list[str] = field(default_factory=list)
    created_at: dt.datetime | None = None
    created_by: str | None = None  # None: not given, the actor of the create event
    outcome: str = ""
    loops: list[LoopRecord] = field(default_factory=list)  # JSON; CSV gives none
    events: list[EventRecord] = field(default_factory=list)  # every loop's, in file order
    where: Where = field(default=Where(), compare=False)
    broken: bool = False  # some of its rows could not be read: its log is not replayed
    stage_refs: list[StageRef] = field(default_factory=list)  # every stage its rows name

    @property
    def key(self) -> str:
        return f"{self.prefix}-{self.number}"


@dataclass
class HistoryFile:
    team_prefix: str
    team_name: str = ""
    time_zone: str = "UTC"
    requirements: list[RequirementRecord] = field(default_factory=list)
    file_format: str = JSON
    # What was wrong with rows that could be told apart: the import reports these together with what
    # the replay against the team's workflow finds.
    problems: list[Problem] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- reading


def guess_format(name: str, content: bytes) -> str:
    """From the file name's extension, else from the first character (a JSON file is an object)."""
    lowered = name.lower()
    for file_format in FORMATS:
        if lowered.endswith(f".{file_format}"):
            return file_format
    head = content[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return JSON if head.startswith(b"{") else CSV


def parse(content: bytes, file_format: str) -> HistoryFile:
    """Read a history file. A file that cannot be read at all raises HistoryRejected; problems with
    single rows or entries are left in `problems`, their requirements marked broken."""
    if file_format not in FORMATS:
        raise _refuse(_("Unknown format “%(format)s”: use json or csv.") % {"format": file_format})
    if len(content) > MAX_BYTES:
        raise _refuse(_("The file is larger than %(mb)d MB.") % {"mb": MAX_BYTES // (1024 * 1024)})
    if not content.strip():
        raise _refuse(_("The file is empty."))
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(
            _("The file is not UTF-8 text (byte %(position)d).") % {"position": exc.start + 1}
        ) from exc
    return parse_json(text) if file_format == JSON else parse_csv(text)


class _Problems:
    """Collects problems; stops the read once there are far more than anyone will read."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, problem: Problem) -> None:
        self.items.append(problem)

    def text(
        self, value: Any, where: Where, name: str, *, limit: int, required: bool = False, strip: bool = True
    ) -> str:
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.add(where.problem(name, _("must be text.")))
            return ""
        if strip:
            value = value.strip()
        if "\x00" in value:
            self.add(where.problem(name, _("contains a NUL character.")))
            return ""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.add(where.problem(name, _("is not valid Unicode.")))
            return ""
        if len(value) > limit:
            self.add(where.problem(name, _("at most %(n)d characters.") % {"n": limit}))
            return value[:limit]
        if required and not value:
            self.add(where.problem(name, _("is required.")))
        return value

    def choice(self, value: str, where: Where, name: str) -> str:
        if value not in CHOICES[name]:
            self.add(
                where.problem(
                    name,
                    _("“%(value)s” is not one of: %(choices)s.")
                    % {"value": value, "choices": ", ".join(c for c in CHOICES[name] if c)},
                )
            )
            return ""
        return value

    def timestamp(self, value: Any, where: Where, name: str) -> dt.datetime | None:
        if not isinstance(value, str) or not value.strip():
            self.add(where.problem(name, _("a timestamp with its UTC offset is required.")))
            return None
        value = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            self.add(
                where.problem(
                    name,
                    _("“%(value)s” is not an ISO 8601 timestamp such as 2026-03-02T09:00:00+08:00.")
                    % {"value": value[:40]},
                )
            )
            return None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.add(
                where.problem(
                    name,
                    _("“%(value)s” has no UTC offset: add one, such as +08:00 or Z.") % {"value": value[:40]},
                )
            )
            return None
        if not 1900 <= parsed.year <= 9998:
            self.add(where.problem(name, _("“%(value)s” is out of range.") % {"value": value[:40]}))
            return None
        return parsed.astimezone(dt.UTC)

    def date(self, value: Any, where: Where, name: str) -> dt.date | None:
        if value in (None, ""):
            return None
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        self.add(where.problem(name, _("a date such as 2026-03-02, or nothing.")))
        return None

    def number(self, value: Any, where: Where, name: str) -> int | None:
        """A positive whole number (JSON number, or digits in a CSV cell)."""
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip()) if len(value.strip()) <= 10 else -1
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUMBER:
            self.add(where.problem(name, _("a whole number from 1 is required.")))
            return None
        return value

    def key(self, value: Any, where: Where) -> tuple[str, int] | None:
        text = self.text(value, where, "key", limit=24, required=True).upper()
        if not text:
            return None
        match = KEY.match(text)
        if match is None:
            self.add(where.problem("key", _("“%(key)s” is not a key such as GROW-42.") % {"key": text}))
            return None
        return match.group(1), int(match.group(2))

    def kind(self, value: str, where: Where) -> str:
        if value and value not in EventKind.values:
            self.add(
                where.problem(
                    "kind",
                    _("“%(value)s” is not one of: %(choices)s.")
                    % {"value": value, "choices": ", ".join(EventKind.values)},
                )
            )
            return ""
        return value


# ------------------------------------------------------------------------------------------------ JSON


def parse_json(text: str) -> HistoryFile:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HistoryRejected(
            [
                Problem(
                    message=_("not valid JSON (%(error)s), column %(column)d.")
                    % {"error": exc.msg, "column": exc.colno},
                    field="file",
                    line=exc.lineno,
                )
            ]
        ) from exc
    except RecursionError as exc:
        raise _refuse(_("The JSON is nested too deeply.")) from exc
    problems = _Problems()
    if not isinstance(document, dict):
        raise _refuse(_("A history file is a JSON object."))
    if document.get("format") != FORMAT_NAME or document.get("version") != FORMAT_VERSION:
        raise _refuse(
            _("This is not an opsteam history file: expected format “%(name)s”, version %(version)d.")
            % {"name": FORMAT_NAME, "version": FORMAT_VERSION}
        )
    team = document.get("team")
    root = Where(path="team")
    if not isinstance(team, dict):
        raise _refuse(_("The file names no team (key_prefix, name, time_zone)."))
    prefix = problems.text(team.get("key_prefix"), root, "key_prefix", limit=10, required=True).upper()
    if prefix and not re.fullmatch(r"[A-Z][A-Z0-9]{1,9}", prefix):
        problems.add(root.problem("key_prefix", _("2 to 10 capital letters or digits, such as GROW.")))
    history = HistoryFile(
        team_prefix=prefix,
        team_name=problems.text(team.get("name"), root, "name", limit=100),
        time_zone=problems.text(team.get("time_zone"), root, "time_zone", limit=64) or "UTC",
        file_format=JSON,
    )
    requirements = document.get("requirements")
    if not isinstance(requirements, list):
        raise HistoryRejected([Where(path="requirements").problem("", _("must be a list."))])
    if len(requirements) > MAX_ROWS:
        raise _refuse(_("More than %(n)d requirements.") % {"n": MAX_ROWS})
    events = 0
    for index, item in enumerate(requirements):
        where = Where(path=f"requirements[{index}]")
        if not isinstance(item, dict):
            problems.add(where.problem("", _("must be an object.")))
            continue
        events += _event_count(item.get("loops"))
        if events > MAX_ROWS:
            raise _refuse(_("More than %(n)d events.") % {"n": MAX_ROWS})
        before = len(problems.items)
        record = _json_requirement(item, where, prefix, problems)
        if record is not None:
            record.broken = len(problems.items) > before
            history.requirements.append(record)
    _check_unique_keys(history.requirements, problems)
    history.problems = problems.items
    return history


def _event_count(loops: Any) -> int:
    if not isinstance(loops, list):
        return 0
    return sum(
        len(loop["events"])
        for loop in loops
        if isinstance(loop, dict) and isinstance(loop.get("events"), list)
    )


def _json_requirement(
    item: Mapping[str, Any], where: Where, prefix: str, problems: _Problems
) -> RequirementRecord | None:
    key = problems.key(item.get("key"), where)
    fields: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        fields[name] = problems.text(
            item.get(name),
            where,
            name,
            limit=LIMITS[name],
            required=name == "title",
            strip=name != "description",
        )
    for name in CHOICE_FIELDS:
        value = problems.text(item.get(name), where, name, limit=32) or DEFAULTS.get(name, "")
        fields[name] = problems.choice(value, where, name) or DEFAULTS.get(name, "")
    for name in DATE_FIELDS:
        fields[name] = problems.date(item.get(name), where, name)
    labels: list[str] = []
    raw_labels = item.get("labels") or []
    if not isinstance(raw_labels, list) or len(raw_labels) > MAX_LABELS:
        problems.add(where.problem("labels", _("a list of at most %(n)d labels.") % {"n": MAX_LABELS}))
    else:
        for n, label in enumerate(raw_labels):
            name = problems.text(label, where, f"labels[{n}]", limit=LIMITS["label"], required=True)
            if name and name not in labels:
                labels.append(name)
    created_at = None
    if item.get("created_at") not in (None, ""):
        created_at = problems.timestamp(item.get("created_at"), where, "created_at")
    created_by = None
    if item.get("created_by") is not None:
        created_by = problems.text(item.get("created_by"), where, "created_by", limit=LIMITS["actor"])
    outcome = problems.choice(
        problems.text(item.get("outcome"), where, "outcome", limit=16), where, "outcome"
    )

    loops: list[LoopRecord] = []
    events: list[EventRecord] = []
    stage_refs: list[StageRef] = []
    raw_loops = item.get("loops")
    if not isinstance(raw_loops, list) or not raw_loops:
        problems.add(where.problem("loops", _("a list of loops, the first holding the creation.")))
        raw_loops = []
    for index, raw_loop in enumerate(raw_loops):
        loop_where = where.child(f"loops[{index}]")
        if not isinstance(raw_loop, dict):
            problems.add(loop_where.problem("", _("must be an object.")))
            continue
        number = problems.number(raw_loop.get("number"), loop_where, "number")
        if number is not None and number != index + 1:
            problems.add(
                loop_where.problem(
                    "number",
                    _(
                        "loop %(number)d out of order: loops are numbered 1, 2, 3 … and this is loop %(expected)d."
                    )
                    % {"number": number, "expected": index + 1},
                )
            )
        verdict = problems.text(raw_loop.get("verdict"), loop_where, "verdict", limit=16)
        loops.append(
            LoopRecord(
                number=index + 1,
                conclusion=problems.text(
                    raw_loop.get("conclusion"), loop_where, "conclusion", limit=LIMITS["conclusion"]
                ),
                verdict=problems.choice(verdict, loop_where, "verdict"),
                where=loop_where,
            )
        )
        raw_events = raw_loop.get("events") or []
        if not isinstance(raw_events, list):
            problems.add(loop_where.problem("events", _("must be a list.")))
            continue
        for event_index, raw_event in enumerate(raw_events):
            event_where = loop_where.child(f"events[{event_index}]")
            if not isinstance(raw_event, dict):
                problems.add(event_where.problem("", _("must be an object.")))
                continue
            event = _json_event(raw_event, event_where, index + 1, problems, stage_refs)
            if event is not None:
                events.append(event)
    if key is None:
        return None
    if prefix and key[0] != prefix:
        problems.add(
            where.problem(
                "key",
                _("“%(key)s” does not start with the file's team prefix %(prefix)s.")
                % {"key": f"{key[0]}-{key[1]}", "prefix": prefix},
            )
        )
    return RequirementRecord(
        number=key[1],
        prefix=key[0],
        fields=fields,
        labels=labels,
        created_at=created_at,
        created_by=created_by,
        outcome=outcome,
        loops=loops,
        events=events,
        where=where,
        stage_refs=stage_refs,
    )


def _json_event(
    raw: Mapping[str, Any], where: Where, loop: int, problems: _Problems, stage_refs: list[StageRef]
) -> EventRecord | None:
    before = len(problems.items)
    from_stage = problems.text(raw.get("from"), where, "from", limit=LIMITS["stage"])
    to_stage = problems.text(raw.get("to"), where, "to", limit=LIMITS["stage"])
    stage_refs += _stage_refs(where, from_stage, to_stage)
    kind = problems.kind(problems.text(raw.get("kind"), where, "kind", limit=16), where)
    actor = problems.text(raw.get("actor"), where, "actor", limit=LIMITS["actor"])
    note = problems.text(raw.get("note"), where, "note", limit=LIMITS["note"], strip=False)
    at = problems.timestamp(raw.get("at"), where, "at")
    if at is None or len(problems.items) > before:
        return None
    return EventRecord(
        from_stage=from_stage,
        to_stage=to_stage,
        kind=kind,
        actor=actor,
        at=at,
        note=note,
        loop=loop,
        where=where,
    )


def _check_unique_keys(requirements: list[RequirementRecord], problems: _Problems) -> None:
    seen: dict[int, Where] = {}
    for record in requirements:
        if record.number in seen:
            problems.add(
                record.where.problem("key", _("%(key)s appears twice in the file.") % {"key": record.key})
            )
        seen.setdefault(record.number, record.where)


# ------------------------------------------------------------------------------------------------- CSV


def unneutralise(value: str) -> str:
    """Undo `neutralise`: the leading ' an export put before a formula-like cell."""
    return value[1:] if _NEUTRALISED.match(value) else value


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading '. So does one that already starts
    with quotes before such a character, so that `unneutralise` restores every value exactly."""
    stripped = value.lstrip("'")
    return f"'{value}" if stripped.startswith(FORMULA_START) else value


class _CsvSyntaxError(Exception):
    def __init__(self, line: int, error: csv.Error) -> None:
        super().__init__(str(error))
        self.line = line


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(the line a record starts on, its cells); a record may span lines inside quotes."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _CsvSyntaxError(line, exc) from exc
        yield line, row
        line = reader.line_num + 1


def parse_csv(text: str) -> HistoryFile:
    problems = _Problems()
    rows = _csv_rows(text)
    try:
        first = next(rows, None)
        if first is None:
            raise _refuse(_("The file is empty."))
        header = [cell.strip().lower() for cell in first[1]]
        columns = _csv_header(header)
        by_key: dict[int, RequirementRecord] = {}
        prefix = ""
        count = 0
        for line, row in rows:
            if not any(cell.strip() for cell in row):
                continue
            count += 1
            if count > MAX_ROWS:
                raise _refuse(_("More than %(n)d rows.") % {"n": MAX_ROWS})
            where = Where(line=line)
            if len(row) != len(header):
                problems.add(
                    where.problem(
                        "",
                        _("%(cells)d cells, but the header has %(columns)d.")
                        % {"cells": len(row), "columns": len(header)},
                    )
                )
                continue
            cells = {name: unneutralise(row[index]) for name, index in columns.items()}
            before = len(problems.items)
            key = problems.key(cells["key"], where)
            row_refs: list[StageRef] = []
            event = _csv_event(cells, where, problems, row_refs)
            title = problems.text(cells.get("title"), where, "title", limit=LIMITS["title"])
            outcome = problems.choice(
                problems.text(cells.get("outcome"), where, "outcome", limit=16), where, "outcome"
            )
            if key is None:
                continue
            if not prefix:
                prefix = key[0]
            elif key[0] != prefix:
                problems.add(
                    where.problem(
                        "key",
                        _("“%(key)s” has another prefix than the file's first key (%(prefix)s).")
                        % {"key": f"{key[0]}-{key[1]}", "prefix": prefix},
                    )
                )
                continue
            record = by_key.get(key[1])
            if record is None:
                fields: dict[str, Any] = {name: "" for name in TEXT_FIELDS}
                fields.update({name: DEFAULTS.get(name, "") for name in CHOICE_FIELDS})
                fields.update({name: None for name in DATE_FIELDS})
                record = by_key[key[1]] = RequirementRecord(
                    number=key[1], prefix=key[0], fields=fields, where=where
                )
            if title and not record.fields["title"]:
                record.fields["title"] = title
            if outcome:
                if event is not None and not _is_close(event):
                    problems.add(where.problem("outcome", _("an outcome is given only on the close row.")))
                record.outcome = outcome
            if event is not None:
                record.events.append(event)
            record.stage_refs += row_refs
            if len(problems.items) > before:
                record.broken = True
    except _CsvSyntaxError as exc:
        problems.add(
            Problem(message=_("not valid CSV: %(error)s.") % {"error": exc}, field="", line=exc.line)
        )
        raise HistoryRejected(problems.items) from exc
    for record in by_key.values():
        if not record.fields["title"]:
            problems.add(record.where.problem("title", _("%(key)s has no title.") % {"key": record.key}))
    return HistoryFile(
        team_prefix=prefix, requirements=list(by_key.values()), file_format=CSV, problems=problems.items
    )


def _csv_header(header: list[str]) -> dict[str, int]:
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        raise _refuse(_("Columns named twice: %(names)s.") % {"names": ", ".join(duplicates)})
    missing = sorted(CSV_REQUIRED - set(header))
    if missing:
        raise _refuse(
            _("The header lacks %(missing)s; it reads %(columns)s.")
            % {"missing": ", ".join(missing), "columns": ",".join(CSV_COLUMNS)}
        )
    return {name: header.index(name) for name in CSV_COLUMNS if name in header}


def _stage_refs(where: Where, from_stage: str, to_stage: str) -> list[StageRef]:
    refs = [StageRef(where, "from", from_stage)] if from_stage else []
    if to_stage not in ("", CLOSE, ITERATE):
        refs.append(StageRef(where, "to", to_stage))
    return refs


def _is_close(event: EventRecord) -> bool:
    return event.kind == EventKind.CLOSE or (bool(event.from_stage) and event.to_stage in ("", CLOSE))


def _csv_event(
    cells: Mapping[str, str], where: Where, problems: _Problems, stage_refs: list[StageRef]
) -> EventRecord | None:
    before = len(problems.items)
    loop = None
    if cells.get("loop", "").strip():
        loop = problems.number(cells["loop"], where, "loop")
    from_stage = problems.text(cells["from"], where, "from", limit=LIMITS["stage"])
    to_stage = problems.text(cells["to"], where, "to", limit=LIMITS["stage"])
    stage_refs += _stage_refs(where, from_stage, to_stage)
    kind = problems.kind(problems.text(cells.get("kind"), where, "kind", limit=16).lower(), where)
    actor = problems.text(cells.get("actor"), where, "actor", limit=LIMITS["actor"])
    note = problems.text(cells.get("note"), where, "note", limit=LIMITS["note"], strip=False)
    at = problems.timestamp(cells["timestamp"], where, "at")
    if at is None or len(problems.items) > before:
        return None
    return EventRecord(
        from_stage=from_stage,
        to_stage=to_stage,
        kind=kind,
        actor=actor,
        at=at,
        note=note,
        loop=loop,
        where=where,
    )


# ------------------------------------------------------------------------------------------- writing


def _local(at: dt.datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).isoformat()


def to_json(history: HistoryFile) -> dict[str, Any]:
    """The JSON document (a dict ready for json.dumps). Timestamps in the team's time zone, with offset."""
    zone = ZoneInfo(history.time_zone)
    requirements = []
    for record in history.requirements:
        item: dict[str, Any] = {"key": record.key}
        for name in TEXT_FIELDS:
            item[name] = record.fields.get(name, "")
        for name in CHOICE_FIELDS:
            item[name] = record.fields.get(name, "")
        for name in DATE_FIELDS:
            value = record.fields.get(name)
            item[name] = value.isoformat() if value else None
        item["labels"] = list(record.labels)
        item["created_at"] = _local(record.created_at, zone) if record.created_at else None
        item["created_by"] = record.created_by
        item["outcome"] = record.outcome
        item["loops"] = [
            {
                "number": loop.number,
                "conclusion": loop.conclusion,
                "verdict": loop.verdict,
                "events": [
                    {
                        "from": event.from_stage,
                        "to": event.to_stage,
                        "kind": event.kind,
                        "actor": event.actor or None,
                        "at": _local(event.at, zone),
                        "note": event.note,
                    }
                    for event in record.events
                    if event.loop == loop.number
                ],
            }
            for loop in record.loops
        ]
        requirements.append(item)
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "team": {
            "key_prefix": history.team_prefix,
            "name": history.team_name,
            "time_zone": history.time_zone,
        },
        "requirements": requirements,
    }


def dump_json(history: HistoryFile) -> str:
    return json.dumps(to_json(history), ensure_ascii=False, indent=2) + "\n"


def dump_csv(history: HistoryFile) -> str:
    """One row per event, the create row included, with a UTF-8 byte order mark so that spreadsheet
    programs read Chinese text right. Formula-like cells are neutralised."""
    zone = ZoneInfo(history.time_zone)
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in history.requirements:
        for event in record.events:
            closing = event.kind == EventKind.CLOSE
            writer.writerow(
                [
                    neutralise(str(cell))
                    for cell in (
                        record.key,
                        record.fields.get("title", ""),
                        event.loop or "",
                        event.from_stage,
                        event.to_stage,
                        event.kind,
                        event.actor,
                        _local(event.at, zone),
                        event.note,
                        record.outcome if closing else "",
                    )
                ]
            )
    return buffer.getvalue()
