"""Thin Celery entry points for the time-driven work; the database is the source of truth."""

from __future__ import annotations

from celery import shared_task

from . import reminders


@shared_task(acks_late=True)
def sla_sweep() -> int:
    sent, more = reminders.sla_sweep()
    if more:
        sla_sweep.delay()  # bounded batches; carry on while work remains
    return sent


@shared_task(acks_late=True)
def due_sweep() -> int:
    return reminders.due_sweep()


@shared_task(acks_late=True)
def digest_sweep() -> int:
    return reminders.digest_sweep()
