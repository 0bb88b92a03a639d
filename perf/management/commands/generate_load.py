from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from perf import load


class Command(BaseCommand):
    help = (
        "Build the load data set the benchmark measures over: teams L01 … (20 by default) with a member in "
        "every role and the `bench` login in L01, 100,000 requirements with two years of history, metrics "
        "with daily observations, and metric watches. Refuses when a load data set is there already, "
        "unless --reset is given. See docs/load.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--teams", type=int, help=f"Number of teams (default {load.REFERENCE_TEAMS}; --quick: 2)."
        )
        parser.add_argument(
            "--requirements",
            type=int,
            help=f"Requirements over all teams (default {load.REFERENCE_REQUIREMENTS:,}; --quick: 1,000).",
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help="A small data set for smoke runs: 2 teams, 1,000 requirements.",
        )
        parser.add_argument(
            "--seed", type=int, default=8, help="Random seed; the same seed and --now give the same data."
        )
        parser.add_argument(
            "--now",
            help="The moment the history leads up to, ISO 8601 (default: now). Without a time zone: UTC.",
        )
        parser.add_argument(
            "--password", default="bench", help="Password of `bench` and every load user (default: bench)."
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete a previous load data set (teams L01 …, their data and users) first.",
        )

    def handle(
        self,
        *args: Any,
        teams: int | None,
        requirements: int | None,
        quick: bool,
        seed: int,
        now: str | None,
        password: str,
        reset: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        started = time.monotonic()
        try:
            size = load.size_for(teams=teams, requirements=requirements, quick=quick)
            totals = load.generate(
                size=size,
                seed=seed,
                now=self.parse_now(now),
                password=password,
                reset=reset,
                progress=self.stdout.write if verbosity else lambda line: None,
            )
        except load.LoadRefused as exc:
            raise CommandError(str(exc)) from exc
        seconds = time.monotonic() - started
        if not verbosity:
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{totals.teams} teams, {totals.users} users, {totals.requirements:,} requirements "
                f"({totals.open_requirements:,} open: {totals.overdue:,} overdue, "
                f"{totals.escalated:,} escalated), {totals.loops:,} loops ({totals.closed_loops:,} closed, "
                f"{totals.open_loops:,} open), {totals.events:,} stage events "
                f"({totals.rework_events:,} rework), {totals.tracking_events:,} tracking events, "
                f"{totals.observations:,} observations, {totals.watches} watches in {seconds:.1f} s."
            )
        )

    @staticmethod
    def parse_now(value: str | None) -> dt.datetime:
        if not value:
            return timezone.now()
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise CommandError(f"--now: “{value}” is not an ISO 8601 date and time.") from exc
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)
