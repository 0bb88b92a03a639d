"""Tests for the server-side SVG chart renderer (no database needed)."""

from __future__ import annotations

import itertools
import math
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from analytics import charts
from analytics.charts import (
    ACCENT,
    PALETTE,
    Bar,
    HLine,
    Point,
    Series,
    bar_chart,
    nice_ticks,
    safe_href,
    scatter_chart,
    stacked_area_chart,
    stacked_bar_chart,
)

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>\" onload=\"x & 周期 'q'"
DAY = 86400.0


def number(v: float) -> str:
    return f"{v:g}"


def days(v: float) -> str:
    return f"{v / DAY:.1f} d"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 — our own output, generated in the test


def find_all(root: ET.Element, tag: str, cls: str | None = None) -> list[ET.Element]:
    found = root.iter(f"{NS}{tag}")
    if cls is None:
        return list(found)
    return [el for el in found if cls in (el.get("class") or "").split()]


def title_of(el: ET.Element) -> str:
    title = el.find(f"{NS}title")
    assert title is not None, f"<{el.tag}> has no <title>"
    return title.text or ""


def texts(root: ET.Element, cls: str) -> list[ET.Element]:
    return find_all(root, "text", cls)


def y_scale(root: ET.Element) -> Callable[[float], float]:
    """Pixel y → data value, from the gridlines and their (``number``-formatted) tick labels."""
    grid = [float(line.get("y1", "nan")) for line in find_all(root, "line", "grid")]
    values = [float(t.text or "nan") for t in texts(root, "ytick")]
    assert len(grid) == len(values) >= 2
    (y0, v0), (y1, v1) = (grid[0], values[0]), (grid[-1], values[-1])
    return lambda y: v0 + (y - y0) * (v1 - v0) / (y1 - y0)


def polygon_points(el: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in (el.get("points") or "").split())]


# ------------------------------------------------------------------------------------------- fixtures


def make_scatter(text: str = "Cycle time", **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "title": text,
        "desc": text,
        "points": [
            Point(x=1000.0 + i * DAY, y=(i % 5 + 1) * DAY, label=f"{text} {i}", href=f"/r/{i}/")
            for i in range(10)
        ],
        "hlines": [HLine(y=3 * DAY, label=f"p50 {text}"), HLine(y=4.5 * DAY, label=f"p85 {text}")],
        "line": [(1000.0 + i * DAY, 3 * DAY) for i in range(10)],
        "x_labels": [(1000.0 + i * DAY, f"{text} {i}") for i in range(10)],
        "y_format": days,
        "empty_text": text,
        "line_label": text,
    }
    kwargs.update(overrides)
    return str(scatter_chart(**kwargs))  # type: ignore[arg-type]


def make_area(text: str = "CFD", **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "title": text,
        "desc": text,
        "x_labels": [f"{text} {i}" for i in range(5)],
        "series": [Series(f"{text} A", [1, 2, 3, 4, 5]), Series(f"{text} B", [2, 0, 1, 3, 2.5])],
        "y_format": number,
        "empty_text": text,
    }
    kwargs.update(overrides)
    return str(stacked_area_chart(**kwargs))  # type: ignore[arg-type]


def make_stacked_bar(text: str = "Throughput", **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "title": text,
        "desc": text,
        "x_labels": [f"{text} {i}" for i in range(4)],
        "series": [
            Series(f"{text} done", [3, 0, 5, 7]),
            Series(f"{text} rejected", [1, 2, 0, 1]),
            Series(f"{text} cancelled", [0.5, 1, 2, 0]),
        ],
        "y_format": number,
        "empty_text": text,
    }
    kwargs.update(overrides)
    return str(stacked_bar_chart(**kwargs))  # type: ignore[arg-type]


def make_bar(text: str = "Time in stage", **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "title": text,
        "desc": text,
        "bars": [Bar(f"{text} {i}", (i + 1) * 0.7 * DAY, href=f"/s/{i}/") for i in range(5)],
        "y_format": days,
        "empty_text": text,
        "highlight": f"{text} 2",
    }
    kwargs.update(overrides)
    return str(bar_chart(**kwargs))  # type: ignore[arg-type]


