"""The authentication backend: Django's model backend behind the sign-in throttle (roles.logins)."""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import ngettext
from rest_framework.exceptions import Throttled
from rest_framework.request import Request

from . import logins

# Set on the request when a sign-in was refused because of the lock, so that the login form can say so.
LOCKED_ATTRIBUTE = "opsteam_login_locked_until"


def locked_message(minutes: int) -> str:
    return ngettext(
        "Too many failed sign-ins for this username. Try again in %(minutes)d minute.",
        "Too many failed sign-ins for this username. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


def minutes_left(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


class ThrottledModelBackend(ModelBackend):
    """Refuses a locked username before its password is checked; counts failures and forgets them on
    success. A locked API sign-in is a 429 (DRF's Throttled, which django.contrib.auth.authenticate does
    not swallow); a locked web sign-in is refused and marked on the request for the login form."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        locked_until = logins.login_locked_until(username=username)
        if locked_until is not None:
            seconds = (locked_until - timezone.now()).total_seconds()
            if isinstance(request, Request):
                raise Throttled(wait=seconds, detail=locked_message(minutes_left(seconds)))
            if request is not None:
                setattr(request, LOCKED_ATTRIBUTE, locked_until)
            raise PermissionDenied
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            logins.login_failure_record(username=username)
        else:
            logins.login_success_record(username=username)
        return user
