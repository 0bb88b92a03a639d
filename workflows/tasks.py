"""Thin Celery entry points for the time-driven work; the database is the source of truth."""

from __future__ import annotations

from celery import shared_task

from . import reminders


@shared_task(acks_late=True)
def sla_sweep() -> int:
    sent, _more = reminders.sla_sweep()  # every due visit in one pass
    return sent


@shared_task(acks_late=True)
def due_sweep() -> int:
    return reminders.due_sweep()


@shared_task(acks_late=True)
def digest_sweep() -> int:
    return reminders.digest_sweep()
