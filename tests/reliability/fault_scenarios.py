"""The fault scenarios, shared by `bench/faults.py` (a table, long sizes) and `test_faults.py` (short sizes,
assertions). Each runs on the current Django database, which must be PostgreSQL with committed data (the
Celery workers are other processes), a Redis of the scenario's own, and local SMTP and chat servers.

A scenario never raises for a fault it observes: it counts what was lost or duplicated and lists what went
wrong in `problems`, so the script can print every row and the test can assert on all of it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import psycopg
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from notifications import services as notification_services
from notifications import tasks as notification_tasks
from notifications.models import Delivery, Kind, Notification
from roles.models import Team
from tests.factories import READY_FIELDS, UserFactory, add_member, make_team
from tests.notifications.helpers import celery_broker
from workflows import reminders, services
from workflows import tasks as workflow_tasks
from workflows.models import Requirement, StageEvent, StageReminder

from .fault_servers import ChatEndpoint, Mail, RedisServer, SmtpServer

HOUR = dt.timedelta(hours=1)
BEAT_EVERY = 2.0  # seconds between delivery sweeps where the harness plays Celery beat (60 s in production)


@dataclass(frozen=True)
class Sizes:
    reminders: int  # reminders due when a worker is killed mid-send
    kills: int  # SIGKILLs per kill scenario
    transitions: int  # transitions made while Redis is down
    deliveries: int  # transitions whose email and chat post first meet errors
    moves: int  # transitions whose database connection is terminated mid-transaction
    wait: float  # seconds to wait for recovery before counting what is missing


SHORT = Sizes(reminders=3, kills=2, transitions=4, deliveries=3, moves=6, wait=60)
LONG = Sizes(reminders=24, kills=8, transitions=40, deliveries=24, moves=60, wait=300)


@dataclass
class Result:
    scenario: str
    operations: int
    delivered: int
    lost: int
    duplicates: int
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: str = ""

    @property
    def whole(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicates == 0


def database_url() -> str:
    """The database this process uses, for the workers."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until(
    condition: Callable[[], bool], *, timeout: float, beat: Callable[[], None] | None = None
) -> bool:
    """Poll `condition`; with `beat`, call it every BEAT_EVERY seconds meanwhile. False on timeout."""
    deadline = time.monotonic() + timeout
    next_beat = time.monotonic()
    while not condition():
        now = time.monotonic()
        if now > deadline:
            return False
        if beat is not None and now >= next_beat:
            beat()
            next_beat = now + BEAT_EVERY
        time.sleep(0.1)
    return True


class Worker:
    """`python -m tests.reliability.fault_worker` in a session of its own: one main process and one pool
    process, which can be killed separately."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.fault_worker"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def ready(self, timeout: float) -> bool:
        return wait_until(
            lambda: " ready." in self.log() or self.process.poll() is not None, timeout=timeout
        ) and (self.process.poll() is None)

    def pool_pids(self) -> list[int]:
        """The live children of the main process, whichever of its threads forked them."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                # pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
                state, ppid = stat.read_text().rpartition(")")[2].split()[:2]
                if int(ppid) == self.process.pid and state != "Z":
                    found.append(int(stat.parent.name))
        return found

    def kill_pool(self) -> bool:
        """SIGKILL the pool process (as the OOM killer would); the main process stays up."""
        pids = self.pool_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return bool(pids)

    def kill(self) -> None:
        """SIGKILL the whole worker: main and pool processes."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()


class Lab:
    """The scenario's world: its own Redis (this process publishes there too), an SMTP server, a chat
    endpoint, and the workers it starts. `close()` kills the workers before anything else goes."""

    def __init__(self, workdir: Path, *, startup_timeout: float = 60) -> None:
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.smtp = SmtpServer().start()
        self.chat = ChatEndpoint().start()
        self.redis = RedisServer(workdir / "redis.log").start()
        self.workers: list[Worker] = []
        self._started = 0
        self._stack = ExitStack()
        self._stack.enter_context(celery_broker(self.redis.url, {"visibility_timeout": 3600}))

    def start_worker(self) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.reliability.fault_worker_settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": self.redis.url,
            "FAULT_SMTP_PORT": str(self.smtp.port),
            "PYTHONPATH": str(settings.BASE_DIR),
        }
        self._started += 1
        worker = Worker(env, self.workdir / f"worker-{self._started}.log")
        self.workers.append(worker)
        if not worker.ready(self.startup_timeout):
            raise RuntimeError(f"the Celery worker did not start:\n{worker.log()}")
        return worker

    def sweep_deliveries(self) -> None:
        """What Celery beat does every minute; a no-op while the broker is down."""
        try:
            notification_tasks.deliveries_sweep.delay()
        except Exception:
            return

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        self._stack.close()
        self.redis.stop()
        self.smtp.stop()
        self.chat.stop()


# ------------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Squad:
    team: Team
    lead: User
    ops: User
    pm: User


def squad(prefix: str) -> Squad:
    name = prefix.lower()
    lead = cast(User, UserFactory(username=f"{name}-lead"))
    team = make_team(lead=lead, name=f"Faults {prefix}", key_prefix=prefix, time_zone="UTC")
    return Squad(
        team=team,
        lead=lead,
        ops=add_member(team, ["ops"], username=f"{name}-ops"),
        pm=add_member(team, ["pm"], username=f"{name}-pm"),
    )


def proposals(crew: Squad, count: int, *, at: dt.datetime, **fields: Any) -> list[Requirement]:
    """`count` requirements opened at `at` (backdated: opening them notifies nobody)."""
    return [
        services.requirement_create(
            team=crew.team, actor=crew.ops, title=f"Fault case {n}", at=at, **READY_FIELDS, **fields
        )
        for n in range(1, count + 1)
    ]


def mail_keys(mails: Iterable[Mail], prefix: str) -> list[tuple[str, str]]:
    """(recipient, requirement key) of each accepted email about this team's requirements."""
    pattern = re.compile(rf"\b{prefix}-\d+\b")
    return [(mail.to, found.group()) for mail in mails if (found := pattern.search(mail.subject))]


