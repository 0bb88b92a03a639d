"""The fault suite's short form (bench/faults.py is the long one, with the same scenario code): a worker
killed mid-send, Redis stopped during transitions, the mail server and a webhook failing then recovering,
and PostgreSQL connections terminated mid-transition. Each must lose nothing and duplicate nothing.

PostgreSQL with committed data (the workers are other processes), hence `transaction=True`; a Redis
server of the test's own (never the shared one). Without redis-server the tests skip, except under
CI=true, where they fail. `pytest --long` runs them at the script's long sizes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from .fault_scenarios import (
    LONG,
    SHORT,
    Lab,
    Result,
    Sizes,
    endpoints_failing,
    postgres_dropped,
    redis_stopped,
    worker_killed,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="workers in other processes need PostgreSQL"
    ),
]


@pytest.fixture
def sizes(long_run: bool) -> Sizes:
    return LONG if long_run else SHORT


@pytest.fixture
def lab(transactional_db: None, tmp_path: Path) -> Iterator[Lab]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed, and CI needs it for the fault suite")
        pytest.skip("redis-server is not installed")
    started = Lab(tmp_path)
    try:
        yield started
    finally:
        started.close()


def assert_whole(result: Result, *, operations: int, delivered: int) -> None:
    assert result.problems == []
    assert (result.operations, result.delivered, result.lost, result.duplicates) == (
        operations,
        delivered,
        0,
        0,
    )


def test_a_pool_process_killed_mid_send_runs_the_delivery_again_and_mails_each_reminder_once(
    lab: Lab, sizes: Sizes
) -> None:
    result = worker_killed(lab, sizes, whole_worker=False)

    assert_whole(result, operations=sizes.reminders, delivered=sizes.reminders)
    assert lab.smtp.dropped == sizes.kills


def test_a_whole_worker_killed_mid_send_is_repaired_by_the_delivery_sweep_and_mails_each_reminder_once(
    lab: Lab, sizes: Sizes
) -> None:
    result = worker_killed(lab, sizes, whole_worker=True)

    assert_whole(result, operations=sizes.reminders, delivered=sizes.reminders)
    assert lab.smtp.dropped == sizes.kills


def test_transitions_commit_while_redis_is_down_and_their_notifications_arrive_once_after(
    lab: Lab, sizes: Sizes
) -> None:
    result = redis_stopped(lab, sizes)

    assert_whole(result, operations=sizes.transitions, delivered=2 * sizes.transitions)


def test_refused_emails_and_chat_posts_are_shown_to_the_lead_retried_and_delivered_once(
    lab: Lab, sizes: Sizes
) -> None:
    result = endpoints_failing(lab, sizes)

    assert_whole(result, operations=2 * sizes.deliveries, delivered=2 * sizes.deliveries)
    assert lab.smtp.refusals >= 2 * sizes.deliveries
    assert lab.chat.refusals >= 2 * sizes.deliveries


def test_a_postgres_backend_terminated_mid_transition_answers_500_and_never_half_writes(
    lab: Lab, sizes: Sizes
) -> None:
    result = postgres_dropped(lab, sizes)

    assert_whole(result, operations=2 * sizes.moves, delivered=sizes.moves)
