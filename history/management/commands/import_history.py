from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from history import formats, selectors, services
from opsteam.exceptions import InvalidInput, NotFound


class Command(BaseCommand):
    help = (
        "Import a history file (JSON or CSV, as export_history writes them) into a team. Everything is "
        "checked first: a file with any problem imports nothing, and each problem is listed with its line "
        "(CSV) or path (JSON). Importing the same file again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="The file to import; - reads standard input.")
        parser.add_argument(
            "--team",
            metavar="PREFIX",
            help="The team to import into, by key prefix or id (default: the team the file names).",
        )
        parser.add_argument(
            "--format",
            dest="file_format",
            choices=formats.FORMATS,
            help="json or csv (default: from the file's extension, else from its content).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Check everything, import nothing.")

    def handle(
        self,
        *args: Any,
        file: str,
        team: str | None,
        file_format: str | None,
        dry_run: bool,
        **options: Any,
    ) -> None:
        content = self.read(file)
        target = None
        if team:
            try:
                target = selectors.team_for_command(value=team)
            except NotFound as exc:
                raise CommandError(f"No team with key prefix or id “{team}”.") from exc
        try:
            result = services.history_import(
                team=target,
                content=content,
                actor=None,
                file_format=file_format or "",
                file_name=file,
                dry_run=dry_run,
            )
        except formats.HistoryRejected as exc:
            raise CommandError(
                "Nothing was imported; the file has these problems:\n  " + "\n  ".join(exc.errors["rows"])
            ) from exc
        except InvalidInput as exc:
            raise CommandError(
                "; ".join(message for messages in exc.errors.values() for message in messages)
            ) from exc
        verb = "Would import" if dry_run else "Imported"
        self.stdout.write(
            f"{verb} into {result.key_prefix}: {result.requirements} requirements, {result.loops} loops, "
            f"{result.events} events; {result.users_created} placeholder users; "
            f"{result.skipped} already there, {result.extended} extended."
        )

    def read(self, file: str) -> bytes:
        limit = formats.MAX_BYTES
        if file == "-":
            content = sys.stdin.buffer.read(limit + 1)
        else:
            path = Path(file)
            if not path.is_file():
                raise CommandError(f"No file {file}.")
            if path.stat().st_size > limit:
                raise CommandError(f"{file} is larger than {limit // (1024 * 1024)} MB.")
            with path.open("rb") as handle:
                content = handle.read(limit + 1)
        if len(content) > limit:
            raise CommandError(f"{file} is larger than {limit // (1024 * 1024)} MB.")
        return content