def post_keys(posts: Iterable[dict[str, Any]], prefix: str) -> list[str]:
    return [
        item["requirement"]
        for post in posts
        for item in post.get("items", [])
        if str(item.get("requirement", "")).startswith(f"{prefix}-")
    ]


def tally(expected: Iterable[object], received: Iterable[object]) -> tuple[int, int, int]:
    """(delivered, lost, duplicates): each expected message received once is delivered; an extra copy,
    or a message nobody expected, is a duplicate."""
    wanted = set(expected)
    counts = Counter(received)
    delivered = sum(1 for key in wanted if counts[key])
    duplicates = sum(n - 1 for key, n in counts.items() if key in wanted) + sum(
        n for key, n in counts.items() if key not in wanted
    )
    return delivered, len(wanted) - delivered, duplicates


def all_sent(team: Team, expected: int) -> Callable[[], bool]:
    def check() -> bool:
        deliveries = Delivery.objects.filter(team=team)
        return deliveries.count() == expected and not deliveries.exclude(status=Delivery.Status.SENT).exists()

    return check


def delivery_problems(team: Team, expected: int) -> list[str]:
    statuses = Counter(Delivery.objects.filter(team=team).values_list("status", flat=True))
    if statuses != Counter({Delivery.Status.SENT: expected}):
        return [f"expected {expected} sent deliveries, found {dict(statuses)}"]
    return []


def _timed(lab: Lab, run: Callable[[], Result]) -> Result:
    """Run a scenario and time it; its workers are stopped after it, so the next starts afresh."""
    started = time.monotonic()
    try:
        result = run()
    finally:
        lab.stop_workers()
    result.seconds = round(time.monotonic() - started, 1)
    return result


# ----------------------------------------------------------------------------------------- scenarios


