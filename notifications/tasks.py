"""Thin Celery entry points: ids in, a service call, a retry policy."""

from __future__ import annotations

from celery import Task, shared_task

from . import services


@shared_task(
    bind=True,
    max_retries=services.MAX_ATTEMPTS,  # a backstop: the delivery's own attempt count decides
    acks_late=True,  # safe: a delivery that was sent is never sent again
    # A pool process killed mid-send (OOM killer, SIGKILL) puts the message back at once rather than
    # acknowledging it as failed: the rolled-back delivery is still pending and is simply sent again.
    reject_on_worker_lost=True,
)
def deliver(self: Task, *, delivery_id: int) -> str:
    try:
        return services.delivery_send(delivery_id=delivery_id)
    except services.DeliveryFailed as exc:
        # Back off as long as the delivery's not_before says, so the sweep and the retry agree.
        raise self.retry(exc=exc, countdown=exc.retry_in) from exc


@shared_task(acks_late=True, reject_on_worker_lost=True)
def dispatch() -> int:
    """Send the due deliveries (services.dispatch_soon asks for this after a commit). A dispatch
    killed mid-send runs again; what it had sent stays sent."""
    sent, more = services.deliveries_dispatch()
    if more:
        services.dispatch_soon()
    return sent


@shared_task(acks_late=True)
def deliveries_sweep() -> int:
    """Queue every pending delivery whose time has come: the ones held for quiet hours or waiting out
    a back-off, and any whose task was lost (broker down at the time, worker killed)."""
    due = services.deliveries_due()
    services.enqueue_deliveries(due)
    return len(due)
