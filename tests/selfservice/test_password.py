"""Changing the cloud password at /password/: Keystone's self-service change, synchronously."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client

from portal import services
from portal.models import Operation
from portal.services.onboarding import domain_id
from portal.services.passwords import RULE_CACHE_KEY, PasswordReset
from tests.integration.conftest import PortalCloud, recorded_calls
from tests.selfservice.conftest import CloudSoldier, browser, everything_stored, logged_in

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network"),
]


def change(client: Client, original: str, new: str, confirm: str | None = None) -> Any:
    return client.post(
        "/password/",
        {
            "original_password": original,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
        },
    )


def can_log_in(username: str, password: str) -> bool:
    response = browser().post("/login/", {"username": username, "password": password})
    return bool(response.status_code == 302)


def test_a_soldier_changes_the_password_stays_logged_in_and_the_new_one_works(
    soldier_a: CloudSoldier, caplog: pytest.LogCaptureFixture
) -> None:
    new = "new-Pass-" + soldier_a.password[-6:]
    with caplog.at_level(logging.DEBUG), recorded_calls() as calls:
        response = change(soldier_a.client, soldier_a.password, new)
    assert response.status_code == 302
    assert len(calls.matching("POST", r"/v3/users/[^/]+/password$")) == 1
    home = soldier_a.client.get("/")
    assert home.status_code == 200  # the session survives
    assert "Your cloud password was changed." in home.content.decode()
    op = Operation.objects.get(kind=Operation.Kind.PASSWORD_CHANGE)
    assert op.state == Operation.State.SUCCEEDED
    assert op.requested_by == soldier_a.soldier.user
    assert can_log_in(soldier_a.username, new)
    assert not can_log_in(soldier_a.username, soldier_a.password)
    stored = everything_stored()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (soldier_a.password, new):
        assert secret not in stored
        assert secret not in logs


def test_a_wrong_current_password_is_refused_and_changes_nothing(
    soldier_a: CloudSoldier,
) -> None:
    response = change(soldier_a.client, "not-it", "new-Pass-123")
    assert response.status_code == 200
    assert "The current password is not correct." in response.content.decode()
    assert can_log_in(soldier_a.username, soldier_a.password)
    assert soldier_a.client.get("/").status_code == 200


def test_wrong_current_passwords_are_throttled_like_the_login(
    soldier_a: CloudSoldier, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        assert change(soldier_a.client, "not-it", "new-Pass-123").status_code == 200
    locked = change(soldier_a.client, "not-it", "new-Pass-123")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many wrong current passwords." in text
    assert "Try again after" in text
    assert 'name="new_password"' in text  # still the password page, not the login page
    with recorded_calls() as calls:
        again = change(soldier_a.client, soldier_a.password, "new-Pass-123")
    assert again.status_code == 429
    assert calls.exchanges == []  # locked out before Keystone is asked
    # The same lock holds at the login page: one counter per username and address.
    assert not can_log_in(soldier_a.username, soldier_a.password)
    assert soldier_a.client.get("/").status_code == 200  # but the session goes on


@pytest.fixture
def password_rule(
    devcloud: Any, portal_cloud: PortalCloud, soldier_a: CloudSoldier
) -> Iterator[None]:
    """Keystone's [security_compliance] password_regex, set once soldier A has a password."""
    portal_cloud.faults.password_rule(
        r"^(?=.*\d)(?=.*[A-Z]).{12,}$", "12+ chars, a digit, a capital"
    )
    caches["default"].delete(RULE_KEY())  # the portal reads the rule anew
    yield
    portal_cloud.faults.password_rule(None)
    caches["default"].delete(RULE_KEY())


def RULE_KEY() -> str:
    return RULE_CACHE_KEY.format(domain=domain_id())


