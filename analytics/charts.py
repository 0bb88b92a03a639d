"""Dependency-free, server-side SVG charts for the analytics dashboard.

Every public function takes plain data and returns a ``SafeString`` holding a single ``<svg>`` element:

* fixed internal size (``viewBox="0 0 720 300"``) with ``width="100%"`` so it scales to its container;
* accessible: ``role="img"`` and ``aria-labelledby`` pointing at its ``<title>`` and ``<desc>``; every data
  mark carries a ``<title>`` child with its exact (formatted) value, shown by browsers as a tooltip;
* Content-Security-Policy friendly: presentation attributes only — no ``style``, no scripts, no event
  handlers, no external references; links only to relative URLs (``/...``);
* every caller-provided text is escaped (and stripped of characters XML cannot hold).

The y axis has 4–6 "nice" ticks (1, 2, 5 × 10^k steps) formatted by the caller's ``y_format``, which also
formats every tooltip. ``y_unit`` (keyword, default 1) makes the ticks nice in that unit: pass
``y_unit=86400`` for durations in seconds shown as days, so ticks land on 0, 2, 4, 6 d rather than on
round numbers of seconds.

No database, no models: the callers (views / selectors) compute the numbers and hand them over.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

__all__ = [
    "ACCENT",
    "HEIGHT",
    "PALETTE",
    "WIDTH",
    "Bar",
    "HLine",
    "Point",
    "Series",
    "YFormat",
    "bar_chart",
    "nice_ticks",
    "safe_href",
    "scatter_chart",
    "stacked_area_chart",
    "stacked_bar_chart",
]

YFormat = Callable[[float], str]

WIDTH = 720
HEIGHT = 300
FONT_FAMILY = "system-ui, sans-serif"
FONT_SIZE = 12  # axis labels, legend; never below 11 user units at 720 width
SMALL_FONT_SIZE = 11  # value labels above bars
EMPTY_FONT_SIZE = 14
MAX_X_LABELS = 12
MAX_LABEL_WIDTH = 140.0  # x labels and legend entries longer than this are truncated with an ellipsis

# Okabe–Ito colour-blind-friendly palette, reordered so the low-contrast yellow comes late.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",  # black
)
ACCENT = "#D55E00"  # vermillion: the highlighted (bottleneck) bar
BAR_COLOUR = "#0072B2"
POINT_COLOUR = "#0072B2"
LINE_COLOUR = "#E69F00"
HLINE_COLOUR = "#555555"
TEXT_COLOUR = "#333333"
MUTED_COLOUR = "#666666"
GRID_COLOUR = "#E3E3E3"
AXIS_COLOUR = "#999999"

_SVG_NS = "http://www.w3.org/2000/svg"


# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Point:
    """One dot of the scatter (control) chart; ``href`` must be a relative URL (``/...``) to be linked."""

    x: float
    y: float
    label: str
    href: str | None = None


@dataclass(frozen=True)
class HLine:
    """A dashed horizontal reference line (e.g. a percentile) labelled at its right end."""

    y: float
    label: str


@dataclass(frozen=True)
class Series:
    """A named series of values, one per x label."""

    name: str
    values: list[float]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    href: str | None = None


# ------------------------------------------------------------------------------------------ text helpers

# Characters XML 1.0 cannot contain (even escaped): C0 controls except tab/LF/CR, lone surrogates, U+FFFE/F.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ID_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def _clean(value: object) -> str:
    return _XML_INVALID.sub("", str(value))


def _text(value: object) -> str:
    """Escaped text content."""
    return str(escape(_clean(value)))


def _num(value: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    s = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _attrs(attrs: dict[str, object]) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = "class" if key == "class_" else key.replace("_", "-")
        if isinstance(value, float | int) and not isinstance(value, bool):
            rendered = _num(float(value))
        else:
            rendered = str(escape(_clean(value)))
        parts.append(f' {name}="{rendered}"')
    return "".join(parts)


def _tag(name: str, *children: str, **attrs: object) -> str:
    """An element. ``children`` must be markup built by ``_tag``/``_text``; attribute values are escaped."""
    if children:
        return f"<{name}{_attrs(attrs)}>{''.join(children)}</{name}>"
    return f"<{name}{_attrs(attrs)}/>"


def _title(value: object) -> str:
    return _tag("title", _text(value))


def _char_width(ch: str) -> float:
    if unicodedata.combining(ch):
        return 0.0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 1.0
    if ch in "ijl.,:;'|!()[] ":
        return 0.34
    if ch.isupper() or ch in "mwMW@%&…":
        return 0.74
    return 0.58


def _text_width(text: str, size: float = FONT_SIZE) -> float:
    """A slightly generous estimate of the rendered width of ``text`` in a system sans-serif font."""
    return sum(_char_width(ch) for ch in text) * size


def _truncate(text: str, max_width: float, size: float = FONT_SIZE) -> str:
    """``text``, shortened with an ellipsis so that it is at most ``max_width`` wide."""
    if _text_width(text, size) <= max_width:
        return text
    budget = max_width - _char_width("…") * size
    kept: list[str] = []
    used = 0.0
    for ch in text:
        used += _char_width(ch) * size
        if used > budget:
            break
        kept.append(ch)
    return "".join(kept).rstrip() + "…"


def safe_href(href: str | None) -> str | None:
    """``href`` if it is a plain relative URL (``/path...``), else ``None`` (no link is drawn)."""
    if not href or not href.startswith("/") or href.startswith("//"):
        return None
    if "\\" in href or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in href):
        return None
    return href


def _finite(value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _num_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _chart_id(chart_id: str | None) -> str:
    cleaned = _ID_INVALID.sub("", chart_id or "")
    return cleaned or f"chart-{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------------------- scale


def nice_ticks(lo: float, hi: float, *, max_intervals: int = 5) -> list[float]:
    """4–6 evenly spaced "nice" ticks (steps of 1, 2 or 5 × 10^k) covering ``[lo, hi]``.

    A degenerate range is widened to include 0 (or to ``[0, 1]`` when everything is 0).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if lo > hi:
        lo, hi = hi, lo
    if hi == lo:
        if hi == 0:
            hi = 1.0
        elif hi > 0:
            lo = 0.0
        else:
            hi = 0.0
    span = hi - lo
    exponent = math.floor(math.log10(span / max_intervals)) - 1
    eps = 1e-9
    for e in range(exponent, exponent + 4):
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0**e
            first = math.floor(lo / step + eps)
            last = math.ceil(hi / step - eps)
            if last - first <= max_intervals:
                ticks = [round((first + i) * step, 12) for i in range(last - first + 1)]
                return [t + 0.0 for t in ticks]  # no "-0.0"
    return [lo, hi]  # unreachable for finite input


