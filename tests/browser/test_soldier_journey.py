"""A soldier logs in with the password staff reset for them, gets a VM and looks after it; the page
in Korean and in English, times in KST; another soldier cannot reach that VM."""

from __future__ import annotations

import re
import secrets

from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from portal import services
from portal.models import Instance, Soldier
from tests.browser.conftest import TYPED_PASSWORDS, People, Stack, leaks
from tests.browser.journey import PATIENCE_MS, Journey, assert_times_are_kst, tab_to
from tests.browser.support import ko, staff_login, vm_status, words

FLOATING = re.compile(r"172\.24\.4\.\d+")


def onboarded(number: str, name: str) -> Soldier:
    user = get_user_model().objects.create_user(username=f"u{number}")
    soldier = services.soldier_create(user=user, service_number=number, name=name, unit="제3대대")
    services.soldier_onboard(soldier=soldier, run_now=True)
    soldier.refresh_from_db()
    assert soldier.state == Soldier.State.ACTIVE
    return soldier


def keyboard_login(page: Page, username: str, password: str) -> None:
    """The login form with the keyboard only: Tab to each field, type, Enter."""
    tab_to(page, page.get_by_label(ko("Cloud username")))
    page.keyboard.type(username)
    tab_to(page, page.get_by_label(ko("Password")))
    page.keyboard.type(password)
    page.keyboard.press("Enter")


def login(page: Page, username: str, password: str) -> None:
    page.get_by_label(ko("Cloud username")).fill(username)
    page.get_by_label(ko("Password")).fill(password)
    page.get_by_role("button", name=ko("Log in")).click()


def act(page: Page, action: str, question: str, *, keyboard: bool = False) -> None:
    """A VM action from the card, through its confirmation page."""
    link = page.get_by_role("group").get_by_role("link", name=ko(action), exact=True)
    if keyboard:
        tab_to(page, link)
        page.keyboard.press("Enter")
    else:
        link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(ko(question))
    confirm = page.get_by_role("button", name=words("Yes, %(label)s"))
    if keyboard:
        tab_to(page, confirm)
        page.keyboard.press("Enter")
    else:
        confirm.click()
    page.wait_for_url("**/")


