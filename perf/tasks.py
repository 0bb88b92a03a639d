"""Timed runs of the periodic sweeps, for the benchmark (bench/run.py), executed by a real Celery worker
so that the worker's memory is measured doing the work."""

from __future__ import annotations

import resource
import time
from typing import Any

from celery import shared_task
from django.db import connection

from dataloop import services as dataloop_services
from workflows import reminders


class QueryCounter:
    """Counts the SQL statements run on the default connection while installed."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def _sla_sweep(counter: QueryCounter) -> dict[str, Any]:
    """The whole sweep, batch after batch, as the task that re-queues itself would run it."""
    sent = 0
    per_batch: list[int] = []
    more = True
    while more:
        before = counter.count
        batch_sent, more = reminders.sla_sweep()
        per_batch.append(counter.count - before)
        sent += batch_sent
    return {"reminders": sent, "batches": len(per_batch), "queries_per_batch": per_batch}


def _watch_evaluation(counter: QueryCounter) -> dict[str, Any]:
    return {"fired": dataloop_services.watches_evaluate()}


SWEEPS = {"sla_sweep": _sla_sweep, "watch_evaluation": _watch_evaluation}


@shared_task(ignore_result=False)
def measure(name: str) -> dict[str, Any]:
    """Run one sweep over everything in the database; return its time, its SQL queries and the
    worker process's peak memory so far."""
    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        started = time.perf_counter()
        outcome = SWEEPS[name](counter)
        seconds = time.perf_counter() - started
    return {
        "name": name,
        "seconds": seconds,
        "queries": counter.count,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        **outcome,
    }