@dataclass(frozen=True)
class _Frame:
    """The plot area in viewBox units and the y domain."""

    left: float
    top: float
    right: float
    bottom: float
    lo: float
    hi: float

    @property
    def width(self) -> float:
        return self.right - self.left

    def y(self, value: float) -> float:
        return self.bottom - (value - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)


def _frame_for(
    values: Sequence[float],
    y_format: YFormat,
    *,
    top: float,
    right_margin: float,
    y_unit: float,
) -> tuple[_Frame, list[tuple[float, str]]]:
    unit = float(y_unit) if math.isfinite(_num_or_nan(y_unit)) and float(y_unit) > 0 else 1.0
    lo = min([0.0, *values])
    hi = max([0.0, *values])
    ticks = [t * unit for t in nice_ticks(lo / unit, hi / unit)]
    labels = [(t, _truncate(_clean(y_format(t)), 120)) for t in ticks]
    left = max(36.0, max(_text_width(label) for _, label in labels) + 14)
    frame = _Frame(
        left=left,
        top=top,
        right=WIDTH - right_margin,
        bottom=HEIGHT - 30,
        lo=ticks[0],
        hi=ticks[-1],
    )
    return frame, labels


def _y_axis(frame: _Frame, labels: list[tuple[float, str]]) -> list[str]:
    out = []
    for value, label in labels:
        y = frame.y(value)
        is_zero = value == 0
        out.append(
            _tag(
                "line",
                x1=frame.left,
                x2=frame.right,
                y1=y,
                y2=y,
                stroke=AXIS_COLOUR if is_zero else GRID_COLOUR,
                stroke_width=1,
                class_="grid",
            )
        )
        out.append(
            _tag(
                "text",
                _text(label),
                x=frame.left - 8,
                y=y + 4,
                text_anchor="end",
                fill=MUTED_COLOUR,
                class_="ytick",
            )
        )
    out.append(
        _tag(
            "line",
            x1=frame.left,
            x2=frame.left,
            y1=frame.top,
            y2=frame.bottom,
            stroke=AXIS_COLOUR,
            stroke_width=1,
            class_="axis",
        )
    )
    return out


