"""The benchmark's arithmetic: percentiles, ratios to the floor and the verdict on each target."""

from __future__ import annotations

from bench.run import TARGETS, Result, Target, nearest_rank, table


def test_nearest_rank_percentiles() -> None:
    ordered = [float(n) for n in range(1, 21)]  # 1 … 20
    assert nearest_rank(ordered, 50) == 10
    assert nearest_rank(ordered, 95) == 19
    assert nearest_rank(ordered, 99) == 20
    assert nearest_rank([7.0], 99) == 7


def result(name: str, p50: float, p95: float, queries: int) -> Result:
    return Result(
        name=name,
        method="GET",
        path="/",
        requests=10,
        p50=p50,
        p95=p95,
        p99=p95,
        queries_min=queries,
        queries_max=queries,
    )


def test_transition_target_checks_time_floor_ratio_and_queries() -> None:
    target = TARGETS["transition"]
    assert target.misses(result("transition", 19, 30, 12), floor_p50=5) == []
    assert target.misses(result("transition", 21, 30, 13), floor_p50=5) == [
        "p50 21.0 > 20 ms",
        "p50 4.2× floor > 4×",
        "13 queries > 12",
    ]


def test_p95_targets_ignore_the_median() -> None:
    board = TARGETS["board page"]
    assert board.misses(result("board page", 119, 120, 10), floor_p50=3) == []
    assert board.misses(result("board page", 50, 121, 10), floor_p50=3) == ["p95 121.0 > 120 ms"]
    assert TARGETS["analytics cumulative-flow (all teams)"].describe() == "p95 ≤ 1500 ms"


def test_table_marks_misses_and_leaves_untargeted_rows_blank() -> None:
    floor = result("floor", 2, 3, 1)
    slow = result("requirements list", 30, 40, 4)
    slow.misses = Target(p50_ms=15, queries=6).misses(slow, floor_p50=2)
    text = table([floor, slow], floor_p50=2)
    lines = text.splitlines()
    assert lines[2].startswith("| floor | 10 | 2.0 | 3.0 |")
    assert lines[2].endswith("| 1 |  |  |")
    assert "15.0" in lines[3]  # 30 ms is 15× the floor
    assert "**no**: p50 30.0 > 15 ms" in lines[3]
