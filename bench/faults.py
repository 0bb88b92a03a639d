"""The fault suite: break a worker, the broker, the mail server, a webhook and database connections while
opsteam works, and count what was lost and what was duplicated (both must be 0).

    .venv/bin/python bench/faults.py            # the CI sizes (tests/reliability/test_faults.py), ~40 s
    .venv/bin/python bench/faults.py --long     # more reminders, kills, transitions and moves

Needs PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/opsteam; a scratch database
named <name>_faults is made and dropped) and redis-server on the PATH (started on a free port of its
own: the shared Redis is never touched). The scenarios are in tests/reliability/fault_scenarios.py;
RELIABILITY.md says what each tries. Exit status 1 when anything was lost, duplicated or wrong."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsteam.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/opsteam")

import django  # noqa: E402 (the path and settings come first)

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from tests.reliability.fault_scenarios import LONG, SCENARIOS, SHORT, Lab, Result  # noqa: E402

COLUMNS = ("scenario", "operations", "delivered", "lost", "duplicates", "seconds")


def table(results: list[Result]) -> str:
    rows = [COLUMNS] + [
        (r.scenario, str(r.operations), str(r.delivered), str(r.lost), str(r.duplicates), f"{r.seconds:.1f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "| "
        + " | ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--long", action="store_true", help="the long sizes (minutes)")
    parser.add_argument(
        "--only", choices=[name for name, _run in SCENARIOS], action="append", help="run one scenario"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        parser.error("the fault suite needs PostgreSQL: set DATABASE_URL=postgres://…")
    # The PostgreSQL kill scenario makes 500s on purpose; their tracebacks are noise here.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    logging.getLogger("opsteam").setLevel(logging.ERROR)  # the broker-down warnings are expected
    sizes = LONG if args.long else SHORT
    setup_test_environment()
    original = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"{original}_faults"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    results: list[Result] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        with tempfile.TemporaryDirectory(prefix="opsteam-faults-") as workdir:
            lab = Lab(Path(workdir))
            try:
                for name, run in SCENARIOS:
                    if args.only and name not in args.only:
                        continue
                    result = run(lab, sizes)
                    results.append(result)
                    print(
                        f"{'ok  ' if result.whole else 'FAIL'} {result.scenario}: {result.notes}", flush=True
                    )
                    for problem in result.problems:
                        print(f"     {problem}", flush=True)
            finally:
                lab.close()
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)
    print(f"\nFault suite, {'long' if args.long else 'short'} form, {started}\n")
    print(table(results))
    return 0 if all(result.whole for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
