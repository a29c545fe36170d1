"""The portal's refusals share one base and read the same whichever class carries them."""

from typing import Any

import pytest
from django.utils import translation
from django.utils.translation import gettext_lazy, gettext_noop

from portal.errors import Refusal, render
from portal.rosterfile.read import RosterFileError, read_table
from portal.services.selfservice import LoginRefused
from portal.validation import Problem, zone_problem

ZONE = gettext_noop("The availability zone %(zone)s is not one the portal may use (%(allowed)s).")


@pytest.mark.parametrize("kind", [RosterFileError, LoginRefused])
def test_the_portals_refusals_are_one_kind_carrying_message_and_params(
    kind: type[Refusal],
) -> None:
    refusal = kind(gettext_noop("The file is empty."), rows=3)
    assert isinstance(refusal, Refusal)
    assert (refusal.message, refusal.params) == ("The file is empty.", {"rows": 3})


def test_a_roster_file_error_with_a_lazy_message_reads_in_the_active_language() -> None:
    with pytest.raises(RosterFileError) as caught:
        read_table(b"", filename="roster.csv", max_rows=10)
    with translation.override("ko"):
        assert str(caught.value) == "빈 파일입니다."
    with translation.override("en"):
        assert str(caught.value) == "The file is empty."
    lazy = RosterFileError(gettext_lazy("Rows: %(count)s"), count=2)
    assert str(lazy) == "Rows: 2"


def test_a_login_refusal_keeps_its_msgid_for_the_login_page() -> None:
    message = gettext_noop(
        "Your cloud account is not registered with the portal. Ask staff to add you."
    )
    refusal = LoginRefused(message)
    assert refusal.message is message
    assert str(refusal) == render(message)


def test_a_problem_reads_like_a_refusal_of_the_same_message(settings: Any) -> None:
    settings.OPENSTACK_ALLOWED_ZONES = ["nova"]
    problem = zone_problem("elsewhere")
    assert problem == Problem(ZONE, {"zone": "elsewhere", "allowed": "nova"})
    for language in ("ko", "en"):
        with translation.override(language):
            assert str(problem) == str(Refusal(problem.message, **problem.params))
            assert "elsewhere" in str(problem)