MAKERS: dict[str, Callable[..., str]] = {
    "scatter": make_scatter,
    "area": make_area,
    "stacked_bar": make_stacked_bar,
    "bar": make_bar,
}
EMPTY_OVERRIDES: dict[str, dict[str, object]] = {
    "scatter": {"points": [], "line": None, "hlines": []},
    "area": {"x_labels": [], "series": []},
    "stacked_bar": {"x_labels": [], "series": []},
    "bar": {"bars": []},
}


def all_variants(text: str) -> list[tuple[str, str]]:
    out = []
    for name, make in MAKERS.items():
        out.append((name, make(text)))
        out.append((f"{name}-empty", make(text, **EMPTY_OVERRIDES[name])))
    return out


# ------------------------------------------------------------------------------------------ structure


@pytest.mark.parametrize(("name", "svg"), all_variants("Chart 图表"))
def test_structure_and_accessibility(name: str, svg: str) -> None:
    root = parse(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    assert root.get("viewBox") == "0 0 720 300"
    assert root.get("width") == "100%"
    assert root.get("font-family") == "system-ui, sans-serif"
    title_id, desc_id = (root.get("aria-labelledby") or "").split()
    title, desc = root.find(f"{NS}title"), root.find(f"{NS}desc")
    assert title is not None and title.get("id") == title_id and title.text == "Chart 图表"
    assert desc is not None and desc.get("id") == desc_id and desc.text == "Chart 图表"
    for el in root.iter():
        size = el.get("font-size")
        if size is not None:
            assert float(size) >= 11


@pytest.mark.parametrize(("name", "svg"), all_variants(HOSTILE))
def test_hostile_text_is_escaped(name: str, svg: str) -> None:
    assert "<script" not in svg
    assert "style" not in svg.lower()
    root = parse(svg)
    for el in root.iter():
        assert el.tag.removeprefix(NS) not in {"script", "style", "foreignObject", "image", "use", "iframe"}
        for attr, value in el.attrib.items():
            assert not attr.lower().startswith("on"), (el.tag, attr)
            assert attr != "style"
            assert "javascript:" not in value.lower()
            assert not value.startswith(("http:", "https:", "//"))
    all_text = "".join(root.itertext())
    assert HOSTILE in all_text  # round-trips as text, not markup
    assert root.find(f"{NS}title").text == HOSTILE  # type: ignore[union-attr]


def test_hostile_y_format_output_is_escaped() -> None:
    evil = "<b on=x>&'\""
    svg = make_bar(bars=[Bar("a", 3)], y_format=lambda v: f"{v:g}{evil}")
    assert "<b" not in svg
    root = parse(svg)
    assert [t.text for t in texts(root, "ytick")] == [f"{v}{evil}" for v in (0, 1, 2, 3)]
    assert [t.text for t in texts(root, "value")] == [f"3{evil}"]
    assert title_of(find_all(root, "rect", "mark")[0]) == f"a: 3{evil}"


def test_xml_invalid_characters_are_dropped() -> None:
    svg = make_area("bad\x00\x07\x1b\ud800text")
    root = parse(svg)
    assert root.find(f"{NS}title").text == "badtext"  # type: ignore[union-attr]


def test_chart_ids_are_unique_and_sanitised() -> None:
    a, b = parse(make_bar()), parse(make_bar())
    assert a.get("aria-labelledby") != b.get("aria-labelledby")
    c = parse(make_bar(chart_id='x" onload="1'))
    assert c.get("aria-labelledby") == "xonload1-title xonload1-desc"


# ------------------------------------------------------------------------------------------ data marks


def test_scatter_one_title_per_point_with_formatted_value() -> None:
    points = [Point(x=i * DAY, y=(i + 0.5) * DAY, label=f"REQ-{i}", href=None) for i in range(7)]
    root = parse(make_scatter(points=points))
    circles = find_all(root, "circle", "mark")
    assert len(circles) == len(points)
    assert sorted(title_of(c) for c in circles) == sorted(
        f"REQ-{i}: {days((i + 0.5) * DAY)}" for i in range(7)
    )


def test_scatter_reference_lines_and_rolling_line() -> None:
    root = parse(make_scatter())
    hlines = find_all(root, "g", "hline")
    assert len(hlines) == 2
    for g in hlines:
        line = g.find(f"{NS}line")
        assert line is not None and line.get("stroke-dasharray")
    assert [t.text for g in hlines for t in g.iter(f"{NS}text")] == ["p85 Cycle time", "p50 Cycle time"]
    (polyline,) = find_all(root, "polyline", "line")
    assert polyline.get("fill") == "none"
    assert len(polygon_points(polyline)) == 10
    # drawn over the points
    children = list(root)
    points_group = next(i for i, el in enumerate(children) if el.get("class") == "points")
    assert children.index(polyline) > points_group


def test_scatter_reference_labels_do_not_overlap_when_close() -> None:
    hlines = [
        HLine(y=3 * DAY, label="p50"),
        HLine(y=3.01 * DAY, label="p85"),
        HLine(y=3.02 * DAY, label="p95"),
    ]
    root = parse(make_scatter(hlines=hlines))
    ys = sorted(float(t.get("y", "nan")) for g in find_all(root, "g", "hline") for t in g.iter(f"{NS}text"))
    assert all(b - a >= 12 for a, b in itertools.pairwise(ys))


def test_stacked_bar_one_title_per_segment() -> None:
    root = parse(make_stacked_bar())
    rects = find_all(root, "rect", "mark")
    # zero-valued segments are not drawn: 12 values, 3 of them 0
    assert len(rects) == 9
    titles = {title_of(r) for r in rects}
    assert "Throughput 0 · Throughput done: 3" in titles
    assert "Throughput 0 · Throughput cancelled: 0.5" in titles
    assert "Throughput 3 · Throughput rejected: 1" in titles


def test_stacked_bar_segments_add_up() -> None:
    series = [Series("a", [3, 0, 5, 7]), Series("b", [1, 2, 0, 1]), Series("c", [0.5, 1, 2, 0])]
    root = parse(make_stacked_bar(series=series))
    to_value = y_scale(root)
    by_x: dict[str, list[ET.Element]] = {}
    for rect in find_all(root, "rect", "mark"):
        by_x.setdefault(rect.get("x", ""), []).append(rect)
    assert len(by_x) == 4
    columns = sorted(by_x.values(), key=lambda rs: float(rs[0].get("x", "nan")))
    for i, rects in enumerate(columns):
        total = sum(s.values[i] for s in series)
        top = min(float(r.get("y", "nan")) for r in rects)
        assert to_value(top) == pytest.approx(total, abs=0.02)
        heights = sum(float(r.get("height", "nan")) for r in rects)
        assert to_value(min(float(r.get("y", "nan")) for r in rects) + heights) == pytest.approx(0, abs=0.02)
    # the value labels show the totals
    assert [t.text for t in texts(root, "value")] == ["4.5", "3", "7", "8"]
    # colours follow the palette, in the order the series are given (bottom-up)
    first = sorted(columns[0], key=lambda r: -float(r.get("y", "nan")))
    assert [r.get("fill") for r in first] == list(PALETTE[:3])


def test_stacked_area_stacks_bottom_up_and_adds_up() -> None:
    series = [Series("a", [1, 2, 3, 4, 5]), Series("b", [2, 0, 1, 3, 2.5]), Series("c", [0, 4, 0, 1, 1])]
    root = parse(make_area(series=series))
    to_value = y_scale(root)
    polygons = find_all(root, "polygon", "area")
    assert [p.get("fill") for p in polygons] == list(PALETTE[:3])
    assert [title_of(p) for p in polygons] == ["a", "b", "c"]
    running = [0.0] * 5
    for polygon, s in zip(polygons, series, strict=True):
        running = [r + v for r, v in zip(running, s.values, strict=True)]
        upper = polygon_points(polygon)[:5]
        assert [to_value(y) for _, y in upper] == pytest.approx(running, abs=0.02)
    totals = [sum(s.values[i] for s in series) for i in range(5)]
    assert [to_value(y) for _, y in polygon_points(polygons[-1])[:5]] == pytest.approx(totals, abs=0.02)


def test_stacked_area_one_title_per_column_with_all_values() -> None:
    root = parse(make_area())
    columns = find_all(root, "rect", "mark")
    assert len(columns) == 5
    assert title_of(columns[3]) == "CFD 3\nCFD B: 3\nCFD A: 4\nΣ 7"
    assert all(r.get("fill-opacity") == "0" for r in columns)


def test_bar_titles_and_highlight() -> None:
    root = parse(make_bar())
    rects = find_all(root, "rect", "mark")
    assert [title_of(r) for r in rects] == [
        f"Time in stage {i}: {days((i + 1) * 0.7 * DAY)}" for i in range(5)
    ]
    assert [r.get("fill") for r in rects].count(ACCENT) == 1
    assert rects[2].get("fill") == ACCENT
    assert [t.text for t in texts(root, "value")] == [days((i + 1) * 0.7 * DAY) for i in range(5)]


def test_bar_without_highlight_has_no_accent() -> None:
    root = parse(make_bar(highlight=None))
    assert ACCENT not in {r.get("fill") for r in find_all(root, "rect", "mark")}


def test_legend_lists_series_in_order() -> None:
    root = parse(make_stacked_bar())
    (legend,) = find_all(root, "g", "legend")
    assert [t.text for t in legend.iter(f"{NS}text")] == [
        "Throughput done",
        "Throughput rejected",
        "Throughput cancelled",
    ]
    assert [r.get("fill") for r in legend.iter(f"{NS}rect")] == list(PALETTE[:3])


def test_legend_sits_above_the_plot() -> None:
    series = [Series(f"Stage with a long name {i}", [i, i + 1]) for i in range(8)]
    root = parse(make_area(x_labels=["a", "b"], series=series))
    (legend,) = find_all(root, "g", "legend")
    legend_bottom = max(float(r.get("y", "nan")) + 12 for r in legend.iter(f"{NS}rect"))
    plot_top = min(float(line.get("y1", "nan")) for line in find_all(root, "line", "grid"))
    assert legend_bottom + 8 <= plot_top
    assert all(float(t.get("x", "nan")) + 150 <= 720 for t in legend.iter(f"{NS}text"))


# ------------------------------------------------------------------------------------------ empty & edge


@pytest.mark.parametrize("name", list(MAKERS))
def test_empty_data_shows_empty_text(name: str) -> None:
    root = parse(MAKERS[name]("Chart", **EMPTY_OVERRIDES[name], empty_text="暂无数据 <none>"))
    assert [t.text for t in texts(root, "empty")] == ["暂无数据 <none>"]
    assert len(find_all(root, "line", "axis")) == 2
    assert not find_all(root, "circle") and not find_all(root, "rect") and not find_all(root, "polygon")


@pytest.mark.parametrize(
    "overrides",
    [
        {"series": [Series("a", [])], "x_labels": []},
        {"series": [], "x_labels": ["a", "b"]},
    ],
)
def test_stacked_charts_without_series_or_labels_are_empty(overrides: dict[str, object]) -> None:
    for name in ("area", "stacked_bar"):
        root = parse(MAKERS[name](**overrides, empty_text="nothing"))
        assert [t.text for t in texts(root, "empty")] == ["nothing"]


def test_scatter_with_only_non_finite_points_is_empty() -> None:
    points = [Point(x=math.nan, y=1, label="a"), Point(x=1, y=math.inf, label="b")]
    root = parse(make_scatter(points=points, empty_text="none"))
    assert [t.text for t in texts(root, "empty")] == ["none"]


def test_single_point() -> None:
    root = parse(
        make_scatter(points=[Point(x=5.0, y=2 * DAY, label="only")], line=[(5.0, 2 * DAY)], hlines=[])
    )
    (circle,) = find_all(root, "circle", "mark")
    assert title_of(circle) == f"only: {days(2 * DAY)}"
    assert 0 < float(circle.get("cx", "nan")) < 720
    assert not find_all(root, "polyline")  # a one-point line is not drawn


def test_single_bar() -> None:
    root = parse(make_bar(bars=[Bar("solo", 3.0)], y_format=number, highlight="solo"))
    (rect,) = find_all(root, "rect", "mark")
    assert title_of(rect) == "solo: 3"
    assert rect.get("fill") == ACCENT


def test_single_x_stacked_area_spans_the_plot() -> None:
    root = parse(make_area(x_labels=["d1"], series=[Series("a", [3]), Series("b", [2])]))
    polygons = find_all(root, "polygon", "area")
    assert len(polygons) == 2
    xs = {x for x, _ in polygon_points(polygons[0])}
    assert len(xs) == 2  # a band, not a zero-width sliver
    assert len(find_all(root, "rect", "mark")) == 1


@pytest.mark.parametrize("name", list(MAKERS))
def test_all_zero_values_render(name: str) -> None:
    overrides: dict[str, dict[str, object]] = {
        "scatter": {"points": [Point(x=i, y=0, label=str(i)) for i in range(3)], "hlines": [HLine(0, "p50")]},
        "area": {"series": [Series("a", [0] * 5), Series("b", [0] * 5)]},
        "stacked_bar": {"series": [Series("a", [0] * 4)]},
        "bar": {"bars": [Bar("a", 0), Bar("b", 0)]},
    }
    root = parse(MAKERS[name](**overrides[name]))
    ticks = [t.text for t in texts(root, "ytick")]
    assert 4 <= len(ticks) <= 6
    assert not texts(root, "empty")


def test_non_finite_values_do_not_break_the_chart() -> None:
    root = parse(make_bar(bars=[Bar("a", math.nan), Bar("b", math.inf), Bar("c", 2)], y_format=number))
    assert [title_of(r) for r in find_all(root, "rect", "mark")] == ["a: 0", "b: 0", "c: 2"]


def test_negative_bar_is_drawn_below_zero() -> None:
    root = parse(make_bar(bars=[Bar("up", 3), Bar("down", -2)], y_format=number))
    to_value = y_scale(root)
    up, down = find_all(root, "rect", "mark")
    assert float(down.get("height", "nan")) > 0
    assert to_value(float(down.get("y", "nan"))) == pytest.approx(0, abs=0.02)
    assert to_value(float(up.get("y", "nan"))) == pytest.approx(3, abs=0.02)


def test_series_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="values for 5 x labels"):
        make_area(series=[Series("a", [1, 2])])


