"""The default *ops iteration loop* every new team starts from (PRODUCT.md §3), as data."""

from __future__ import annotations

from django.utils.translation import gettext_noop

# (slug, name, owner roles, SLA hours)
DEFAULT_STAGES: list[tuple[str, str, list[str], int]] = [
    ("propose", gettext_noop("Propose"), ["ops"], 2 * 24),
    ("design", gettext_noop("Design"), ["pm"], 3 * 24),
    ("build", gettext_noop("Build"), ["engineer"], 10 * 24),
    ("instrument", gettext_noop("Instrument"), ["engineer", "analyst"], 2 * 24),
    ("analyze", gettext_noop("Analyze"), ["analyst"], 7 * 24),
    ("optimize", gettext_noop("Optimize"), ["ops"], 2 * 24),
]

# (from, to, kind, roles allowed, required fields). For iterate, `to` is where the next loop opens;
# close has no target stage.
DEFAULT_TRANSITIONS: list[tuple[str, str | None, str, list[str], list[str]]] = [
    ("propose", "design", "forward", ["ops"], ["title", "hypothesis", "target_metric", "aarrr_stage"]),
    ("design", "build", "forward", ["pm"], ["design"]),
    ("build", "instrument", "forward", ["engineer"], []),
    ("instrument", "analyze", "forward", ["engineer", "analyst"], ["launch_date", "tracking_plan"]),
    ("analyze", "optimize", "forward", ["analyst"], ["conclusion", "verdict"]),
    ("optimize", "propose", "iterate", ["ops"], []),
    ("optimize", None, "close", ["ops"], []),
    ("design", "propose", "rework", ["pm"], []),
    ("build", "design", "rework", ["engineer"], []),
    ("instrument", "build", "rework", ["engineer", "analyst"], []),
    ("analyze", "instrument", "rework", ["analyst"], []),
]

DEFAULT_WORKFLOW_NAME = gettext_noop("Ops iteration loop")