def worker_killed(lab: Lab, sizes: Sizes, *, whole_worker: bool) -> Result:
    """Reminders are due; every email is held by the SMTP server until the worker sending it is killed
    with SIGKILL, `sizes.kills` times. Then mail flows again.

    - pool process killed (whole_worker=False): `deliver` has acks_late and reject_on_worker_lost, so the
      worker's main process puts the message back and a new pool process runs it again. No sweep runs:
      the redelivery alone must bring every reminder.
    - whole worker killed and restarted (whole_worker=True): its unacknowledged messages stay in Redis
      for the production visibility timeout (an hour); the delivery sweep (beat) queues the pending
      deliveries again, which is what the app relies on.

    Either way each reminder is made once (StageReminder, Notification) and emailed once."""
    prefix = "KILLW" if whole_worker else "KILLP"

    def run() -> Result:
        crew = squad(prefix)
        people = [
            add_member(crew.team, ["analyst"], username=f"{prefix.lower()}-{n}")
            for n in range(sizes.reminders)
        ]
        overdue = [
            services.requirement_create(
                team=crew.team,
                actor=crew.ops,
                title=f"Overdue {n}",
                at=timezone.now() - 49 * HOUR,
                assignee=person.pk,
            )
            for n, person in enumerate(people)
        ]
        expected = {
            (person.email, requirement.key) for person, requirement in zip(people, overdue, strict=True)
        }
        problems: list[str] = []
        beat = lab.sweep_deliveries if whole_worker else None
        lab.smtp.hold()
        worker = lab.start_worker()
        workflow_tasks.sla_sweep.delay()
        kills = 0
        for _round in range(sizes.kills):
            if not wait_until(lab.smtp.message_waiting, timeout=sizes.wait, beat=beat):
                problems.append(f"no email reached the SMTP server before kill {kills + 1}:\n{worker.log()}")
                break
            if whole_worker:
                worker.kill()
                worker = lab.start_worker()
            elif not worker.kill_pool():
                problems.append("the worker had no pool process to kill")
                break
            kills += 1
            # The server must see the sender go before mail flows again; were it released first, it would
            # answer 250 to a dead sender, the one window where a message can arrive twice (see RELIABILITY.md).
            if not wait_until(lab.smtp.has_dropped(kills), timeout=10):
                problems.append(f"kill {kills} did not interrupt an email in flight")
        lab.smtp.release()
        if not wait_until(all_sent(crew.team, len(expected)), timeout=sizes.wait, beat=beat):
            problems.append(f"not every reminder was sent within {sizes.wait} s:\n{worker.log()}")
        delivered, lost, duplicates = tally(expected, mail_keys(lab.smtp.mails(), prefix))
        problems += delivery_problems(crew.team, len(expected))
        made = StageReminder.objects.filter(visit__requirement__team=crew.team).count()
        told = Notification.objects.filter(team=crew.team, kind=Kind.STAGE_OVERDUE).count()
        if made != len(expected) or told != len(expected):
            problems.append(f"{made} reminders and {told} notifications for {len(expected)} overdue stages")
        if reminders.sla_sweep()[0]:
            problems.append("a second SLA sweep reminded again")
        attempts = sum(Delivery.objects.filter(team=crew.team).values_list("attempts", flat=True))
        return Result(
            scenario="worker killed mid-send ("
            + ("whole worker, sweep" if whole_worker else "pool process")
            + ")",
            operations=len(expected),
            delivered=delivered,
            lost=lost,
            duplicates=duplicates,
            problems=problems,
            notes=f"{kills} SIGKILLs, {lab.smtp.dropped} emails dropped unanswered, {attempts} attempts recorded",
        )

    return _timed(lab, run)


def redis_stopped(lab: Lab, sizes: Sizes) -> Result:
    """Redis (without persistence) is stopped; transitions are made through the API meanwhile; each must
    commit and answer promptly. Redis is started again, empty: the delivery sweep queues the pending
    deliveries, and each transition's email and chat post arrive once."""
    prefix = "REDIS"

    def run() -> Result:
        crew = squad(prefix)
        notification_services.webhook_create(
            actor=crew.lead,
            team_id=crew.team.pk,
            name="chat",
            url=lab.chat.url,
            format="generic",
            kinds=[Kind.YOUR_TURN],
        )
        moving = proposals(crew, sizes.transitions, at=timezone.now() - HOUR)
        worker = lab.start_worker()
        client = Client()
        client.force_login(crew.ops)
        problems: list[str] = []
        lab.redis.stop()
        slowest = 0.0
        for requirement in moving:
            started = time.monotonic()
            response = client.post(
                f"/api/requirements/{requirement.pk}/transition/",
                {"from": "propose", "to": "design"},
                content_type="application/json",
            )
            slowest = max(slowest, time.monotonic() - started)
            if response.status_code != 200:
                problems.append(f"{requirement.key}: HTTP {response.status_code} with Redis down")
        if slowest > 5:
            problems.append(f"a transition took {slowest:.1f} s with Redis down")
        moved = Requirement.objects.filter(team=crew.team, stage__slug="design").count()
        lost_moves = len(moving) - moved
        lab.redis.start()
        expected_mail = {(crew.pm.email, requirement.key) for requirement in moving}
        expected_posts = {requirement.key for requirement in moving}
        if not wait_until(
            all_sent(crew.team, 2 * len(moving)), timeout=sizes.wait, beat=lab.sweep_deliveries
        ):
            problems.append(f"not every notification was delivered within {sizes.wait} s:\n{worker.log()}")
        mail = tally(expected_mail, mail_keys(lab.smtp.mails(), prefix))
        posts = tally(expected_posts, post_keys(lab.chat.posts(), prefix))
        problems += delivery_problems(crew.team, 2 * len(moving))
        return Result(
            scenario="Redis stopped during transitions",
            operations=len(moving),
            delivered=mail[0] + posts[0],
            lost=lost_moves + mail[1] + posts[1],
            duplicates=mail[2] + posts[2],
            problems=problems,
            notes=f"{moved} transitions committed, slowest {slowest:.2f} s; "
            f"{mail[0]} emails, {posts[0]} chat posts",
        )

    return _timed(lab, run)


