from __future__ import annotations

import pytest

from opsteam.exceptions import InvalidInput, NotFound, NotPermitted
from roles import services
from roles.models import Membership, Team
from roles.permissions import can_see_team, roles_for, teams_visible_to
from tests.conftest import Crew
from tests.factories import UserFactory, make_team

pytestmark = pytest.mark.django_db


def test_team_with_a_lowercase_prefix_is_refused_and_not_created() -> None:
    with pytest.raises(InvalidInput) as info:
        services.team_create(name="Growth", key_prefix="g-1", creator=UserFactory())
    assert "key_prefix" in info.value.errors
    assert Team.objects.count() == 0


def test_team_prefix_is_uppercased() -> None:
    team = services.team_create(name="Growth", key_prefix="grow", creator=UserFactory())
    assert team.key_prefix == "GROW"


def test_duplicate_prefix_is_refused() -> None:
    make_team(key_prefix="GROW")
    with pytest.raises(InvalidInput) as info:
        services.team_create(name="Other", key_prefix="GROW", creator=UserFactory())
    assert "key_prefix" in info.value.errors
    assert Team.objects.count() == 1


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        services.team_create(name="x", key_prefix="XX", creator=UserFactory(), time_zone="Mars/Olympus")
    assert "time_zone" in info.value.errors


def test_member_with_two_roles_holds_both(crew: Crew) -> None:
    user = UserFactory()
    services.membership_add(team=crew.team, user=user, roles=["ops", "analyst"], actor=crew.lead)
    assert roles_for(user=user, team=crew.team) == {"ops", "analyst"}


def test_unknown_role_is_refused_and_nobody_is_added(crew: Crew) -> None:
    user = UserFactory()
    with pytest.raises(InvalidInput) as info:
        services.membership_add(team=crew.team, user=user, roles=["ops", "boss"], actor=crew.lead)
    assert "roles" in info.value.errors
    assert not Membership.objects.filter(user=user).exists()


def test_no_roles_is_refused(crew: Crew) -> None:
    with pytest.raises(InvalidInput):
        services.membership_add(team=crew.team, user=UserFactory(), roles=[], actor=crew.lead)


def test_adding_a_member_twice_is_refused(crew: Crew) -> None:
    with pytest.raises(InvalidInput):
        services.membership_add(team=crew.team, user=crew.pm, roles=["ops"], actor=crew.lead)
    assert roles_for(user=crew.pm, team=crew.team) == {"pm"}


def test_only_leads_manage_members(crew: Crew) -> None:
    with pytest.raises(NotPermitted):
        services.membership_add(team=crew.team, user=UserFactory(), roles=["ops"], actor=crew.pm)


def test_outsider_managing_members_gets_not_found(crew: Crew) -> None:
    with pytest.raises(NotFound):
        services.membership_add(team=crew.team, user=UserFactory(), roles=["ops"], actor=UserFactory())


def test_the_last_lead_cannot_be_removed(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.lead)
    with pytest.raises(InvalidInput):
        services.membership_remove(membership_id=membership.pk, actor=crew.lead)
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_the_last_lead_cannot_lose_the_lead_role(crew: Crew) -> None:
    membership = Membership.objects.get(team=crew.team, user=crew.lead)
    with pytest.raises(InvalidInput):
        services.membership_set_roles(membership_id=membership.pk, roles=["ops"], actor=crew.lead)
    membership.refresh_from_db()
    assert membership.roles == {"lead"}


def test_a_lead_can_step_down_once_another_lead_exists(crew: Crew) -> None:
    services.membership_set_roles(
        membership_id=Membership.objects.get(team=crew.team, user=crew.pm).pk,
        roles=["pm", "lead"],
        actor=crew.lead,
    )
    services.membership_remove(
        membership_id=Membership.objects.get(team=crew.team, user=crew.lead).pk, actor=crew.lead
    )
    assert roles_for(user=crew.lead, team=crew.team) == frozenset()


def test_users_see_only_their_teams_and_staff_see_all(crew: Crew) -> None:
    other = make_team(key_prefix="SHOP")
    staff = UserFactory(is_staff=True)
    assert list(teams_visible_to(user=crew.ops)) == [crew.team]
    assert set(teams_visible_to(user=staff)) == {crew.team, other}
    assert not can_see_team(user=crew.ops, team=other)
    assert roles_for(user=staff, team=other) == frozenset()
