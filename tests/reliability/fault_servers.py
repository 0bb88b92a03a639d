"""The outside world of the fault suite, on 127.0.0.1: a minimal SMTP server and a chat webhook endpoint
that can refuse (and an SMTP server that can keep a message waiting), and a Redis server of our own that
can be stopped and started again without touching the shared one on 6379."""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import select
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str


class SmtpServer:
    """Just enough SMTP (RFC 5321) for Django's SMTP backend. A message counts as delivered only once
    the server has answered 250 to its DATA, as in real SMTP.

    - `failing`: every RCPT is refused, alternately 451 (try later) and 550 (refused).
    - `hold()`: after a message's DATA the answer waits until `release()`; if the sender's
      connection closes meanwhile (its process was killed), the message is dropped, never delivered.
    """

    def __init__(self) -> None:
        self.failing = False
        self.holding = False
        self.accepted: list[Mail] = []
        self.refusals = 0
        self.dropped = 0
        self._arrivals = self._seen = 0  # messages that started waiting; how many a caller has seen
        self._codes = itertools.cycle(
            [b"451 4.3.0 Mailbox busy, try later", b"550 5.7.1 Relaying refused for now"]
        )
        self._lock = threading.Lock()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def start(self) -> SmtpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.holding = False
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def hold(self) -> None:
        with self._lock:
            self.holding = True
            self._arrivals = self._seen = self.dropped = 0

    def release(self) -> None:
        self.holding = False

    def message_waiting(self) -> bool:
        """True once for each new arrival of a held message."""
        with self._lock:
            if self._arrivals == self._seen:
                return False
            self._seen = self._arrivals
            return True

    def has_dropped(self, count: int) -> Callable[[], bool]:
        """A condition: `count` held messages were dropped because their sender went away."""
        return lambda: self.dropped >= count

    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self.accepted)

    def _refusal(self) -> bytes:
        with self._lock:
            self.refusals += 1
            return next(self._codes)

    def _wait_while_holding(self, connection: socket.socket) -> bool:
        """True when the message may be accepted; False when the sender went away while it waited."""
        with self._lock:
            self._arrivals += 1
        while self.holding:
            if self._sender_gone(connection, wait=0.05):
                return False
        return not self._sender_gone(connection, wait=0)

    def _sender_gone(self, connection: socket.socket, *, wait: float) -> bool:
        readable, _w, _x = select.select([connection], [], [], wait)
        try:
            gone = bool(readable) and not connection.recv(1, socket.MSG_PEEK)
        except ConnectionResetError:
            gone = True
        if gone:
            with self._lock:
                self.dropped += 1
        return gone

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: bytes) -> None:
                self.wfile.write(line + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                self.reply(b"220 faults.local ESMTP")
                while line := self.rfile.readline():
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.reply(b"250 faults.local")
                    elif verb == b"RCPT":
                        self.reply(server._refusal() if server.failing else b"250 OK")
                    elif verb in (b"MAIL", b"RSET", b"NOOP"):
                        self.reply(b"250 OK")
                    elif verb == b"DATA":
                        self.reply(b"354 End data with <CR><LF>.<CR><LF>")
                        if not self.data():
                            return
                    elif verb == b"QUIT":
                        self.reply(b"221 Bye")
                        return
                    else:
                        self.reply(b"502 Not implemented")

            def data(self) -> bool:
                lines: list[bytes] = []
                while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                if not line or not server._wait_while_holding(self.connection):
                    return False
                message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                with server._lock:
                    server.accepted.append(Mail(to=str(message["To"]), subject=str(message["Subject"])))
                self.reply(b"250 OK queued")
                return True

        return Handler


class ChatEndpoint:
    """A generic-JSON chat webhook: answers 500 while `failing`, 200 otherwise, and keeps the bodies it
    accepted."""

    def __init__(self) -> None:
        self.failing = False
        self.accepted: list[dict[str, Any]] = []
        self.refusals = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> ChatEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.accepted)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server._lock:
                    if server.failing:
                        server.refusals += 1
                    else:
                        server.accepted.append(json.loads(body))
                status, reply = (500, b"upstream on fire") if server.failing else (200, b'{"ok": true}')
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class RedisServer:
    """`redis-server` on a free port, without persistence: stopping it loses every queued message, the
    worst case for the broker."""

    OPTIONS = ("--save", "", "--appendonly", "no", "--daemonize", "no")

    def __init__(self, log_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (fixed arguments)
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", *self.OPTIONS],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False