def endpoints_failing(lab: Lab, sizes: Sizes) -> Result:
    """The SMTP server refuses (451, 550) and the chat endpoint answers 500; transitions are made. While
    it lasts, the team's lead sees the failed attempts and their errors on the deliveries page and in the
    API. Then both recover: the deliveries' own retries (with back-off) deliver each message once."""
    prefix = "SMTPX"

    def run() -> Result:
        crew = squad(prefix)
        notification_services.webhook_create(
            actor=crew.lead,
            team_id=crew.team.pk,
            name="chat",
            url=lab.chat.url,
            format="generic",
            kinds=[Kind.YOUR_TURN],
        )
        moving = proposals(crew, sizes.deliveries, at=timezone.now() - HOUR)
        lab.smtp.failing = lab.chat.failing = True
        worker = lab.start_worker()
        for requirement in moving:
            services.requirement_transition(
                requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design"
            )
        problems: list[str] = []
        deliveries = Delivery.objects.filter(team=crew.team)

        def failed_twice() -> bool:
            return (
                deliveries.count() == 2 * len(moving)
                and not deliveries.exclude(status=Delivery.Status.PENDING, attempts__gte=2).exists()
            )

        if not wait_until(failed_twice, timeout=sizes.wait):
            problems.append(f"the deliveries were not retried while failing:\n{worker.log()}")
        problems += lead_sees_failures(crew, expected=2 * len(moving))
        lab.smtp.failing = lab.chat.failing = False
        if not wait_until(all_sent(crew.team, 2 * len(moving)), timeout=sizes.wait):
            problems.append(f"not every delivery recovered within {sizes.wait} s:\n{worker.log()}")
        mail = tally({(crew.pm.email, r.key) for r in moving}, mail_keys(lab.smtp.mails(), prefix))
        posts = tally({r.key for r in moving}, post_keys(lab.chat.posts(), prefix))
        problems += delivery_problems(crew.team, 2 * len(moving))
        attempts = sum(deliveries.values_list("attempts", flat=True))
        return Result(
            scenario="mail server and webhook failing, then recovering",
            operations=2 * len(moving),
            delivered=mail[0] + posts[0],
            lost=mail[1] + posts[1],
            duplicates=mail[2] + posts[2],
            problems=problems,
            notes=f"{attempts} attempts; {lab.smtp.refusals} SMTP refusals, {lab.chat.refusals} HTTP 500s",
        )

    return _timed(lab, run)


def lead_sees_failures(crew: Squad, *, expected: int) -> list[str]:
    """The lead's deliveries page and API list every failing delivery with its attempts and error."""
    client = Client()
    client.force_login(crew.lead)
    problems = []
    page = client.get(f"/teams/{crew.team.pk}/deliveries/")
    text = page.content.decode()
    if page.status_code != 200 or "SMTPRecipientsRefused" not in text or "HTTP Error 500" not in text:
        problems.append(f"the deliveries page does not show the errors (HTTP {page.status_code})")
    listed = client.get(f"/api/teams/{crew.team.pk}/deliveries/").json()["results"]
    failing = [
        row
        for row in listed
        if row["status"] == Delivery.Status.PENDING and row["attempts"] >= 2 and row["last_error"]
    ]
    if len(failing) != expected:
        problems.append(f"the deliveries API shows {len(failing)} of {expected} failing deliveries")
    return problems


