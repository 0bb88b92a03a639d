from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.selectors import event_since_mismatches
from workflows.services import event_since_repair


class Command(BaseCommand):
    help = (
        "Check that every stage event's `since` (when the stage it leaves was entered, which time in stage "
        "and the SLA breach rate read) is the time of the requirement's event before it. Exits with an "
        "error when some are not; --repair sets them from the log's own times."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="Correct the events that disagree.")

    def handle(self, *args: Any, repair: bool, **options: Any) -> None:
        wrong = event_since_mismatches()
        if not wrong:
            self.stdout.write("Every stage event's since agrees with the event before it.")
            return
        if not repair:
            raise CommandError(
                f"{wrong} stage events have a since that disagrees with the log; run with --repair."
            )
        fixed = event_since_repair()
        self.stdout.write(f"Corrected the since of {fixed} stage events.")
