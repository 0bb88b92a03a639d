"""Reading an observations CSV: every row checked before anything is written; each problem named with
its line. Columns: metric, date, value, and optionally segment and loop (a requirement key, with
`#n` for a loop other than the current one, e.g. GROW-12#2)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext as _

from history.formats import HistoryRejected, Problem

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
REQUIRED_COLUMNS = ("metric", "date", "value")
OPTIONAL_COLUMNS = ("segment", "loop")
LOOP_REFERENCE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9]{0,9}-\d{1,9})(?:#(?P<number>\d{1,6}))?$")
VALUE_LIMIT = Decimal("1e14")


class ObservationsRejected(HistoryRejected):
    """The file has problems; nothing was imported. 400 with each problem as a line of `rows`."""

    code = "observations_rejected"


@dataclass(frozen=True)
class ObservationRow:
    line: int
    metric: str
    date: dt.date
    value: Decimal
    segment: str
    loop_key: str
    loop_number: int | None


def parse_decimal(text: str) -> Decimal | None:
    """A number as people type it: 12.5, 1,234.5, 25%, -3; None when it is not one."""
    cleaned = text.strip().replace(",", "").removesuffix("%").strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite() or abs(value) >= VALUE_LIMIT:
        return None
    return value.quantize(Decimal("0.0001"))


def parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(the line a record starts on, its cells). Strict quoting, so an unclosed quote is an error rather
    than a value that swallows the rest of the file; a cell past the csv module's size limit, or any
    other unreadable record, rejects the file naming its line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ObservationsRejected(
                [Problem(message=_("Not readable as CSV: %(error)s.") % {"error": exc}, line=line)]
            ) from exc
        yield line, cells
        line = reader.line_num + 1


def read_csv(content: bytes) -> list[ObservationRow]:
    """The rows of an observations file, or ObservationsRejected with every problem found."""
    rows, problems = read_csv_rows(content)
    if problems:
        raise ObservationsRejected(problems)
    return rows


def read_csv_rows(content: bytes) -> tuple[list[ObservationRow], list[Problem]]:
    """The well-formed rows and the problems of the others, so a caller that checks more (the metric
    names, the loops) can report every problem of the file at once. A file that cannot be read at all
    raises ObservationsRejected."""
    if len(content) > MAX_BYTES:
        raise ObservationsRejected(
            [
                Problem(
                    message=_("The file is larger than %(mb)d MB.") % {"mb": MAX_BYTES // 2**20}, field="file"
                )
            ]
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ObservationsRejected(
            [
                Problem(
                    message=_("The file is not UTF-8 text (byte %(position)d).")
                    % {"position": exc.start + 1},
                    field="file",
                )
            ]
        ) from exc
    if not text.strip():
        raise ObservationsRejected([Problem(message=_("The file is empty."), field="file")])
    if "\x00" in text:
        # PostgreSQL cannot store a NUL in text; it is never part of a real observations file.
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ObservationsRejected([Problem(message=_("The file contains a NUL character."), line=line)])
    records = _records(text)
    header = [name.strip().lower() for name in next(records)[1]]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        header_problems = []
        if missing:
            header_problems.append(
                Problem(message=_("Missing columns: %(names)s.") % {"names": ", ".join(missing)}, line=1)
            )
        if unknown:
            header_problems.append(
                Problem(message=_("Unknown columns: %(names)s.") % {"names": ", ".join(unknown)}, line=1)
            )
        raise ObservationsRejected(header_problems)
    rows: list[ObservationRow] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, dt.date, str], int] = {}
    for line, cells in records:
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) + len(problems) >= MAX_ROWS:
            problems.append(Problem(message=_("More than %(n)d rows.") % {"n": MAX_ROWS}, line=line))
            break
        if len(cells) != len(header):
            problems.append(
                Problem(
                    message=_("%(found)d cells where the header has %(expected)d.")
                    % {"found": len(cells), "expected": len(header)},
                    line=line,
                )
            )
            continue
        record = dict(zip(header, (cell.strip() for cell in cells), strict=True))
        row_problems = []
        metric = record["metric"]
        if not metric:
            row_problems.append(Problem(message=_("Name the metric."), field="metric", line=line))
        day = parse_date(record["date"])
        if day is None:
            row_problems.append(
                Problem(
                    message=_("Not a date (YYYY-MM-DD): “%(value)s”.") % {"value": record["date"][:40]},
                    field="date",
                    line=line,
                )
            )
        value = parse_decimal(record["value"])
        if value is None:
            row_problems.append(
                Problem(
                    message=_("Not a number: “%(value)s”.") % {"value": record["value"][:40]},
                    field="value",
                    line=line,
                )
            )
        segment = record.get("segment", "")
        if len(segment) > 100:
            row_problems.append(
                Problem(message=_("At most %(n)d characters.") % {"n": 100}, field="segment", line=line)
            )
        loop_key, loop_number = "", None
        if record.get("loop"):
            match = LOOP_REFERENCE.match(record["loop"])
            if match is None:
                row_problems.append(
                    Problem(
                        message=_("Not a requirement key such as GROW-12 or GROW-12#2."),
                        field="loop",
                        line=line,
                    )
                )
            else:
                loop_key = match["key"].upper()
                loop_number = int(match["number"]) if match["number"] else None
        if row_problems:
            problems.extend(row_problems)
            continue
        assert day is not None and value is not None
        identity = (metric.casefold(), day, segment)
        if identity in seen:
            problems.append(
                Problem(
                    message=_("The same metric, date and segment as line %(line)d.")
                    % {"line": seen[identity]},
                    line=line,
                )
            )
            continue
        seen[identity] = line
        rows.append(ObservationRow(line, metric, day, value, segment, loop_key, loop_number))
    if not rows and not problems:
        raise ObservationsRejected([Problem(message=_("The file has no rows."), field="file")])
    return rows, problems
