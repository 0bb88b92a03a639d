"""Thin Celery entry points for watch evaluation; the database is the source of truth."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True)  # safe: a streak fires a watch once (unique firing, row lock)
def evaluate_watches(*, metric_ids: list[int]) -> int:
    """Evaluate the watches of metrics that just got observations."""
    return services.watches_evaluate(metric_ids=metric_ids)


@shared_task(acks_late=True)
def watch_sweep() -> int:
    """Evaluate every active watch, in batches of services.WATCH_BATCH: catches hints lost while the
    broker was down. Returns how many fired."""
    return services.watches_evaluate()