def test_a_password_the_cloud_policy_refuses_shows_its_rule_and_changes_nothing(
    password_rule: None, soldier_a: CloudSoldier
) -> None:
    # Long enough for the portal's own policy; Keystone's rule wants a digit and a capital too.
    response = change(soldier_a.client, soldier_a.password, "rain-over-seoul-tonight")
    assert response.status_code == 200
    text = response.content.decode()
    assert "The cloud&#x27;s password rules were not met: 12+ chars, a digit, a capital" in text
    assert can_log_in(soldier_a.username, soldier_a.password)

    korean = Client(HTTP_ACCEPT_LANGUAGE="ko")
    korean.force_login(soldier_a.soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
    text = change(korean, soldier_a.password, "rain-over-seoul-tonight").content.decode()
    assert "클라우드의 비밀번호 규칙" in text
    assert "12+ chars, a digit, a capital" in text


def test_keystone_unreachable_gives_a_clear_message_and_changes_nothing(
    devcloud: Any, soldier_a: CloudSoldier, portal_cloud: PortalCloud
) -> None:
    portal_cloud.faults.add(method="POST", path="/v3/users/[^/]+/password$", status=503)
    response = change(soldier_a.client, soldier_a.password, "new-Pass-123")
    assert response.status_code == 200
    assert "The cloud could not be reached, so your password was not changed." in (
        response.content.decode()
    )
    portal_cloud.faults.reset()
    assert can_log_in(soldier_a.username, soldier_a.password)


@pytest.mark.parametrize(
    ("new", "confirm", "message"),
    [
        ("new-Pass-123", "new-Pass-124", "The two new passwords are not the same."),
        ("", "", "This field is required."),
    ],
)
def test_the_form_checks_what_it_can_before_asking_the_cloud(
    soldier_a: CloudSoldier, new: str, confirm: str, message: str
) -> None:
    with recorded_calls() as calls:
        response = change(soldier_a.client, soldier_a.password, new, confirm)
    assert message in response.content.decode()
    assert calls.exchanges == []


def test_the_new_password_must_differ_from_the_current_one(soldier_a: CloudSoldier) -> None:
    response = change(soldier_a.client, soldier_a.password, soldier_a.password)
    assert "The new password must differ from the current one." in response.content.decode()


def test_a_change_whose_answer_was_lost_is_checked_with_the_new_password_first(
    devcloud: Any, soldier_a: CloudSoldier, portal_cloud: PortalCloud
) -> None:
    # Keystone changes the password, then the answer is lost (F5).
    portal_cloud.faults.add(
        method="POST", path="/v3/users/[^/]+/password$", status=503, after=True, count=1
    )
    new = "new-Pass-" + soldier_a.password[-6:]
    response = change(soldier_a.client, soldier_a.password, new)
    assert response.status_code == 302
    assert "Your cloud password was changed." in soldier_a.client.get("/").content.decode()
    assert can_log_in(soldier_a.username, new)
    assert not can_log_in(soldier_a.username, soldier_a.password)


def test_a_retry_of_a_change_that_went_through_is_no_failed_login(
    soldier_a: CloudSoldier, admin: Any, settings: Any
) -> None:
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 1  # a single counted failure would lock the soldier out
    new = "new-Pass-" + soldier_a.password[-6:]
    # The first try changed the password in Keystone, but the soldier never heard so.
    admin.reset_user_password(soldier_a.soldier.keystone_user_id, new)
    response = change(soldier_a.client, soldier_a.password, new)
    assert response.status_code == 302
    assert "Your cloud password was changed." in soldier_a.client.get("/").content.decode()
    assert not AccessAttempt.objects.exists()
    assert can_log_in(soldier_a.username, new)


def test_a_password_change_ends_the_soldiers_other_sessions_but_not_this_one(
    soldier_a: CloudSoldier,
) -> None:
    intruder = logged_in(soldier_a.soldier)
    assert intruder.get("/").status_code == 200
    new = "new-Pass-" + soldier_a.password[-6:]
    assert change(soldier_a.client, soldier_a.password, new).status_code == 302
    assert soldier_a.client.get("/").status_code == 200
    assert intruder.get("/")["Location"].startswith("/login/")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbVyHbRC0hfUE6ZfB0HTuQkJl5GA2k0jYFMWkX0WQjp x"
    assert intruder.post("/ssh-key/", {"public_key": key})["Location"].startswith("/login/")


def test_a_staff_reset_ends_every_session_of_the_soldier(soldier_a: CloudSoldier) -> None:
    other = logged_in(soldier_a.soldier)
    services.soldier_password_reset(soldier=soldier_a.soldier)
    for client in (soldier_a.client, other):
        assert client.get("/")["Location"].startswith("/login/")


def test_two_staff_resetting_one_soldier_at_once_make_one_password_that_works(
    devcloud: Any, soldier_a: CloudSoldier, portal_cloud: PortalCloud
) -> None:
    # Keystone is slow enough for both resets to be in flight together (F12).
    portal_cloud.faults.add(method="PATCH", path="/v3/users/[^/]+$", status=None, latency=1.5)
    outcomes: list[Any] = []

    def reset() -> None:
        try:
            outcomes.append(services.soldier_password_reset(soldier=soldier_a.soldier))
        except services.OperationRefused as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    both = [threading.Thread(target=reset) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(timeout=60)
    portal_cloud.faults.reset()
    passwords = [o.password for o in outcomes if isinstance(o, PasswordReset) and o.password]
    refusals = [str(o) for o in outcomes if isinstance(o, services.OperationRefused)]
    assert len(passwords) == 1, outcomes
    assert refusals == [
        "The password of this soldier is being changed right now (by staff or by the soldier). "
        "Wait a moment, then look at the result before trying again."
    ]
    assert can_log_in(soldier_a.username, passwords[0])


def test_the_password_rules_are_on_the_form_and_a_weak_password_never_reaches_keystone(
    soldier_a: CloudSoldier,
) -> None:
    form = soldier_a.client.get("/password/").content.decode()
    assert "Your password must contain at least 12 characters." in form
    assert 'minlength="12"' in form
    with recorded_calls() as calls:
        for weak in ("1", soldier_a.username, "123456789012345", "password1234"):
            response = change(soldier_a.client, soldier_a.password, weak)
            assert response.status_code == 200
            assert 'class="errorlist' in response.content.decode()
    assert calls.matching("POST", r"/v3/users/[^/]+/password$") == []
    assert can_log_in(soldier_a.username, soldier_a.password)

    korean = Client(HTTP_ACCEPT_LANGUAGE="ko")
    korean.force_login(soldier_a.soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
    text = change(korean, soldier_a.password, "1").content.decode()
    assert "이 비밀번호는 너무 짧습니다. 최소 12자 이상이어야 합니다." in text


def test_services_refuse_a_weak_password_and_staff_resets_are_readable(
    soldier_a: CloudSoldier,
) -> None:
    with pytest.raises(services.OperationRefused, match="password rules"):
        services.soldier_password_reset(soldier=soldier_a.soldier, new_password="1")
    with pytest.raises(services.OperationRefused, match="password rules"):
        services.soldier_password_change(
            soldier=soldier_a.soldier, original_password=soldier_a.password, new_password="1"
        )
    reset = services.soldier_password_reset(soldier=soldier_a.soldier)
    assert reset.password is not None
    assert re.fullmatch(r"[A-Za-z2-9]{4}(-[A-Za-z2-9]{4}){3}", reset.password)
    assert can_log_in(soldier_a.username, reset.password)


def test_the_clouds_own_rule_is_on_the_form_and_checked_before_sending(
    password_rule: None, soldier_a: CloudSoldier
) -> None:
    with recorded_calls() as calls:
        form = soldier_a.client.get("/password/").content.decode()
    assert calls.exchanges == []  # a page view asks the cloud nothing
    assert "The cloud&#x27;s own rule" not in form  # not read yet: Keystone would still refuse
    with recorded_calls() as calls:
        response = change(soldier_a.client, soldier_a.password, "rain-over-seoul-tonight")
    text = response.content.decode()
    assert "The cloud&#x27;s password rules were not met: 12+ chars, a digit, a capital" in text
    assert "The cloud&#x27;s own rule: 12+ chars, a digit, a capital" in text  # read at the POST
    assert calls.matching("POST", r"/v3/users/[^/]+/password$") == []
    assert can_log_in(soldier_a.username, soldier_a.password)
    # From then on the rule is on the form before anything is sent.
    form = soldier_a.client.get("/password/").content.decode()
    assert "The cloud&#x27;s own rule: 12+ chars, a digit, a capital" in form


def test_a_rule_the_portal_has_not_read_yet_is_still_refused_by_keystone_in_words(
    password_rule: None, soldier_a: CloudSoldier
) -> None:
    caches["default"].set(RULE_KEY(), (None, None), 300)  # read before the rule was set
    with recorded_calls() as calls:
        response = change(soldier_a.client, soldier_a.password, "rain-over-seoul-tonight")
    assert len(calls.matching("POST", r"/v3/users/[^/]+/password$")) == 1
    assert "The cloud&#x27;s password rules were not met: 12+ chars, a digit, a capital" in (
        response.content.decode()
    )
    assert can_log_in(soldier_a.username, soldier_a.password)
