from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from history import formats, selectors
from opsteam.exceptions import NotFound


class Command(BaseCommand):
    help = (
        "Export a team's history (requirements with their loops and stage events) as JSON or CSV. "
        "TEAM is the team's key prefix, such as GROW, or its id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team", metavar="TEAM", help="The team's key prefix (e.g. GROW) or id.")
        parser.add_argument(
            "--format",
            dest="file_format",
            choices=formats.FORMATS,
            help="json or csv (default: from the output file's extension, else json).",
        )
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write to FILE instead of standard output."
        )

    def handle(
        self, *args: Any, team: str, file_format: str | None, output: str | None, **options: Any
    ) -> None:
        try:
            found = selectors.team_for_command(value=team)
        except NotFound as exc:
            raise CommandError(f"No team with key prefix or id “{team}”.") from exc
        file_format = file_format or (
            formats.CSV if output and output.lower().endswith(".csv") else formats.JSON
        )
        history = selectors.history_for_team(team=found)
        text = formats.dump_csv(history) if file_format == formats.CSV else formats.dump_json(history)
        if output:
            Path(output).write_text(text, encoding="utf-8", newline="")
            events = sum(len(record.events) for record in history.requirements)
            self.stderr.write(
                f"Exported {len(history.requirements)} requirements ({events} events) of "
                f"{found.key_prefix} to {output}."
            )
        else:
            self.stdout.write(text, ending="")
