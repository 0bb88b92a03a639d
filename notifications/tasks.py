"""Thin Celery entry points: ids in, a service call, a retry policy."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(
    autoretry_for=(services.DeliveryFailed,),
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=services.MAX_ATTEMPTS - 1,
    acks_late=True,  # safe: a delivery that was sent is never sent again
)
def deliver(*, delivery_id: int) -> str:
    return services.delivery_send(delivery_id=delivery_id)


@shared_task(acks_late=True)
def deliveries_sweep() -> int:
    """Queue every pending delivery whose time has come: the ones held for quiet hours, and any whose
    task was lost (broker down at the time, worker killed)."""
    due = services.deliveries_due()
    services.enqueue_deliveries(due)
    return len(due)