# ------------------------------------------------------------------------------------------ ticks


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 7, [0, 2, 4, 6, 8]),
        (0, 0.37, [0, 0.1, 0.2, 0.3, 0.4]),
        (0, 10, [0, 2, 4, 6, 8, 10]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (0, 3, [0, 1, 2, 3]),
        (0, 11, [0, 5, 10, 15]),
        (0, 1234, [0, 500, 1000, 1500]),
        (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (-3, 7, [-5, 0, 5, 10]),
    ],
)
def test_nice_ticks(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_nice_ticks_properties() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        hi = 10 ** rng.uniform(-4, 9)
        ticks = nice_ticks(0, hi)
        assert 4 <= len(ticks) <= 6, (hi, ticks)
        assert ticks[0] == 0 and ticks[-1] >= hi
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
        assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5)), (hi, step)
        assert all(math.isclose(b - a, step, rel_tol=1e-6) for a, b in itertools.pairwise(ticks))


def test_nice_ticks_have_no_float_noise() -> None:
    assert nice_ticks(0, 0.37)[3] == 0.3
    assert all(repr(t) in {"0.0", "0.1", "0.2", "0.3", "0.4"} for t in nice_ticks(0, 0.37))


def test_y_unit_makes_durations_tick_on_whole_days() -> None:
    root = parse(make_bar(bars=[Bar("a", 5.7 * DAY)], y_unit=DAY))
    assert [t.text for t in texts(root, "ytick")] == ["0.0 d", "2.0 d", "4.0 d", "6.0 d"]


