"""The reminders through a real Celery worker, started here as a subprocess on the test's PostgreSQL
database: once on Redis, once on the embedded filesystem broker. The worker sees only committed data,
hence `transaction=True`. Email goes to files (tests/notifications/worker_settings.py), chat to a local
HTTP server. Polls are bounded; every worker is killed in teardown."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from notifications import services as notification_services
from notifications import tasks as notification_tasks
from notifications.models import Channel, Delivery, Kind, Notification
from tests.conftest import Crew
from workflows import services
from workflows import tasks as workflow_tasks
from workflows.models import StageReminder

from .helpers import HOUR, ChatServer, celery_broker, filesystem_broker_options

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="a worker in another process needs the PostgreSQL test database",
    ),
]

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"
VISIBILITY_TIMEOUT = 3  # seconds before Redis hands a dead worker's unacknowledged task to another
POLL_TIMEOUT = 60
IN_CI = os.environ.get("CI") == "true"


def wait_for(condition: Callable[[], bool], *, what: str, worker: Worker | None = None) -> None:
    deadline = time.monotonic() + POLL_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting {POLL_TIMEOUT} s for {what}\n" + (worker.log() if worker else ""))
        time.sleep(0.2)


class Worker:
    """`celery -A opsteam worker --pool=prefork --concurrency=1 -Q celery` in a session of its own, so
    that a kill takes the pool's child process too."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "opsteam",
                "worker",
                # prefork, not solo: solo's event loop stands still during a task, so even an early
                # ack would wait for the task's end and a kill could not tell acks_late apart.
                "--pool=prefork",
                "--concurrency=1",
                "-Q",
                "celery",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def wait_ready(self) -> Worker:
        wait_for(
            lambda: " ready." in self.log() or self.process.poll() is not None, what="the worker", worker=self
        )
        assert self.process.poll() is None, self.log()
        return self

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


