"""Factories. Domain objects are made through the services, as the product makes them; only a verified
tracking plan is written directly, where the services would take an add and two status changes per event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import factory
from django.contrib.auth import get_user_model

from roles import services as role_services
from roles.models import Team
from workflows import services
from workflows.models import IterationLoop, Requirement, TrackingEvent, TrackingStatus

User = get_user_model()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")


_prefix_counter = iter(range(1, 10**6))


def make_team(*, lead: Any = None, name: str = "", key_prefix: str = "", **kwargs: Any) -> Team:
    """A team with the default workflow; `lead` (made if absent) is its first lead."""
    n = next(_prefix_counter)
    return services.team_setup(
        name=name or f"Team {n}",
        key_prefix=key_prefix or f"T{n}",
        creator=lead or UserFactory(),
        **kwargs,
    )


def add_member(team: Team, roles: Iterable[str], user: Any = None, **user_kwargs: Any) -> Any:
    user = user or UserFactory(**user_kwargs)
    role_services.membership_add(team=team, user=user, roles=roles, actor=None)
    return user


READY_FIELDS = {
    "hypothesis": "A red-packet on day 2 lifts D1 retention",
    "target_metric": "D1 retention",
    "aarrr_stage": "retention",
}


def verify_tracking(requirement: Requirement, name: str = "order_submit") -> TrackingEvent:
    """A verified event in the tracking plan of the requirement's current loop, which is what the
    instrument → analyze guard asks for. The loop number is read from the database, so a requirement
    instance from before an iterate still gets the current loop."""
    loop = IterationLoop.objects.get(
        requirement_id=requirement.pk,
        number=Requirement.objects.filter(pk=requirement.pk).values("loop_number")[:1],
    )
    event, _created = TrackingEvent.objects.update_or_create(
        loop=loop,
        name=name,
        defaults={"trigger": "When the user submits the order.", "status": TrackingStatus.VERIFIED},
    )
    return event