def _thin_labels(items: list[tuple[float, str]], *, gap: float = 10.0) -> list[tuple[float, float, str]]:
    """Keep every k-th label (smallest k) so that at most MAX_X_LABELS are drawn and none overlap.

    ``items`` are (pixel position, text) pairs sorted by position; returns (position, text centre, text)
    for the labels to draw — the centre is pulled inwards so the text never leaves the viewBox.
    """
    if not items:
        return []
    prepared = []
    for x, text in items:
        label = _truncate(text, MAX_LABEL_WIDTH)
        width = _text_width(label)
        centre = min(max(x, 2 + width / 2), WIDTH - 2 - width / 2)
        prepared.append((x, centre, label, width))
    for step in range(1, len(prepared) + 1):
        chosen = prepared[::step]
        if len(chosen) > MAX_X_LABELS:
            continue
        if all(b[1] - b[3] / 2 >= a[1] + a[3] / 2 + gap for a, b in itertools.pairwise(chosen)):
            return [(x, c, t) for x, c, t, _ in chosen]
    return [prepared[0][:3]]  # unreachable: a single label always fits


def _x_label_marks(frame: _Frame, labels: list[tuple[float, float, str]], *, ticks: bool) -> list[str]:
    out = []
    for x, centre, label in labels:
        if ticks:
            out.append(
                _tag(
                    "line",
                    x1=x,
                    x2=x,
                    y1=frame.bottom,
                    y2=frame.bottom + 4,
                    stroke=AXIS_COLOUR,
                    class_="xtick",
                )
            )
        out.append(
            _tag(
                "text",
                _text(label),
                x=centre,
                y=frame.bottom + 18,
                text_anchor="middle",
                fill=MUTED_COLOUR,
                class_="xlabel",
            )
        )
    return out


def _legend(entries: list[tuple[str, str, str]], *, x0: float) -> tuple[list[str], float]:
    """Legend rows at the top: entries are (kind "box"|"line", colour, name). Returns markup and height."""
    if not entries:
        return [], 0.0
    out = []
    x, row = x0, 0
    for kind, colour, name in entries:
        label = _truncate(name, MAX_LABEL_WIDTH)
        width = 18 + _text_width(label)
        if x > x0 and x + width > WIDTH - 8:
            x, row = x0, row + 1
        y = 8 + row * 18
        if kind == "line":
            swatch = _tag("line", x1=x, x2=x + 14, y1=y + 6, y2=y + 6, stroke=colour, stroke_width=2.5)
        else:
            swatch = _tag("rect", x=x, y=y, width=12, height=12, rx=2, fill=colour)
        children = [swatch, _tag("text", _text(label), x=x + 18, y=y + 10.5, fill=TEXT_COLOUR)]
        if label != name:
            children.insert(0, _title(name))
        out.append(_tag("g", *children, class_="legend-item"))
        x += width + 16
    return [_tag("g", *out, class_="legend")], (row + 1) * 18.0


