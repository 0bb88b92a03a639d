"""Context for the page frame: the teams in the switcher."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from roles.permissions import teams_visible_to


def navigation(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {}
    user = request.user
    teams = SimpleLazyObject(lambda: list(teams_visible_to(user=user).order_by("name")))
    # A callable: the template calls it only where a page has no team of its own.
    return {"nav_teams": teams, "nav_first_team": lambda: teams[0] if teams else None}