def database_url() -> str:
    """The test database this process uses (pytest-django made it: test_<name>)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def redis_broker() -> Iterator[dict[str, str]]:
    """Redis database 15, emptied; this process publishes there too. In CI a missing Redis fails."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        if IN_CI:
            pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL}, and CI needs it: {exc}")
        pytest.skip(f"Redis is not reachable at {REDIS_TEST_URL}")
    client.flushdb()
    with celery_broker(REDIS_TEST_URL, {"visibility_timeout": VISIBILITY_TIMEOUT}):
        yield {"REDIS_URL": REDIS_TEST_URL, "OPSTEAM_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    client.flushdb()
    client.close()


@pytest.fixture
def filesystem_broker(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The embedded broker: this process and the worker share the queue folders under one data dir."""
    data_dir = tmp_path / "data"
    with celery_broker("filesystem://", filesystem_broker_options(str(data_dir / "celery"))):
        yield {"REDIS_URL": "", "OPSTEAM_DATA_DIR": str(data_dir)}


@pytest.fixture(params=["redis_broker", "filesystem_broker"])
def broker(request: pytest.FixtureRequest) -> dict[str, str]:
    env: dict[str, str] = request.getfixturevalue(request.param)
    return env


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path, mail_dir: Path) -> Iterator[Callable[..., Worker]]:
    """Start a worker on the test database; each is killed at teardown, before the database is flushed."""
    workers: list[Worker] = []

    def start(broker_env: dict[str, str]) -> Worker:
        env = {
            **os.environ,
            **broker_env,
            "DJANGO_SETTINGS_MODULE": "tests.notifications.worker_settings",
            "DATABASE_URL": database_url(),
            "EMAIL_FILE_PATH": str(mail_dir),
            "PYTHONPATH": str(settings.BASE_DIR),
        }
        worker = Worker(env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker.wait_ready()

    yield start
    for worker in workers:
        worker.kill()


def overdue_with_chat(crew: Crew, chat_server: ChatServer, fmt: str) -> None:
    """GROW-1 has been in propose (SLA 48 h) for 49 h: ops is owed a reminder; the team's chat robot
    posts overdue stages in `fmt`."""
    notification_services.webhook_create(
        actor=crew.lead,
        team_id=crew.team.pk,
        name="ops group",
        url=chat_server.url,
        format=fmt,
        kinds=[Kind.STAGE_OVERDUE],
    )
    services.requirement_create(
        team=crew.team, actor=crew.lead, title="Stale idea", at=timezone.now() - 49 * HOUR
    )


def sent(channel: str) -> bool:
    return Delivery.objects.filter(channel=channel, status=Delivery.Status.SENT).exists()


def emails_in(folder: Path) -> list[EmailMessage]:
    separator = b"\n" + b"-" * 79 + b"\n"
    return [
        email.message_from_bytes(raw, policy=email.policy.default)
        for path in sorted(folder.iterdir())
        for raw in path.read_bytes().split(separator)
        if raw.strip()
    ]


def only_one_reminder_was_made(crew: Crew) -> None:
    assert StageReminder.objects.count() == 1
    assert list(Notification.objects.values_list("recipient__username", "kind")) == [
        ("ops", Kind.STAGE_OVERDUE)
    ]
    assert sorted(Delivery.objects.values_list("channel", "status")) == [
        (Channel.EMAIL, Delivery.Status.SENT),
        (Channel.WEBHOOK, Delivery.Status.SENT),
    ]


def test_the_sla_sweep_reminds_by_inbox_email_and_chat_through_a_real_worker(
    crew: Crew, chat_server: ChatServer, broker: dict[str, str], start_worker: Any, mail_dir: Path
) -> None:
    overdue_with_chat(crew, chat_server, fmt="wecom")
    worker = start_worker(broker)

    workflow_tasks.sla_sweep.delay()

    wait_for(lambda: sent(Channel.EMAIL) and sent(Channel.WEBHOOK), what="both deliveries", worker=worker)
    only_one_reminder_was_made(crew)
    [message] = emails_in(mail_dir)
    assert message["To"] == "ops@example.com"
    assert message["Subject"].startswith("[GROW] GROW-1 Stale idea has been in Propose for 2d 1h")
    plain = message.get_body(("plain",))
    assert plain is not None
    assert "GROW-1 Stale idea has been in Propose" in plain.get_content()
    [post] = chat_server.received()
    assert post.json["msgtype"] == "markdown"
    assert "- GROW-1 Stale idea has been in Propose for 2d 1h" in post.json["markdown"]["content"]


def test_a_worker_killed_mid_send_leaves_one_reminder_and_redelivers_it_on_redis(
    crew: Crew, chat_server: ChatServer, redis_broker: dict[str, str], start_worker: Any
) -> None:
    overdue_with_chat(crew, chat_server, fmt="feishu")
    chat_server.hold = True
    first = start_worker(redis_broker)
    workflow_tasks.sla_sweep.delay()
    assert chat_server.arrived.wait(POLL_TIMEOUT), first.log()

    first.kill()  # SIGKILL while the chat post is in flight: its transaction dies with the connection
    chat_server.hold = False
    chat_server.release.set()
    assert Delivery.objects.get(channel=Channel.WEBHOOK).attempts == 0
    second = start_worker(redis_broker)

    # Nobody queues anything again: the unacknowledged task comes back by itself (acks_late).
    wait_for(lambda: sent(Channel.WEBHOOK), what="the chat post after the restart", worker=second)
    only_one_reminder_was_made(crew)
    assert [post.json["msg_type"] for post in chat_server.received()] == ["post", "post"]


def test_a_worker_killed_mid_send_on_the_filesystem_broker_is_repaired_by_the_delivery_sweep(
    crew: Crew, chat_server: ChatServer, filesystem_broker: dict[str, str], start_worker: Any
) -> None:
    overdue_with_chat(crew, chat_server, fmt="slack")
    chat_server.hold = True
    first = start_worker(filesystem_broker)
    workflow_tasks.sla_sweep.delay()
    assert chat_server.arrived.wait(POLL_TIMEOUT), first.log()

    first.kill()  # the filesystem transport took the message off the queue: it is lost
    chat_server.hold = False
    chat_server.release.set()
    second = start_worker(filesystem_broker)
    notification_tasks.deliveries_sweep.delay()  # what beat does every minute

    wait_for(lambda: sent(Channel.WEBHOOK), what="the chat post after the sweep", worker=second)
    only_one_reminder_was_made(crew)
    assert len(chat_server.received()) == 2