def _svg(*, title: str, desc: str, body: list[str], chart_id: str | None, kind: str) -> SafeString:
    cid = _chart_id(chart_id)
    markup = _tag(
        "svg",
        _tag("title", _text(title), id=f"{cid}-title"),
        _tag("desc", _text(desc), id=f"{cid}-desc"),
        *body,
        xmlns=_SVG_NS,
        viewBox=f"0 0 {WIDTH} {HEIGHT}",
        width="100%",
        role="img",
        aria_labelledby=f"{cid}-title {cid}-desc",
        font_family=FONT_FAMILY,
        font_size=FONT_SIZE,
        fill=TEXT_COLOUR,
        class_=f"chart chart-{kind}",
    )
    return mark_safe(markup)  # noqa: S308 — every caller text is escaped by _text/_attrs above


def _empty(
    *,
    title: str,
    desc: str,
    empty_text: str,
    chart_id: str | None,
    kind: str,
    legend: list[str] | None = None,
) -> SafeString:
    left, top, right, bottom = 40.0, 16.0, WIDTH - 16.0, HEIGHT - 30.0
    body = [
        _tag("line", x1=left, x2=left, y1=top, y2=bottom, stroke=AXIS_COLOUR, class_="axis"),
        _tag("line", x1=left, x2=right, y1=bottom, y2=bottom, stroke=AXIS_COLOUR, class_="axis"),
        _tag(
            "text",
            _text(_truncate(empty_text, right - left - 20, EMPTY_FONT_SIZE)),
            x=(left + right) / 2,
            y=(top + bottom) / 2 + 5,
            text_anchor="middle",
            font_size=EMPTY_FONT_SIZE,
            fill=MUTED_COLOUR,
            class_="empty",
        ),
    ]
    return _svg(title=title, desc=desc, body=body, chart_id=chart_id, kind=kind)


def _linked(mark: str, href: str | None) -> str:
    url = safe_href(href)
    return _tag("a", mark, href=url) if url else mark


def _spread(ys: list[float], *, spacing: float, lo: float, hi: float) -> list[float]:
    """Move sorted label baselines apart so consecutive ones are at least ``spacing`` apart within [lo, hi]."""
    out = list(ys)
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + spacing)
    if out and out[-1] > hi:
        out[-1] = hi
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - spacing)
    return [max(y, lo) for y in out]


# ---------------------------------------------------------------------------------------------- charts


