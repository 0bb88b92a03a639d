"""Small display helpers for the web pages."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from workflows.markdown import render as render_markdown

register = template.Library()


@register.filter
def duration(value: dt.timedelta | None) -> str:
    """A compact age: '3d 4h', '5h 10m', '12m'."""
    if value is None:
        return ""
    minutes = max(int(value.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(d)dd %(h)dh") % {"d": days, "h": hours}
    if hours:
        return _("%(h)dh %(m)dm") % {"h": hours, "m": minutes}
    return _("%(m)dm") % {"m": minutes}


@register.filter
def person(user: object) -> str:
    """A user's full name, else their username; an empty value reads as nobody."""
    if user is None:
        return "—"
    full = user.get_full_name()  # type: ignore[attr-defined]
    return full or user.get_username()  # type: ignore[attr-defined]


@register.filter
def get_item(mapping: dict, key: str) -> object:
    return mapping.get(key, key)


@register.filter
def markdown(text: str) -> str:
    """Markdown to HTML, sanitized (raw HTML and scripts are stripped or escaped)."""
    return mark_safe(render_markdown(text))  # noqa: S308 - nh3 has sanitized it
