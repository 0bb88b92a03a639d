from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import ChatServer, celery_broker, filesystem_broker_options


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[Path]:
    """Tasks queued by this test go to a queue folder of its own (nobody consumes them), not to the
    settings' broker: for tests whose transactions really commit."""
    folder = tmp_path / "broker"
    with celery_broker("filesystem://", filesystem_broker_options(str(folder))):
        yield folder / "queue"