KILL_POINTS = ("before the event insert", "after the event insert", "after the requirement update")


class BackendKiller:
    """An execute wrapper that terminates this connection's PostgreSQL backend (from another connection)
    at one point of a transition's transaction."""

    def __init__(self, point: str, killer: psycopg.Connection[Any]) -> None:
        self.point = point
        self.killer = killer
        self.fired = False

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        event_insert = sql.startswith('INSERT INTO "workflows_stageevent"')
        requirement_update = sql.startswith('UPDATE "workflows_requirement"')
        if event_insert and self.point == KILL_POINTS[0]:
            self._kill(context)
        result = execute(sql, params, many, context)
        if (event_insert and self.point == KILL_POINTS[1]) or (
            requirement_update and self.point == KILL_POINTS[2]
        ):
            self._kill(context)
        return result

    def _kill(self, context: Any) -> None:
        if self.fired:
            return
        pid = context["connection"].connection.info.backend_pid
        # The timeout makes pg_terminate_backend wait until the backend is gone.
        self.killer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        self.fired = True


def killer_connection() -> psycopg.Connection[Any]:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    )


def postgres_dropped(lab: Lab, sizes: Sizes) -> Result:
    """Each transition through the API has its PostgreSQL backend terminated inside its transaction (before
    the event insert, after it, or after the requirement update). The client must get a clean JSON 500,
    and retrying must move the requirement once; afterwards every requirement's stage and event log agree.
    Runs in this process (Django's test client); like a server between requests, the harness closes the
    broken connection."""
    prefix = "PGKILL"

    def run() -> Result:
        crew = squad(prefix)
        moving = proposals(crew, sizes.moves, at=timezone.now() - HOUR)
        client = Client(raise_request_exception=False)
        client.force_login(crew.ops)
        problems: list[str] = []
        clean_errors = retried = 0
        with killer_connection() as killer:
            for n, requirement in enumerate(moving):
                url = f"/api/requirements/{requirement.pk}/transition/"
                body = {"from": "propose", "to": "design"}
                hook = BackendKiller(KILL_POINTS[n % len(KILL_POINTS)], killer)
                with connection.execute_wrapper(hook):
                    response = client.post(url, body, content_type="application/json")
                connection.close_if_unusable_or_obsolete()
                if not hook.fired:
                    problems.append(f"{requirement.key}: the kill point {hook.point!r} was never reached")
                if response.status_code == 500 and response.json().get("code") == "server_error":
                    clean_errors += 1
                else:
                    problems.append(
                        f"{requirement.key}: HTTP {response.status_code} after the kill, not a JSON 500"
                    )
                if client.post(url, body, content_type="application/json").status_code == 200:
                    retried += 1
                else:
                    problems.append(f"{requirement.key}: the retry did not move it")
        events = Counter(
            StageEvent.objects.filter(
                requirement__team=crew.team, from_stage="propose", to_stage="design"
            ).values_list("requirement_id", flat=True)
        )
        agree = 0
        for requirement in Requirement.objects.filter(team=crew.team).select_related("stage"):
            last = StageEvent.objects.filter(requirement=requirement).order_by("-at", "-id").first()
            if last is not None and last.to_stage == requirement.stage.slug == "design":
                agree += 1
            else:
                problems.append(
                    f"{requirement.key}: stage {requirement.stage.slug}, last event {last and last.to_stage}"
                )
        moved = sum(1 for requirement in moving if events[requirement.pk])
        return Result(
            scenario="PostgreSQL backend terminated mid-transition",
            operations=2 * len(moving),
            delivered=moved,
            lost=retried - moved + (len(moving) - agree),
            duplicates=sum(n - 1 for n in events.values()),
            problems=problems,
            notes=f"{clean_errors} clean JSON 500s, {retried} retries moved, stage and log agree on {agree}",
        )

    return _timed(lab, run)


SCENARIOS: tuple[tuple[str, Callable[[Lab, Sizes], Result]], ...] = (
    ("pool", lambda lab, sizes: worker_killed(lab, sizes, whole_worker=False)),
    ("worker", lambda lab, sizes: worker_killed(lab, sizes, whole_worker=True)),
    ("redis", redis_stopped),
    ("endpoints", endpoints_failing),
    ("postgres", postgres_dropped),
)
