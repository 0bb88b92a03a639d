"""Shared by the notification tests: overdue requirements, a chat webhook served on 127.0.0.1 standing
in for the outside world, and a way to point the test process's Celery app at another broker."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kombu.pools
import time_machine

from opsteam.celery import app as celery_app
from tests.conftest import Crew
from tests.factories import READY_FIELDS
from workflows import reminders, services
from workflows.models import Requirement

HOUR = dt.timedelta(hours=1)
# A Monday. The crew's team counts calendar time in UTC, and design's SLA is 72 h.
T = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def in_design(
    crew: Crew, *, at: dt.datetime, title: str = "First-order red packet", **fields: Any
) -> Requirement:
    """A requirement that entered design at `at` (backdated: nobody is notified of the moves)."""
    requirement = services.requirement_create(
        team=crew.team, actor=crew.ops, title=title, at=at, **READY_FIELDS, **fields
    )
    services.requirement_transition(
        requirement_id=requirement.pk, actor=crew.ops, from_stage="propose", to_stage="design", at=at
    )
    return requirement


def sla_sweep_at(moment: dt.datetime) -> int:
    with time_machine.travel(moment, tick=False):
        sent, _more = reminders.sla_sweep()
    return sent


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class ChatServer:
    """A chat robot's webhook on a random local port. It records every POST and answers `status`
    with `reply`. With `hold` set it keeps each request waiting (after recording it and setting
    `arrived`) until `release` is set, so a test can act while a sender is mid-request."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.status = 200
        self.reply = b'{"errcode": 0, "code": 0, "ok": true}'
        self.hold = False
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook?key=test"

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def received(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                post = Post(path=self.path, headers=dict(self.headers.items()), body=self.rfile.read(length))
                with server._lock:
                    server.posts.append(post)
                server.arrived.set()
                if server.hold:
                    server.release.wait(timeout=30)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.reply)))
                self.end_headers()
                self.wfile.write(server.reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _drop_broker_connections() -> None:
    # kombu keeps its connection and producer pools in global registries keyed by broker: close and
    # forget them all, so that the next publish connects afresh to whatever broker is configured then.
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def celery_broker(url: str, transport_options: dict[str, Any]) -> Iterator[None]:
    """Publish from this process to another broker inside the block; the settings' broker after."""
    conf = celery_app.conf
    before = conf.broker_url, conf.broker_transport_options
    _drop_broker_connections()
    conf.broker_url, conf.broker_transport_options = url, transport_options
    try:
        yield
    finally:
        _drop_broker_connections()
        conf.broker_url, conf.broker_transport_options = before


def filesystem_broker_options(folder: str) -> dict[str, Any]:
    """kombu's filesystem transport with every folder under `folder` (made here)."""
    queue = Path(folder) / "queue"
    control = Path(folder) / "control"
    processed = Path(folder) / "processed"
    for path in (queue, control, processed):
        path.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "processed_folder": str(processed),
        "control_folder": str(control),
        "store_processed": False,
    }
