"""What a new team starts with: the usual operations metrics, and watches ready to switch on."""

from __future__ import annotations

from django.utils.translation import gettext_noop

# (name, unit, direction, description); names and descriptions are translated when a team is created.
DEFAULT_METRICS: list[tuple[str, str, str, str]] = [
    ("DAU", gettext_noop("users"), "up", gettext_noop("Daily active users.")),
    ("MAU", gettext_noop("users"), "up", gettext_noop("Monthly active users.")),
    ("DAU/MAU", "%", "up", gettext_noop("Stickiness: daily over monthly active users.")),
    (gettext_noop("D1 retention"), "%", "up", gettext_noop("New users still active the next day.")),
    (gettext_noop("D7 retention"), "%", "up", gettext_noop("New users still active on day 7.")),
    (gettext_noop("D30 retention"), "%", "up", gettext_noop("New users still active on day 30.")),
    (gettext_noop("Conversion rate"), "%", "up", gettext_noop("Visitors who place a first order.")),
    ("ARPU", "¥", "up", gettext_noop("Average revenue per user.")),
    ("LTV", "¥", "up", gettext_noop("Lifetime value of a user.")),
    (
        gettext_noop("Complaint rate"),
        "%",
        "down",
        gettext_noop("Orders or sessions that end in a complaint."),
    ),
    ("NPS", "", "up", gettext_noop("Net promoter score, −100 to 100.")),
    (gettext_noop("Churn rate"), "%", "down", gettext_noop("Users of last period who did not come back.")),
]

# Watches to start from: (key, name, metric name, comparison, threshold, periods, period, template title,
# AARRR stage, priority, owner role, description).
WATCH_PRESETS: list[dict[str, object]] = [
    {
        "key": "d7-retention",
        "name": gettext_noop("D7 retention below 25%"),
        "metric": gettext_noop("D7 retention"),
        "comparison": "lt",
        "threshold": "25",
        "periods": 1,
        "period": "day",
        "title": gettext_noop("Win back new users: D7 retention fell below 25%"),
        "aarrr_stage": "retention",
        "priority": "P1",
        "owner_role": "ops",
        "description": gettext_noop(
            "D7 retention is below 25%. Find where new users drop off in their first week and propose a fix."
        ),
    },
    {
        "key": "complaints",
        # xgettext:no-python-format
        "name": gettext_noop("Complaint rate above 5% for 3 days"),
        "metric": gettext_noop("Complaint rate"),
        "comparison": "gt",
        "threshold": "5",
        "periods": 3,
        "period": "day",
        "title": gettext_noop("Complaints above 5% three days running"),
        "aarrr_stage": "retention",
        "priority": "P0",
        "owner_role": "ops",
        "description": gettext_noop(
            # xgettext:no-python-format
            "The complaint rate has been above 5% for three days in a row. Read the complaints, find the cause "
            "and stop it."
        ),
    },
    {
        "key": "churn-rising",
        "name": gettext_noop("Churn rising 3 months"),
        "metric": gettext_noop("Churn rate"),
        "comparison": "rises",
        "threshold": "",
        "periods": 3,
        "period": "month",
        "title": gettext_noop("Churn has risen three months running"),
        "aarrr_stage": "retention",
        "priority": "P1",
        "owner_role": "lead",
        "description": gettext_noop(
            "Churn has gone up three months in a row. Review the cohorts that leave and plan a retention push."
        ),
    },
]