def scatter_chart(
    *,
    title: str,
    desc: str,
    points: list[Point],
    hlines: list[HLine],
    line: list[tuple[float, float]] | None,
    x_labels: list[tuple[float, str]],
    y_format: YFormat,
    empty_text: str,
    y_unit: float = 1.0,
    line_label: str = "",
    chart_id: str | None = None,
) -> SafeString:
    """A control chart: one dot per item, dashed reference lines, an optional line (rolling average) on top.

    ``x_labels`` are (x position in data units, text) pairs; they are thinned so they never overlap.
    ``line_label`` (optional) names the line in a legend and in its tooltip.
    """
    kind = "scatter"
    pts = [p for p in points if math.isfinite(_num_or_nan(p.x)) and math.isfinite(_num_or_nan(p.y))]
    if not pts:
        return _empty(title=title, desc=desc, empty_text=empty_text, chart_id=chart_id, kind=kind)
    path = sorted(
        (float(x), float(y))
        for x, y in (line or [])
        if math.isfinite(_num_or_nan(x)) and math.isfinite(_num_or_nan(y))
    )
    refs = [h for h in hlines if math.isfinite(_num_or_nan(h.y))]

    xs = [float(p.x) for p in pts] + [x for x, _ in path]
    x_min, x_max = min(xs), max(xs)
    pad = (x_max - x_min) * 0.03 if x_max > x_min else 1.0
    x_min, x_max = x_min - pad, x_max + pad

    legend, legend_height = (
        _legend([("line", LINE_COLOUR, line_label)], x0=40) if line_label and len(path) > 1 else ([], 0.0)
    )
    ref_labels = [_truncate(h.label, 160) for h in refs]
    right_margin = max([16.0] + [_text_width(label) + 14 for label in ref_labels])
    frame, y_labels = _frame_for(
        [float(p.y) for p in pts] + [y for _, y in path] + [float(h.y) for h in refs],
        y_format,
        top=14 + legend_height + (6 if legend else 0),
        right_margin=right_margin,
        y_unit=y_unit,
    )

    def px(x: float) -> float:
        return frame.left + (x - x_min) / (x_max - x_min) * frame.width

    body = _y_axis(frame, y_labels)

    # x labels: only those inside the plotted range, thinned.
    inside = sorted((px(float(x)), text) for x, text in x_labels if x_min <= _num_or_nan(x) <= x_max)
    body += _x_label_marks(frame, _thin_labels(inside), ticks=True)

    # reference lines, labels in the right margin, pushed apart when close
    order = sorted(range(len(refs)), key=lambda i: frame.y(float(refs[i].y)))
    label_ys = _spread(
        [frame.y(float(refs[i].y)) + 4 for i in order], spacing=14, lo=frame.top + 4, hi=frame.bottom + 4
    )
    for i, label_y in zip(order, label_ys, strict=True):
        ref, y = refs[i], frame.y(float(refs[i].y))
        body.append(
            _tag(
                "g",
                _tag(
                    "line",
                    _title(ref.label),
                    x1=frame.left,
                    x2=frame.right,
                    y1=y,
                    y2=y,
                    stroke=HLINE_COLOUR,
                    stroke_width=1.5,
                    stroke_dasharray="6 4",
                ),
                _tag("text", _text(ref_labels[i]), x=frame.right + 6, y=label_y, fill=TEXT_COLOUR),
                class_="hline",
            )
        )

    marks = []
    for p in pts:
        value = y_format(float(p.y))
        tooltip = f"{p.label}: {value}" if p.label else value
        circle = _tag(
            "circle",
            _title(tooltip),
            cx=px(float(p.x)),
            cy=frame.y(float(p.y)),
            r=4,
            fill=POINT_COLOUR,
            fill_opacity=0.7,
            stroke="#FFFFFF",
            stroke_width=0.75,
            class_="mark",
        )
        marks.append(_linked(circle, p.href))
    body.append(_tag("g", *marks, class_="points"))

    if len(path) > 1:
        children = [_title(f"{line_label}: {y_format(path[-1][1])}")] if line_label else []
        body.append(
            _tag(
                "polyline",
                *children,
                points=" ".join(f"{_num(px(x))},{_num(frame.y(y))}" for x, y in path),
                fill="none",
                stroke=LINE_COLOUR,
                stroke_width=2.5,
                stroke_linejoin="round",
                stroke_linecap="round",
                pointer_events=None if line_label else "none",
                class_="line",
            )
        )
    body += legend
    return _svg(title=title, desc=desc, body=body, chart_id=chart_id, kind=kind)


def _stack(series: list[Series], length: int) -> list[list[float]]:
    """Cumulative tops: ``result[s][i]`` is the top of series ``s`` at x ``i`` (bottom-up, in order)."""
    tops: list[list[float]] = []
    running = [0.0] * length
    for s in series:
        if len(s.values) != length:
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {length} x labels")
        running = [r + _finite(v) for r, v in zip(running, s.values, strict=True)]
        tops.append(running)
    return tops


def _series_legend(series: list[Series]) -> tuple[list[str], float]:
    return _legend(
        [("box", PALETTE[i % len(PALETTE)], s.name) for i, s in enumerate(series)],
        x0=40,
    )


