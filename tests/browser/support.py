"""What the journeys share: the portal's own words (from its catalogue) and logging in."""

from __future__ import annotations

import re

from django.utils import translation
from playwright.sync_api import Page, expect

from tests.browser.journey import PATIENCE_MS


def ko(message: str) -> str:
    """The Korean the page shows for ``message``, from the same catalogue the portal uses."""
    with translation.override("ko"):
        return translation.gettext(message)


def words(message: str, plural: str = "", *, language: str = "ko") -> re.Pattern[str]:
    """A pattern for a message with placeholders (``%(x)s`` parts match anything); with
    ``plural``, the plural form of a ``{% blocktranslate count %}`` message."""
    with translation.override(language):
        text = translation.ngettext(message, plural, 2) if plural else translation.gettext(message)
    parts = re.split(r"%\(\w+\)[sd]|\{\{\s*\w+\s*\}\}", text)
    return re.compile(".*?".join(re.escape(p) for p in parts))


def staff_login(page: Page, username: str, password: str) -> None:
    """Log in at the console's own login page (the visitor was sent there)."""
    page.get_by_label(ko("username")).fill(username)
    page.get_by_label(ko("Password")).fill(password)
    page.get_by_role("button", name=ko("Log in")).click()
    expect(page.get_by_role("button", name=ko("Log out"))).to_be_visible()


def wait_for_batch_to_finish(page: Page) -> None:
    """The batch page's bar reaches its maximum by itself (htmx polls; nothing reloads)."""
    page.evaluate("window.__journeyMark = 'not reloaded'")
    bar = page.get_by_role("progressbar")
    expect(bar).to_be_visible()
    total = bar.get_attribute("max")
    expect(bar).to_have_attribute("value", str(total), timeout=PATIENCE_MS)
    expect(page.get_by_text("(100%)")).to_be_visible()
    assert page.evaluate("window.__journeyMark") == "not reloaded", "the batch page reloaded"


def vm_status(key: str, language: str = "ko") -> str:
    """The merged status label of ``key`` ("running", "building", ...) as the pages show it."""
    from portal.status import STATUSES, StatusKey

    with translation.override(language):
        return str(STATUSES[StatusKey(key)].label)
