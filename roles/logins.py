"""Sign-in throttling against password guessing: after OPSTEAM_LOGIN_FAILURE_LIMIT failed sign-ins of
one username within OPSTEAM_LOGIN_COOL_OFF, that username is locked for OPSTEAM_LOGIN_COOL_OFF. The
count lives in the database, so every gunicorn worker and the API see the same lock."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import LoginThrottle


def _key(username: str) -> str:
    # Usernames are matched exactly by the backend, but "Lead" and "lead" are the same guesser.
    return username.strip().lower()[:150]


def cool_off() -> dt.timedelta:
    cool_off: dt.timedelta = settings.OPSTEAM_LOGIN_COOL_OFF
    return cool_off


def login_locked_until(*, username: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the username's lock ends, or None when it may try to sign in."""
    now = now or timezone.now()
    return (
        LoginThrottle.objects.filter(username=_key(username), locked_until__gt=now)
        .values_list("locked_until", flat=True)
        .first()
    )


def login_failure_record(*, username: str, now: dt.datetime | None = None) -> LoginThrottle:
    """Count a failed sign-in; the one that reaches the limit locks the username. Failures older than
    the cool-off no longer count."""
    now = now or timezone.now()
    with transaction.atomic():
        throttle, created = LoginThrottle.objects.select_for_update().get_or_create(
            username=_key(username), defaults={"failures": 1, "last_failure_at": now}
        )
        if created:
            return throttle
        if throttle.last_failure_at <= now - cool_off():
            throttle.failures = 0
            throttle.locked_until = None
        throttle.failures += 1
        throttle.last_failure_at = now
        if throttle.failures >= settings.OPSTEAM_LOGIN_FAILURE_LIMIT:
            throttle.locked_until = now + cool_off()
            throttle.failures = 0
        throttle.save(update_fields=["failures", "last_failure_at", "locked_until"])
    return throttle


def login_success_record(*, username: str) -> None:
    """A successful sign-in forgets the username's failures."""
    LoginThrottle.objects.filter(username=_key(username)).delete()
