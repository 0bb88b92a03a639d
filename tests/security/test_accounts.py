"""Accounts: sign-in throttling, API token revocation, password validation and the production cookies."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from roles import logins
from roles.models import LoginThrottle
from tests.factories import UserFactory

PASSWORD = "pw-for-tests"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("throttle_of_three"),
]


@pytest.fixture
def throttle_of_three(settings: Any) -> None:
    settings.OPSTEAM_LOGIN_FAILURE_LIMIT = 3
    settings.OPSTEAM_LOGIN_COOL_OFF = dt.timedelta(minutes=15)


def _log_in(client: Client, username: str, password: str) -> Any:
    return client.post(reverse("login"), {"username": username, "password": password})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _fail(client: Client, username: str, times: int) -> None:
    for _attempt in range(times):
        response = _log_in(client, username, "wrong password")
        assert response.status_code == 200


def _age_throttle(username: str, by: dt.timedelta) -> None:
    """Move the username's throttle back in time, as if `by` had passed."""
    throttle = LoginThrottle.objects.get(username=username)
    LoginThrottle.objects.filter(pk=throttle.pk).update(
        last_failure_at=throttle.last_failure_at - by,
        locked_until=throttle.locked_until - by if throttle.locked_until else None,
    )


# ------------------------------------------------------------------------------------------ throttling


def test_right_password_is_refused_after_the_limit_of_failures(client: Client) -> None:
    UserFactory(username="mei")
    _fail(client, "mei", 3)

    response = _log_in(client, "mei", PASSWORD)

    assert response.status_code == 200
    assert not _signed_in(client)
    assert "Too many failed sign-ins for this username. Try again in 15 minutes." in response.content.decode()


def test_failures_below_the_limit_still_let_the_right_password_in(client: Client) -> None:
    UserFactory(username="mei")
    _fail(client, "mei", 2)

    response = _log_in(client, "mei", PASSWORD)

    assert response.status_code == 302
    assert _signed_in(client)


def test_wrong_password_gets_the_usual_message_before_the_lock(client: Client) -> None:
    UserFactory(username="mei")

    response = _log_in(client, "mei", "wrong password")

    assert "Please enter a correct username and password" in response.content.decode()
    assert "Too many failed sign-ins" not in response.content.decode()


def test_successful_sign_in_forgets_the_failures(client: Client) -> None:
    UserFactory(username="mei")
    _fail(client, "mei", 2)
    assert _log_in(client, "mei", PASSWORD).status_code == 302
    other = Client()
    _fail(other, "mei", 2)

    assert _log_in(other, "mei", PASSWORD).status_code == 302
    assert not LoginThrottle.objects.filter(username="mei").exists()


def test_lock_ends_after_the_cool_off(client: Client) -> None:
    UserFactory(username="mei")
    _fail(client, "mei", 3)
    _age_throttle("mei", dt.timedelta(minutes=15, seconds=1))

    response = _log_in(client, "mei", PASSWORD)

    assert response.status_code == 302


def test_failures_older_than_the_cool_off_do_not_count() -> None:
    start = timezone.now()
    logins.login_failure_record(username="mei", now=start)
    logins.login_failure_record(username="mei", now=start + dt.timedelta(minutes=1))

    logins.login_failure_record(username="mei", now=start + dt.timedelta(minutes=17))

    assert logins.login_locked_until(username="mei", now=start + dt.timedelta(minutes=17)) is None


def test_lock_is_kept_in_the_database_for_every_process(client: Client) -> None:
    """Another worker is another client and another process memory: only the database row is shared."""
    UserFactory(username="mei")
    _fail(client, "mei", 3)
    throttle = LoginThrottle.objects.get(username="mei")

    assert throttle.locked_until is not None
    assert not _signed_in(client)
    assert _log_in(Client(), "mei", PASSWORD).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel writers need PostgreSQL")
def test_failures_from_parallel_workers_are_all_counted(settings: Any) -> None:
    """Eight connections (as eight gunicorn workers would have) fail at once: no failure is lost."""
    settings.OPSTEAM_LOGIN_FAILURE_LIMIT = 100
    start = threading.Barrier(8)

    def fail_once() -> None:
        try:
            start.wait()
            logins.login_failure_record(username="mei")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(fail_once) for _worker in range(8)]:
            future.result()

    assert LoginThrottle.objects.get(username="mei").failures == 8


def test_usernames_differing_in_case_share_the_count(client: Client) -> None:
    UserFactory(username="mei")
    _fail(client, "MEI", 2)
    _fail(client, "Mei", 1)

    assert _log_in(client, "mei", PASSWORD).status_code == 200
    assert not _signed_in(client)


def test_lock_of_one_username_leaves_others_alone(client: Client) -> None:
    UserFactory(username="mei")
    UserFactory(username="lin")
    _fail(client, "mei", 3)

    assert _log_in(client, "lin", PASSWORD).status_code == 302


def test_unknown_usernames_are_counted_like_known_ones(client: Client) -> None:
    _fail(client, "nobody", 3)

    assert logins.login_locked_until(username="nobody") is not None


def test_api_token_sign_in_is_locked_with_429_and_the_message() -> None:
    UserFactory(username="mei")
    api = APIClient()
    for _attempt in range(3):
        assert api.post("/api/auth/token/", {"username": "mei", "password": "nope"}).status_code == 400

    response = api.post("/api/auth/token/", {"username": "mei", "password": PASSWORD})

    assert response.status_code == 429
    assert response.json()["detail"].startswith(
        "Too many failed sign-ins for this username. Try again in 15 minutes."
    )
    assert 890 <= int(response["Retry-After"]) <= 900
    assert "token" not in response.json()