def test_y_format_labels_the_ticks() -> None:
    root = parse(make_stacked_bar(y_format=lambda v: f"{v:g} items"))
    labels = [t.text or "" for t in texts(root, "ytick")]
    assert 4 <= len(labels) <= 6 and all(label.endswith(" items") for label in labels)


# ------------------------------------------------------------------------------------------ x labels


def assert_no_overlap(labels: list[ET.Element]) -> None:
    boxes = []
    for t in labels:
        width = charts._text_width(t.text or "")
        x = float(t.get("x", "nan"))
        assert t.get("text-anchor") == "middle"
        boxes.append((x - width / 2, x + width / 2))
    boxes.sort()
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(boxes)), boxes
    assert all(left >= 0 and right <= 720 for left, right in boxes)


def test_x_labels_thinned_for_180_daily_points() -> None:
    labels = [f"2024-{1 + i // 30:02d}-{1 + i % 30:02d}" for i in range(180)]
    root = parse(make_area(x_labels=labels, series=[Series("a", [float(i) for i in range(180)])]))
    drawn = texts(root, "xlabel")
    assert 2 <= len(drawn) <= 12
    assert drawn[0].text == labels[0]
    assert_no_overlap(drawn)


def test_scatter_x_labels_thinned() -> None:
    points = [Point(x=i * DAY, y=(i % 7) * DAY, label=str(i)) for i in range(180)]
    x_labels = [(i * DAY, f"2024-01-{i:03d}") for i in range(180)]
    x_labels.append((10_000 * DAY, "outside"))
    root = parse(make_scatter(points=points, x_labels=x_labels, line=None))
    drawn = texts(root, "xlabel")
    assert 2 <= len(drawn) <= 12
    assert "outside" not in {t.text for t in drawn}
    assert_no_overlap(drawn)
    assert len(find_all(root, "line", "xtick")) == len(drawn)


