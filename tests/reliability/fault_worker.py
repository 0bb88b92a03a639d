"""`python -m tests.reliability.fault_worker`: a prefork Celery worker (one pool process) for the fault
suite. The one thing it changes in the app is the delivery back-off (FAULT_RETRY_BACKOFF seconds rather
than 30), so that retries after a refusal happen within a test's time; the pool process inherits it."""

from __future__ import annotations

import os
import sys
import uuid

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.fault_worker_settings")
    django.setup()

    from notifications import services
    from opsteam.celery import app

    services.RETRY_BACKOFF = int(os.environ.get("FAULT_RETRY_BACKOFF", "1"))
    app.worker_main(
        [
            "worker",
            # prefork: a SIGKILL can hit the pool process alone (reject_on_worker_lost) or the whole worker.
            "--pool=prefork",
            "--concurrency=1",
            "-Q",
            "celery",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"faults-{uuid.uuid4().hex[:8]}@%h",
            *sys.argv[1:],
        ]
    )


if __name__ == "__main__":
    main()
