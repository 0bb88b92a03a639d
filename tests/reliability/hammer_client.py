"""One client of the hammer test, run as its own OS process (`python -m tests.reliability.hammer_client`).

It reads its orders as JSON on standard input, connects to the test database the orders name (a
connection of its own), and calls the REST API through DRF's APIClient until its time is up. Every
response is written to standard output as one JSON line, `{"op": ..., "status": ..., ...}`: the test
process reads them back and checks them against the database.

Each transition carries a note naming the operation (`hammer:<client>:<n>`), so that the event a success
wrote, or the absence of one, can be found afterwards.

Orders:
    {"mode": "transitions", "client": 3, "database": "test_opsteam", "seed": 7,
     "folder": "<where to say ready and find the go>", "seconds": 10.0, "requirements": [ids], "stages": [slugs],
     "lead": "<username>", "members": {"pm": "<username>", ...}}
    {"mode": "create", "client": 3, "database": "test_opsteam", "folder": "...",
     "user": "<username>", "teams": [ids], "count": 10, "seed": 7}
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

# Orders are read before Django starts: the database name decides the connection settings.
ORDERS: dict[str, Any] = json.loads(sys.stdin.read())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsteam.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connections  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

# The test database, not the one DATABASE_URL names: pytest-django prefixes it with test_.
settings.DATABASES["default"]["NAME"] = ORDERS["database"]
connections["default"].settings_dict["NAME"] = ORDERS["database"]
settings.ALLOWED_HOSTS = ["testserver"]  # what pytest-django allows in the test process

EXITS = ("iterate",)  # close ends a requirement for good; the hammer keeps all twenty in play


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")


def client_for(username: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username=username))
    return client


def wait_for_start(orders: dict[str, Any], client: APIClient) -> float:
    """Warm up (the first request imports the views), say this client is ready, wait for the test's
    go (a file holding the start time), and return the start time."""
    assert client.get("/api/me/").status_code == 200
    folder = Path(orders["folder"])
    (folder / f"ready-{orders['client']}").touch()
    go = folder / "go"
    while not go.exists():
        time.sleep(0.05)
    start_at = float(go.read_text())
    time.sleep(max(0.0, start_at - time.time()))
    return start_at


def run_transitions(orders: dict[str, Any]) -> None:
    """Random valid and stale moves on the shared requirements, as a lead and as role members."""
    rng = random.Random(orders["seed"])
    lead = client_for(orders["lead"])
    members = {role: client_for(name) for role, name in orders["members"].items()}
    stages: list[str] = orders["stages"]
    seen: dict[int, str] = {pk: stages[0] for pk in orders["requirements"]}
    deadline = wait_for_start(orders, lead) + orders["seconds"]
    n = 0
    while time.time() < deadline:
        n += 1
        pk = rng.choice(orders["requirements"])
        believed = seen[pk]
        roll = rng.random()
        # One move in five is deliberately stale: it claims a stage other than the last one seen.
        stale = roll < 0.2
        claimed = rng.choice([s for s in stages if s != believed]) if stale else believed
        if roll < 0.85:
            kind, client = "lead", lead
            target = rng.choice([*[s for s in stages if s != claimed], *EXITS])
        else:
            # A role member tries the workflow's next stage: refused, guarded, allowed or stale.
            role = rng.choice(sorted(members))
            kind, client = role, members[role]
            position = stages.index(claimed)
            target = stages[position + 1] if position + 1 < len(stages) else "iterate"
        op = f"hammer:{orders['client']}:{n}"
        response = client.post(
            f"/api/requirements/{pk}/transition/",
            {"from": claimed, "to": target, "note": op},
            format="json",
        )
        body = response.json()
        if response.status_code == 200:
            seen[pk] = body["stage"]
        elif response.status_code == 409:
            seen[pk] = body["current_stage"]
        emit(
            {
                "op": op,
                "requirement": pk,
                "actor": kind,
                "from": claimed,
                "to": target,
                "status": response.status_code,
                "stage": body.get("stage"),
                "loop": body.get("loop"),
            }
        )


def run_create(orders: dict[str, Any]) -> None:
    """Open requirements in the given teams, in a random order, all clients at once."""
    rng = random.Random(orders["seed"])
    client = client_for(orders["user"])
    teams = [rng.choice(orders["teams"]) for _ in range(orders["count"])]
    wait_for_start(orders, client)
    for n, team in enumerate(teams, start=1):
        response = client.post(
            "/api/requirements/",
            {"team": team, "title": f"parallel {orders['client']}.{n}"},
            format="json",
        )
        body = response.json()
        emit({"op": n, "team": team, "status": response.status_code, "key": body.get("key")})


if __name__ == "__main__":
    {"transitions": run_transitions, "create": run_create}[ORDERS["mode"]](ORDERS)
    connections.close_all()
