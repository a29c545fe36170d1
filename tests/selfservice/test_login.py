"""Logging in at /login/ with the cloud account: Keystone decides, the portal keeps nothing."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from portal.models import Soldier
from portal.services.onboarding import domain_id
from tests.integration.conftest import (
    Cast,
    PortalCloud,
    make_soldier,
    requests_matching,
    unique,
)
from tests.selfservice.conftest import CloudSoldier, browser, everything_stored

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network"),
]


def login(client: Any, username: str, password: str, **request: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password}, **request)


def test_a_soldier_logs_in_with_the_cloud_password_and_lands_on_my_vm(
    soldier_a: CloudSoldier,
) -> None:
    client = browser()
    response = login(client, soldier_a.username, soldier_a.password)
    assert response.status_code == 302
    assert response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "My VM" in page.content.decode()
    assert int(client.session["_auth_user_id"]) == soldier_a.soldier.user_id


def test_the_login_keeps_no_token_or_password_in_session_database_or_logs(
    soldier_a: CloudSoldier, issued_tokens: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    client = browser()
    with caplog.at_level(logging.DEBUG):
        assert login(client, soldier_a.username, soldier_a.password).status_code == 302
        # A failed attempt too: axes records it (with the password masked).
        assert login(browser(), soldier_a.username, soldier_a.password + "x").status_code == 200
    assert issued_tokens, "Keystone issued no token at the login"
    stored = everything_stored()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    session = repr(dict(client.session.items()))
    for secret in (soldier_a.password, *issued_tokens):
        assert secret not in stored
        assert secret not in logs
        assert secret not in session
    assert soldier_a.username in stored  # the search does see the rows it searches


def test_a_wrong_password_is_refused_in_plain_words(soldier_a: CloudSoldier) -> None:
    client = browser()
    response = login(client, soldier_a.username, "not-the-password")
    assert response.status_code == 200
    assert "The username or password is not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_keystone_user_without_a_soldier_is_refused_with_a_reason(
    soldier_a: CloudSoldier,
) -> None:
    # The Keystone account works, but no soldier of the portal has it any more.
    Soldier.objects.filter(pk=soldier_a.soldier.pk).update(keystone_user_id="someone-else")
    response = login(browser(), soldier_a.username, soldier_a.password)
    assert response.status_code == 200
    assert "not registered with the portal" in response.content.decode()


def test_a_disabled_soldier_is_refused_and_loses_their_session(soldier_a: CloudSoldier) -> None:
    assert soldier_a.client.get("/").status_code == 200
    Soldier.objects.filter(pk=soldier_a.soldier.pk).update(state=Soldier.State.DISABLED)
    response = login(browser(), soldier_a.username, soldier_a.password)
    assert "Your portal access has ended" in response.content.decode()
    assert soldier_a.client.get("/")["Location"].startswith("/login/")


def test_failed_logins_lock_out_the_username_from_that_address_and_say_until_when(
    soldier_a: CloudSoldier, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    client = browser()
    for _ in range(2):
        assert login(client, soldier_a.username, "wrong").status_code == 200
    locked = login(client, soldier_a.username, "wrong")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed attempts" in text
    assert "Try again after" in text
    assert 'datetime="' in text  # the time, in KST with its UTC original
    # Even the right password waits for the cool-off now.
    assert login(client, soldier_a.username, soldier_a.password).status_code == 429
    # Another address is not locked out (a whole unit may share one NAT address, and vice versa).
    elsewhere = login(browser(), soldier_a.username, soldier_a.password, REMOTE_ADDR="198.51.100.7")
    assert elsewhere.status_code == 302


def test_behind_the_proxy_a_lockout_is_counted_against_the_client_not_the_proxy(
    soldier_a: CloudSoldier, settings: Any
) -> None:
    # What BEHIND_TLS_PROXY sets: one proxy, which appends the client's address.
    settings.AXES_IPWARE_PROXY_COUNT = 1
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
    settings.AXES_CLIENT_IP_CALLABLE = "portal.clientaddress.client_address"
    settings.AXES_FAILURE_LIMIT = 2
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # The attacker names another address first; the proxy's own entry is the last one.
    attacker = {**proxy, "HTTP_X_FORWARDED_FOR": "198.51.100.7, 203.0.113.66"}
    for _ in range(2):
        login(browser(), soldier_a.username, "wrong", **attacker)
    assert login(browser(), soldier_a.username, soldier_a.password, **attacker).status_code == 429
    # The soldier, through the same proxy from his own address (the one the attacker named too).
    own = {**proxy, "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert login(browser(), soldier_a.username, soldier_a.password, **own).status_code == 302


def test_a_locked_out_username_does_not_lock_out_others_behind_the_same_address(
    soldier_a: CloudSoldier, soldier_b: CloudSoldier, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    client = browser()
    for _ in range(2):
        login(client, soldier_a.username, "wrong")
    assert login(client, soldier_a.username, soldier_a.password).status_code == 429
    assert login(browser(), soldier_b.username, soldier_b.password).status_code == 302


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"action": "drop"},
        # Held for minutes by devcloud: the login gives up at the client's timeout instead.
        {"action": "timeout"},
    ],
    ids=["503", "connection-dropped", "no-answer"],
)
def test_keystone_down_or_slow_is_a_503_page_not_a_failed_login(
    devcloud: Any, portal_cloud: PortalCloud, cast: Cast, settings: Any, fault: dict[str, Any]
) -> None:
    settings.OPENSTACK_TIMEOUT = 1.0
    portal_cloud.faults.add(method="POST", path="^/identity/v3/auth/tokens$", **fault)
    response = login(browser(), cast.soldier.keystone_user_name, "whatever")
    assert response.status_code == 503
    text = response.content.decode()
    assert "Cloud login is unavailable right now" in text
    assert 'name="username"' in text  # the form is there to try again
    from axes.models import AccessAttempt

    assert not AccessAttempt.objects.exists()  # the cloud's outage is nobody's failed login


def test_staff_log_in_with_their_django_account_even_when_keystone_is_down(
    devcloud: Any, portal_cloud: PortalCloud, settings: Any
) -> None:
    name = unique("staff")
    get_user_model().objects.create_user(username=name, password="staff-pass-1", is_staff=True)
    portal_cloud.faults.add(method="POST", path="/auth/tokens", status=503)
    client = browser()
    response = login(client, name, "staff-pass-1")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    # Staff who land on "/" are sent to the console.
    assert client.get("/")["Location"] == "/admin/"


def test_a_soldiers_django_password_is_never_a_way_in(soldier_a: CloudSoldier) -> None:
    user = soldier_a.soldier.user
    user.set_password("django-side")
    user.save()
    assert login(browser(), soldier_a.username, "django-side").status_code == 200


def test_a_soldier_is_refused_the_staff_console(soldier_a: CloudSoldier) -> None:
    response = soldier_a.client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert soldier_a.client.get("/admin/portal/instance/").status_code == 302


def test_anonymous_people_are_sent_to_the_login_page(portal_cloud: Any) -> None:
    response = browser().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"
    page = browser().get("/login/")
    assert page.status_code == 200
    assert 'for="id_username"' in page.content.decode()


def test_logout_ends_the_session(soldier_a: CloudSoldier) -> None:
    assert soldier_a.client.get("/logout/").status_code == 405  # a POST, so a link cannot do it
    response = soldier_a.client.post("/logout/")
    assert response["Location"] == "/login/"
    assert soldier_a.client.get("/")["Location"].startswith("/login/")


def test_a_login_lasts_the_session_age_setting(soldier_a: CloudSoldier, settings: Any) -> None:
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    settings.SESSION_COOKIE_AGE = 600
    client = browser()
    response = login(client, soldier_a.username, soldier_a.password)
    assert response.cookies["sessionid"]["max-age"] == 600


def test_a_soldier_who_has_not_been_onboarded_cannot_log_in(portal_cloud: Any) -> None:
    soldier = make_soldier()
    assert soldier.keystone_user_id == ""
    response = login(browser(), soldier.keystone_user_name, "anything")
    assert response.status_code == 200
    assert "The username or password is not correct" in response.content.decode()


def test_the_login_page_is_korean_by_default(portal_cloud: Any) -> None:
    from django.test import Client

    page = Client().get("/login/").content.decode()
    assert '<html lang="ko">' in page
    assert settings.LANGUAGE_CODE == "ko"


def test_a_cloud_account_that_is_no_soldier_gets_the_wrong_password_answer_unasked(
    devcloud: Any, portal_cloud: PortalCloud, admin: Any
) -> None:
    # A service-like account with a password the attacker guessed right, and the cloud's admin.
    name, password = unique("svc"), "right-" + secrets.token_urlsafe(12)
    admin.create_user(name=name, domain_id=domain_id(), password=password)
    before = len(requests_matching(devcloud, "POST", "/auth/tokens$"))
    for username, guess in (
        (name, password),
        ("admin", devcloud.admin_password),
        ("Admin", devcloud.admin_password),
        ("nova", "anything"),
    ):
        response = login(browser(), username, guess)
        assert response.status_code == 200
        text = response.content.decode()
        assert "The username or password is not correct" in text
        assert "not registered" not in text
    # Nothing reached Keystone: no oracle, and no way to lock a service account out there.
    assert len(requests_matching(devcloud, "POST", "/auth/tokens$")) == before


def test_the_lockout_counts_a_username_without_regard_to_case(
    soldier_a: CloudSoldier, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    client = browser()
    for variant in (soldier_a.username, soldier_a.username.upper()):
        assert login(client, variant, "wrong").status_code == 200
    assert login(client, soldier_a.username.title(), "wrong").status_code == 429
    assert login(client, soldier_a.username, soldier_a.password).status_code == 429


@pytest.mark.timeout(60)  # a hang guard: with the client's 300 s timeout the login would hang here
def test_a_hanging_keystone_holds_a_login_only_for_the_login_timeout(
    devcloud: Any, portal_cloud: PortalCloud, cast: Cast, settings: Any
) -> None:
    settings.OPENSTACK_TIMEOUT = 300.0  # what a background operation may wait for the cloud
    settings.LOGIN_KEYSTONE_TIMEOUT = 1.0
    portal_cloud.faults.add(method="POST", path="^/identity/v3/auth/tokens$", action="timeout")
    response = login(browser(), cast.soldier.keystone_user_name, "whatever")
    assert response.status_code == 503
    assert "Cloud login is unavailable right now" in response.content.decode()


@pytest.mark.timeout(120)
def test_past_the_cap_a_login_is_told_to_try_again_shortly_without_asking_keystone(
    devcloud: Any, portal_cloud: PortalCloud, cast: Cast, settings: Any
) -> None:
    settings.LOGIN_KEYSTONE_CONCURRENCY = 1
    settings.LOGIN_KEYSTONE_TIMEOUT = 10.0
    portal_cloud.faults.add(method="POST", path="^/identity/v3/auth/tokens$", action="timeout")
    name = cast.soldier.keystone_user_name
    asked = len(requests_matching(devcloud, "POST", "/auth/tokens$"))

    def first_login() -> None:
        try:
            login(browser(), name, "whatever")
        finally:
            connection.close()  # this thread's own database connection

    waiting = threading.Thread(target=first_login, daemon=True)
    waiting.start()
    deadline = time.monotonic() + 60
    while len(requests_matching(devcloud, "POST", "/auth/tokens$")) == asked:
        assert time.monotonic() < deadline, "the first login never reached Keystone"
        time.sleep(0.05)

    response = login(browser(), name, "whatever")

    assert waiting.is_alive()  # the first login still holds the only slot
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    text = response.content.decode()
    assert "Many people are logging in right now" in text
    assert 'name="username"' in text
    assert len(requests_matching(devcloud, "POST", "/auth/tokens$")) == asked + 1
    from axes.models import AccessAttempt

    assert not AccessAttempt.objects.exists()  # a busy Keystone is nobody's failed login
    portal_cloud.faults.reset()
    waiting.join(timeout=60)
