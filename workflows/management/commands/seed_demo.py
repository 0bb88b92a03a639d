from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from workflows.demo import seed_demo


class Command(BaseCommand):
    help = (
        "Build the demo team GROW (增长运营组 Growth Ops) with six months of history. "
        "If it exists already, only reset the demo login's password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password", default="demo", help="Password of the “demo” login (default: demo)."
        )

    def handle(self, *args: Any, password: str, verbosity: int, **options: Any) -> None:
        # Hundreds of backdated transitions would flood the console with one log line each;
        # -v 2 shows them.
        events_log = logging.getLogger("opsteam.events")
        level = events_log.level
        if verbosity < 2:
            events_log.setLevel(logging.WARNING)
        try:
            seed_demo(password=password, stdout=self.stdout)
        finally:
            events_log.setLevel(level)