def stacked_area_chart(
    *,
    title: str,
    desc: str,
    x_labels: list[str],
    series: list[Series],
    y_format: YFormat,
    empty_text: str,
    y_unit: float = 1.0,
    chart_id: str | None = None,
) -> SafeString:
    """A cumulative flow diagram: ``series`` stacked bottom-up in the given order, with a legend on top.

    Hovering a column shows every series' value at that x and the total. Every series must have one value
    per x label (``ValueError`` otherwise); non-finite values count as 0.
    """
    kind = "stacked-area"
    if not x_labels or not series:
        return _empty(title=title, desc=desc, empty_text=empty_text, chart_id=chart_id, kind=kind)
    n = len(x_labels)
    tops = _stack(series, n)
    legend, legend_height = _series_legend(series)
    frame, y_labels = _frame_for(
        [v for row in tops for v in row], y_format, top=14 + legend_height + 8, right_margin=16, y_unit=y_unit
    )
    if n == 1:
        centres = [(frame.left + frame.right) / 2]
        xs = [frame.left, frame.right]
        columns = [(frame.left, frame.width)]
    else:
        step = frame.width / (n - 1)
        centres = xs = [frame.left + i * step for i in range(n)]
        columns = []
        for x in xs:
            x0, x1 = max(frame.left, x - step / 2), min(frame.right, x + step / 2)
            columns.append((x0, x1 - x0))

    def widen(row: list[float]) -> list[float]:
        return row * 2 if n == 1 else row

    body = _y_axis(frame, y_labels)
    body += _x_label_marks(frame, _thin_labels(list(zip(centres, x_labels, strict=True))), ticks=True)

    areas = []
    baseline = [0.0] * n
    for index, (s, top) in enumerate(zip(series, tops, strict=True)):
        upper = [f"{_num(x)},{_num(frame.y(v))}" for x, v in zip(xs, widen(top), strict=True)]
        lower = [f"{_num(x)},{_num(frame.y(v))}" for x, v in zip(xs, widen(baseline), strict=True)]
        areas.append(
            _tag(
                "polygon",
                _title(s.name),
                points=" ".join(upper + lower[::-1]),
                fill=PALETTE[index % len(PALETTE)],
                stroke="#FFFFFF",
                stroke_width=0.5,
                stroke_linejoin="round",
                class_="area",
            )
        )
        baseline = top
    body.append(_tag("g", *areas, class_="areas"))

    hover = []
    for i, ((x0, width), label) in enumerate(zip(columns, x_labels, strict=True)):
        lines = [label] + [f"{s.name}: {y_format(_finite(s.values[i]))}" for s in reversed(series)]
        if len(series) > 1:
            lines.append(f"Σ {y_format(tops[-1][i])}")
        hover.append(
            _tag(
                "rect",
                _title("\n".join(lines)),
                x=x0,
                y=frame.top,
                width=width,
                height=frame.bottom - frame.top,
                fill="#000000",
                fill_opacity=0,
                class_="mark",
            )
        )
    body.append(_tag("g", *hover, class_="columns"))
    body += legend
    return _svg(title=title, desc=desc, body=body, chart_id=chart_id, kind=kind)


def _category_labels(frame: _Frame, labels: list[str], slot: float, *, bold: str | None = None) -> list[str]:
    """x labels under bars: all of them (truncated to the slot) when there is room, else thinned."""
    centres = [frame.left + (i + 0.5) * slot for i in range(len(labels))]
    room = slot - 6
    if room >= 48 or all(_text_width(label) <= room for label in labels):
        out = []
        for x, label in zip(centres, labels, strict=True):
            shown = _truncate(label, room)
            children = [_text(shown)] if shown == label else [_title(label), _text(shown)]
            out.append(
                _tag(
                    "text",
                    *children,
                    x=x,
                    y=frame.bottom + 18,
                    text_anchor="middle",
                    fill=TEXT_COLOUR if label == bold else MUTED_COLOUR,
                    font_weight="bold" if label == bold else None,
                    class_="xlabel",
                )
            )
        return out
    return _x_label_marks(frame, _thin_labels(list(zip(centres, labels, strict=True))), ticks=False)


def _value_labels(frame: _Frame, values: list[float], slot: float, y_format: YFormat) -> list[str]:
    """Formatted values above (or below, if negative) each bar, only when every one of them fits."""
    texts = [_clean(y_format(v)) for v in values]
    if any(_text_width(t, SMALL_FONT_SIZE) > slot - 2 for t in texts):
        return []
    out = []
    for i, (value, text) in enumerate(zip(values, texts, strict=True)):
        y = frame.y(value) - 4 if value >= 0 else frame.y(value) + SMALL_FONT_SIZE + 2
        out.append(
            _tag(
                "text",
                _text(text),
                x=frame.left + (i + 0.5) * slot,
                y=y,
                text_anchor="middle",
                font_size=SMALL_FONT_SIZE,
                fill=TEXT_COLOUR,
                class_="value",
            )
        )
    return out