def test_a_soldier_gets_a_vm_and_looks_after_it(
    journey: Journey, people: People, stack: Stack
) -> None:
    journey.name = "soldier"
    soldier = onboarded("25-3100001", "정민수")
    username = soldier.keystone_user_name

    # Staff reset the cloud password; the console shows it once.
    staff = journey.open()
    staff.goto("/admin/")
    staff_login(staff, "journey-operator", people.staff_passwords["operator"])
    staff.goto("/admin/portal/soldier/")
    staff.get_by_role("search").get_by_role("textbox", name=ko("Search")).fill(
        soldier.service_number
    )
    staff.get_by_role("search").get_by_role("button", name=ko("Search")).click()
    staff.get_by_role("checkbox", name=ko("Select all objects on this page for an action")).check()
    staff.get_by_role("combobox", name=ko("Action:")).select_option(
        label=ko("Reset the cloud password (shown once)")
    )
    staff.get_by_role("button", name=ko("Run")).click()
    journey.see("staff-reset-confirmation", staff)
    staff.get_by_role("button", name=ko("Yes, reset their passwords")).click()
    row = staff.get_by_role("row").filter(has_text=username)
    expect(row).to_contain_text(ko("set"))
    password = row.get_by_role("cell").nth(1).inner_text().strip()
    assert len(password) >= 12
    TYPED_PASSWORDS.add(password)
    journey.see("staff-shows-the-reset-password", shows_secret=True)

    # The soldier logs in with it, keyboard only, and asks for a VM.
    page = journey.open()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
    journey.see("login")
    keyboard_login(page, username, password)
    expect(page.get_by_role("heading", name=ko("You have no VM yet"))).to_be_visible()
    journey.see("no-vm-yet")
    page.get_by_role("link", name=re.compile(re.escape(ko("Request this VM")))).click()
    journey.see("request-confirmation")
    page.get_by_role("button", name=ko("Yes, request it")).click()

    # The card goes from Building to Running by itself (htmx polls; the page never reloads).
    page.wait_for_url("**/")
    page.evaluate("window.__journeyMark = 'not reloaded'")
    card = page.get_by_role("article")
    expect(card).to_contain_text(vm_status("building"), timeout=PATIENCE_MS)
    journey.see("vm-building")
    expect(card).to_contain_text(vm_status("running"), timeout=PATIENCE_MS)
    assert page.evaluate("window.__journeyMark") == "not reloaded", "the soldier page reloaded"
    expect(card).to_contain_text(FLOATING)
    ssh = card.get_by_role("code").filter(has_text="ssh ")
    expect(ssh).to_contain_text(FLOATING)
    journey.see("vm-running")
    instance = Instance.objects.get(owner=soldier)

    # Stop (with the keyboard only), start, restart; each confirmed first.
    act(page, "Stop", "Stop this VM?", keyboard=True)
    expect(card).to_contain_text(vm_status("stopped"), timeout=PATIENCE_MS)
    journey.see("vm-stopped")
    act(page, "Start", "Start this VM?")
    expect(card).to_contain_text(vm_status("running"), timeout=PATIENCE_MS)
    act(page, "Restart", "Restart this VM?")
    journey.see("vm-restart-asked")
    expect(card).to_contain_text(vm_status("running"), timeout=PATIENCE_MS)
    expect(card).to_contain_text(ko("Restart"))
    journey.see("vm-running-again")

    # The same page in English and back in Korean, switched on the page; times are KST.
    assert assert_times_are_kst(page) >= 2
    page.get_by_label(ko("Language")).select_option("en")
    page.get_by_role("button", name=ko("Change")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My VM")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(card).to_contain_text(vm_status("running", "en"))
    assert assert_times_are_kst(page) >= 2
    journey.see("vm-in-english")
    page.get_by_label("Language").select_option("ko")
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(ko("My VM"))
    expect(page.locator("html")).to_have_attribute("lang", "ko")

    # A new password; the old one stops working, the new one works.
    page.get_by_role("navigation").get_by_role("link", name=ko("Password")).click()
    journey.see("password-form")
    new_password = "Nw-" + secrets.token_urlsafe(12)
    TYPED_PASSWORDS.add(new_password)
    page.get_by_label(ko("Current password")).fill(password)
    page.get_by_label(re.compile(rf"^{re.escape(ko('New password'))}:?$")).fill(new_password)
    page.get_by_label(ko("New password, again")).fill(new_password)
    page.get_by_role("button", name=ko("Change password")).click()
    expect(
        page.get_by_role("status").filter(
            has_text=ko(
                "Your cloud password was changed. Use the new one from now on, here "
                "and in the cloud."
            )
        )
    ).to_be_visible()
    journey.see("password-changed")
    page.get_by_role("button", name=ko("Log out")).click()
    expect(page.get_by_role("heading", name=ko("Log in"))).to_be_visible()
    login(page, username, password)
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login/"))
    journey.see("old-password-refused")
    login(page, username, new_password)
    expect(page.get_by_role("heading", level=1)).to_have_text(ko("My VM"))
    expect(card).to_contain_text(instance.name)

    # Soldier B, logged in, cannot open A's VM by its URL.
    other = onboarded("25-3100002", "한지우")
    other_password = "Ot-" + secrets.token_urlsafe(12)
    services.soldier_password_reset(soldier=other, new_password=other_password)
    TYPED_PASSWORDS.add(other_password)
    b = journey.open()
    b.goto("/login/")
    login(b, other.keystone_user_name, other_password)
    expect(b.get_by_role("heading", level=1)).to_have_text(ko("My VM"))
    expect(b.get_by_text(instance.name)).to_have_count(0)
    for path in (f"/vm/{instance.pk}/card/", f"/vm/{instance.pk}/stop/"):
        response = b.goto(path)
        assert response is not None
        assert response.status == 404, path
    journey.see("other-soldier-gets-404", b)
    # And a POST with B's own valid CSRF token is refused the same way.
    csrf = next(c["value"] for c in b.context.cookies() if c["name"] == "csrftoken")
    refused = b.request.post(f"/vm/{instance.pk}/stop/", headers={"X-CSRFToken": csrf})
    assert refused.status == 404
    instance.refresh_from_db()
    assert instance.pending_action in ("", None)

    assert journey.blocking_violations() == []
    assert leaks(stack, [journey]) == []
