from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from roles.models import Team
from worktime.services import calendar_load_china, china_years_covered


class Command(BaseCommand):
    help = "Load China's official holidays and make-up workdays (chinesecalendar) into teams' calendars."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", help="Key prefix of one team (default: every team).")
        parser.add_argument("--year", type=int, action="append", help="Only this year (repeatable).")

    def handle(self, *args: Any, team: str | None, year: list[int] | None, **options: Any) -> None:
        teams = Team.objects.filter(key_prefix=team.upper()) if team else Team.objects.all()
        covered = china_years_covered()
        self.stdout.write(f"chinesecalendar covers {covered[0]}–{covered[-1]}.")
        for each in teams:
            written = calendar_load_china(team=each, years=year)
            self.stdout.write(f"{each.key_prefix}: {written} days written.")