def stacked_bar_chart(
    *,
    title: str,
    desc: str,
    x_labels: list[str],
    series: list[Series],
    y_format: YFormat,
    empty_text: str,
    y_unit: float = 1.0,
    chart_id: str | None = None,
) -> SafeString:
    """Stacked vertical bars (e.g. weekly throughput split by outcome), series bottom-up, legend on top.

    Totals are written above the bars when they fit; zero segments are not drawn. Every series must have
    one value per x label (``ValueError`` otherwise).
    """
    kind = "stacked-bar"
    if not x_labels or not series:
        return _empty(title=title, desc=desc, empty_text=empty_text, chart_id=chart_id, kind=kind)
    n = len(x_labels)
    tops = _stack(series, n)
    totals = tops[-1]
    legend, legend_height = _series_legend(series)
    frame, y_labels = _frame_for(
        [v for row in tops for v in row],
        y_format,
        top=14 + legend_height + 20,
        right_margin=16,
        y_unit=y_unit,
    )
    slot = frame.width / n
    bar_width = min(slot * 0.72, 56.0)

    body = _y_axis(frame, y_labels)
    body += _category_labels(frame, x_labels, slot)
    marks = []
    for i, label in enumerate(x_labels):
        x = frame.left + (i + 0.5) * slot - bar_width / 2
        bottom = 0.0
        for index, s in enumerate(series):
            value = _finite(s.values[i])
            top = tops[index][i]
            if value != 0:
                y, height = frame.y(max(bottom, top)), abs(frame.y(bottom) - frame.y(top))
                marks.append(
                    _tag(
                        "rect",
                        _title(f"{label} · {s.name}: {y_format(value)}"),
                        x=x,
                        y=y,
                        width=bar_width,
                        height=height,
                        fill=PALETTE[index % len(PALETTE)],
                        stroke="#FFFFFF",
                        stroke_width=0.5,
                        class_="mark",
                    )
                )
            bottom = top
    body.append(_tag("g", *marks, class_="bars"))
    body += _value_labels(frame, totals, slot, y_format)
    body += legend
    return _svg(title=title, desc=desc, body=body, chart_id=chart_id, kind=kind)


def bar_chart(
    *,
    title: str,
    desc: str,
    bars: list[Bar],
    y_format: YFormat,
    empty_text: str,
    y_unit: float = 1.0,
    highlight: str | None = None,
    chart_id: str | None = None,
) -> SafeString:
    """Vertical bars with their values on top; the bar labelled ``highlight`` is drawn in the accent colour."""
    kind = "bar"
    if not bars:
        return _empty(title=title, desc=desc, empty_text=empty_text, chart_id=chart_id, kind=kind)
    values = [_finite(b.value) for b in bars]
    frame, y_labels = _frame_for(values, y_format, top=34, right_margin=16, y_unit=y_unit)
    slot = frame.width / len(bars)
    bar_width = min(slot * 0.72, 64.0)

    body = _y_axis(frame, y_labels)
    body += _category_labels(frame, [b.label for b in bars], slot, bold=highlight)
    marks = []
    for i, (bar, value) in enumerate(zip(bars, values, strict=True)):
        y_top, y_bottom = frame.y(max(value, 0.0)), frame.y(min(value, 0.0))
        accent = highlight is not None and bar.label == highlight
        rect = _tag(
            "rect",
            _title(f"{bar.label}: {y_format(value)}"),
            x=frame.left + (i + 0.5) * slot - bar_width / 2,
            y=y_top,
            width=bar_width,
            height=y_bottom - y_top,
            fill=ACCENT if accent else BAR_COLOUR,
            class_="mark highlight" if accent else "mark",
        )
        marks.append(_linked(rect, bar.href))
    body.append(_tag("g", *marks, class_="bars"))
    body += _value_labels(frame, values, slot, y_format)
    return _svg(title=title, desc=desc, body=body, chart_id=chart_id, kind=kind)
