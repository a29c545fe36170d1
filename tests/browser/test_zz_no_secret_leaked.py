"""Last (by its name): no cloud credential and no typed password in anything the journeys left.

Each journey already checks its own pages, cookies and database rows before its rows are
flushed; this looks at the whole package's output once more, the logs being complete only now.
"""

from __future__ import annotations

from tests.browser.conftest import JOURNEYS, TYPED_PASSWORDS, Stack, leaks
from tests.secret_scan import scan


def test_no_credential_is_in_any_log_page_or_cookie_of_the_journeys(
    stack: Stack, browser_name: str
) -> None:
    # browser_name: pytest-playwright's parameter keeps this test in the journeys' group when
    # pytest reorders tests by parameter, so the package's deployment is set up only once.
    pages = [p for j in JOURNEYS for p in j.html_saved]
    assert pages, "nothing to look through: run the whole tests/browser package"
    assert all(log.stat().st_size > 0 for log in stack.logs), stack.logs
    assert len(TYPED_PASSWORDS) >= 2

    assert leaks(stack, JOURNEYS) == []

    # The scan does find a password where one is meant to be: the console's "shown once" page.
    shown = [p for j in JOURNEYS for p in j.secret_pages]
    if shown:
        assert scan(TYPED_PASSWORDS, files=shown, database=False)
