"""Units for the dashboard: seconds as days or hours, shares as percentages."""

from __future__ import annotations

from django import template

from analytics.views import human, percent

register = template.Library()

register.filter("human", human)
register.filter("pct", percent)
