"""One policy for every new cloud password, and passwords people can read off a slip."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from portal import password_policy

LOOK_ALIKES = set("0Oo1lI")


def test_generated_passwords_come_in_four_groups_of_four_without_look_alikes() -> None:
    seen = set()
    for _ in range(500):
        password = password_policy.generate()
        assert re.fullmatch(r"[A-Za-z2-9]{4}(-[A-Za-z2-9]{4}){3}", password), password
        assert not LOOK_ALIKES & set(password)
        assert re.search(r"[A-Z]", password)
        assert re.search(r"[a-z]", password)
        assert re.search(r"[2-9]", password)
        assert password_policy.problems(password, username="soldier1") == []
        seen.add(password)
    assert len(seen) == 500


@pytest.mark.parametrize(
    ("password", "username", "expected"),
    [
        ("1", "soldier1", "at least 12 characters"),
        ("short-Pass1", "soldier1", "at least 12 characters"),
        ("k.minjun.2024", "k.minjun.2024", "too similar to the username"),
        ("123456789012345", "soldier1", "entirely numeric"),
        ("password1234", "soldier1", "too common"),
    ],
)
def test_the_policy_refuses_with_a_reason(password: str, username: str, expected: str) -> None:
    with translation.override("en"):
        found = password_policy.problems(password, username=username)
    assert any(expected in problem for problem in found), found


def test_the_policy_speaks_korean_first() -> None:
    with translation.override("ko"):
        found = password_policy.problems("1", username="soldier1")
        rules = password_policy.rules()
    assert any("12" in problem and "짧" in problem for problem in found), found
    assert any("12" in rule for rule in rules)


def test_a_good_password_passes_and_the_rules_name_the_length() -> None:
    assert password_policy.problems("Rain-over-Seoul-42", username="soldier1") == []
    assert password_policy.minimum_length() == 12
    with translation.override("en"):
        assert any("at least 12 characters" in rule for rule in password_policy.rules())
