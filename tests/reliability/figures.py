"""Every analytics figure of one team for a fixed period and clock, as plain JSON values, so that a
team's figures before a backup and after its restore can be compared — in this process, or in another
one connected to a restored copy of the database:

    python -m tests.reliability.figures DATABASE_NAME TEAM_PREFIX   (prints the figures as JSON)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import Any

# Figures over the whole backdated history of tests/reliability/test_backup_restore.py.
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
# Row ids differ between a team and its restored copy; everything else must not.
IDS = frozenset({"id", "requirement_id", "pk"})


def _plain(value: Any) -> Any:
    """JSON values, without database ids."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k not in IDS}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def figures(prefix: str) -> dict[str, Any]:
    """Each metric of the team, overall and under the filters the export carries (AARRR stage,
    priority, label), in calendar and in working time."""
    from analytics.api import METRICS
    from analytics.selectors import Filters, Scope
    from roles.models import Team

    team = Team.objects.get(key_prefix=prefix)
    result: dict[str, Any] = {}
    cuts = {
        "all": Filters(),
        "acquisition": Filters(aarrr_stage="acquisition"),
        "p1": Filters(priority="P1"),
        "growth": Filters(label="growth"),
    }
    for cut, filters in cuts.items():
        for working in (False, True):
            scope = Scope(teams=(team,), start=START, end=END, filters=filters, working=working, now=NOW)
            for compute, _summary, _shape in METRICS.values():  # every metric the API serves
                result[f"{cut}/{'working' if working else 'calendar'}/{compute.__name__}"] = _plain(
                    compute(scope)
                )
    return json.loads(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsteam.settings.test")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    settings.DATABASES["default"]["NAME"] = sys.argv[1]
    connections["default"].settings_dict["NAME"] = sys.argv[1]
    sys.stdout.write(json.dumps(figures(sys.argv[2])))