def test_few_short_x_labels_are_all_drawn() -> None:
    root = parse(make_stacked_bar(x_labels=["W1", "W2", "W3", "W4"]))
    assert [t.text for t in texts(root, "xlabel")] == ["W1", "W2", "W3", "W4"]


def test_many_bars_thin_their_labels() -> None:
    bars = [Bar(f"REQ-{i}", i % 6) for i in range(60)]
    root = parse(make_bar(bars=bars, y_format=number, highlight=None))
    assert len(find_all(root, "rect", "mark")) == 60
    drawn = texts(root, "xlabel")
    assert 2 <= len(drawn) <= 12
    assert_no_overlap(drawn)


def test_long_bar_labels_are_truncated_with_full_text_in_tooltip() -> None:
    long = "Verification by the operations team 运维验证"
    root = parse(make_bar(bars=[Bar(long, 1), *(Bar(f"s{i}", 1) for i in range(5))], y_format=number))
    drawn = texts(root, "xlabel")
    assert len(drawn) == 6
    first = drawn[0]
    assert "".join(first.itertext()).endswith("…") or (first.text or "").endswith("…")
    assert title_of(first) == long
    assert_no_overlap([t for t in drawn if t.text])


# ------------------------------------------------------------------------------------------ links


@pytest.mark.parametrize(
    "href",
    ["javascript:alert(1)", "https://evil", "//evil.example", "/\\evil.example", " /x", "/\t/evil", "", None],
)
def test_unsafe_hrefs_are_not_linked(href: str | None) -> None:
    assert safe_href(href) is None
    root = parse(make_scatter(points=[Point(x=1, y=1, label="a", href=href)]))
    assert not find_all(root, "a")
    root = parse(make_bar(bars=[Bar("a", 1, href=href)]))
    assert not find_all(root, "a")


def test_relative_hrefs_are_linked_and_escaped() -> None:
    href = '/requirements/7/?a=1&b="2"'
    assert safe_href(href) == href
    svg = make_scatter(points=[Point(x=1, y=1, label="a", href=href)])
    assert "&amp;b=&quot;2&quot;" in svg
    (link,) = find_all(parse(svg), "a")
    assert link.get("href") == href
    assert [el.get("class") for el in link] == ["mark"]


def test_points_and_bars_with_href_are_wrapped() -> None:
    root = parse(make_scatter())
    assert len(find_all(root, "a")) == 10
    root = parse(make_bar())
    assert len(find_all(root, "a")) == 5


def test_no_unescaped_attribute_injection_anywhere() -> None:
    svg = make_scatter(HOSTILE) + make_area(HOSTILE) + make_stacked_bar(HOSTILE) + make_bar(HOSTILE)
    # every attribute value is quoted and contains no raw quote or angle bracket
    for match in re.finditer(r'\s([\w:-]+)="([^"]*)"', svg):
        assert "<" not in match.group(2)
    assert not re.search(r"<[^>]*\son\w+=", svg.replace("&quot;", ""))