def test_web_failures_lock_the_api_token_sign_in_too(client: Client) -> None:
    UserFactory(username="mei")
    _fail(client, "mei", 3)

    response = APIClient().post("/api/auth/token/", {"username": "mei", "password": PASSWORD})

    assert response.status_code == 429


# --------------------------------------------------------------------------------------------- tokens


def _api_as(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


def test_replacing_the_token_by_api_makes_the_old_key_401_at_once() -> None:
    user = UserFactory()
    old = Token.objects.create(user=user).key

    response = _api_as(old).post(reverse("api-account-token"))

    new = response.json()["token"]
    assert response.status_code == 201
    assert new != old
    assert _api_as(old).get("/api/notifications/").status_code == 401
    assert _api_as(new).get("/api/notifications/").status_code == 200


def test_revoking_the_token_by_api_makes_it_401() -> None:
    user = UserFactory()
    key = Token.objects.create(user=user).key

    response = _api_as(key).delete(reverse("api-account-token"))

    assert response.status_code == 204
    assert _api_as(key).get("/api/notifications/").status_code == 401
    assert not Token.objects.filter(user=user).exists()


def test_token_endpoint_needs_a_signed_in_user() -> None:
    assert APIClient().post(reverse("api-account-token")).status_code == 401


def test_account_page_shows_a_new_token_once_and_the_old_key_stops_working(client: Client) -> None:
    user = UserFactory()
    old = Token.objects.create(user=user).key
    client.force_login(user)

    response = client.post(reverse("account"), {"action": "rotate"})

    new = Token.objects.get(user=user).key
    assert response.status_code == 200
    assert new in response.content.decode()
    assert new not in client.get(reverse("account")).content.decode()
    assert _api_as(old).get("/api/notifications/").status_code == 401


def test_account_page_revokes_the_token(client: Client) -> None:
    user = UserFactory()
    key = Token.objects.create(user=user).key
    client.force_login(user)

    response = client.post(reverse("account"), {"action": "revoke"}, follow=True)

    assert "Your API token was revoked." in response.content.decode()
    assert "You have no API token." in response.content.decode()
    assert _api_as(key).get("/api/notifications/").status_code == 401


def test_account_page_refuses_an_unknown_action(client: Client) -> None:
    user = UserFactory()
    key = Token.objects.create(user=user).key
    client.force_login(user)

    assert client.post(reverse("account"), {"action": "steal"}).status_code == 400
    assert Token.objects.get(user=user).key == key


def test_account_page_is_in_the_user_menu(client: Client) -> None:
    client.force_login(UserFactory())

    assert f'href="{reverse("account")}"' in client.get(reverse("queue")).content.decode()


def test_account_page_needs_sign_in(client: Client) -> None:
    response = client.get(reverse("account"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_staff_revoke_a_token_in_the_admin(client: Client) -> None:
    owner = UserFactory()
    key = Token.objects.create(user=owner).key
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(reverse("admin:authtoken_tokenproxy_delete", args=[owner.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert _api_as(key).get("/api/notifications/").status_code == 401


# ------------------------------------------------------------------------------------------ passwords


@pytest.mark.parametrize("weak", ["12345678", "password", "short1"])
def test_password_change_refuses_a_weak_password(client: Client, weak: str) -> None:
    user = UserFactory()
    client.force_login(user)

    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak},
    )

    user.refresh_from_db()
    assert response.status_code == 200
    assert response.context["form"].errors["new_password2"]
    assert user.check_password(PASSWORD)


def test_password_change_accepts_a_strong_password(client: Client) -> None:
    user = UserFactory()
    client.force_login(user)

    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "lantern-Orbit-917",
            "new_password2": "lantern-Orbit-917",
        },
    )

    user.refresh_from_db()
    assert response.status_code == 302
    assert user.check_password("lantern-Orbit-917")


# ------------------------------------------------------------------------------- production cookies

COOKIE_SETTINGS = [
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_SAMESITE",
]


@pytest.fixture(scope="module")
def production_cookie_settings() -> dict[str, Any]:
    """The cookie settings as opsteam.settings.production makes them, read in a fresh interpreter."""
    script = (
        "import json, opsteam.settings.production as p; "
        f"print(json.dumps({{name: getattr(p, name) for name in {COOKIE_SETTINGS!r}}}))"
    )
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "x" * 60,
        "DJANGO_ALLOWED_HOSTS": "opsteam.example.com",
    }
    result = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout))


def test_production_cookies_are_secure_httponly_and_same_site(
    production_cookie_settings: dict[str, Any],
) -> None:
    assert production_cookie_settings == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
    }


def test_session_cookie_under_production_settings_carries_the_flags(
    client: Client, production_cookie_settings: dict[str, Any]
) -> None:
    UserFactory(username="mei")

    with override_settings(**production_cookie_settings):
        _log_in(client, "mei", PASSWORD)

    cookie = client.cookies["sessionid"]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert client.cookies["csrftoken"]["secure"] is True


def test_staff_unlock_a_username_in_the_admin(client: Client) -> None:
    UserFactory(username="mei")
    _fail(Client(), "mei", 3)
    throttle = LoginThrottle.objects.get(username="mei")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    client.post(reverse("admin:roles_loginthrottle_delete", args=[throttle.pk]), {"post": "yes"})

    assert _log_in(Client(), "mei", PASSWORD).status_code == 302
