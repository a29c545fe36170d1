"""The one policy every new cloud password passes, and the passwords the portal makes itself.

A soldier's own change, a staff reset and a first password all go through ``problems``: at least
12 characters, not like the username, not a common or all-digit password (Django's validators,
with the portal's own list in ``CLOUD_PASSWORD_VALIDATORS``). Keystone may refuse more (its
``[security_compliance] password_regex``); its refusal is shown in the person's language too.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import get_password_validators
from django.core.exceptions import ValidationError

# No look-alikes: 0/O/o, 1/l/I are left out, so a password read off a slip or aloud is typed
# right the first time.
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnpqrstuvwxyz"
_DIGITS = "23456789"
ALPHABET = _UPPER + _LOWER + _DIGITS
GROUP, GROUPS = 4, 4


def _validators() -> list[Any]:
    return get_password_validators(settings.CLOUD_PASSWORD_VALIDATORS)


def problems(password: str, *, username: str) -> list[str]:
    """Why ``password`` may not be the cloud password of ``username``, in the active language."""
    found: list[str] = []
    for validator in _validators():
        try:
            # An unsaved user: what Django's similarity check compares the password with.
            validator.validate(password, get_user_model()(username=username))
        except ValidationError as error:
            found.extend(error.messages)
    return found


def rules() -> list[str]:
    """The policy in words, for the form before anyone submits it."""
    return [str(validator.get_help_text()) for validator in _validators()]


def minimum_length() -> int:
    lengths = [getattr(v, "min_length", 0) for v in _validators()]
    return max(lengths, default=0)


def generate() -> str:
    """A new password in groups of four a person can read aloud, e.g. ``Rk7m-2Hqe-...``.

    16 characters of a 56-letter alphabet (about 93 bits), with a capital, a small letter and a
    digit in it, so the usual Keystone password rules take it.
    """
    while True:
        chars = [secrets.choice(ALPHABET) for _ in range(GROUP * GROUPS)]
        if (
            any(c in _UPPER for c in chars)
            and any(c in _LOWER for c in chars)
            and any(c in _DIGITS for c in chars)
        ):
            return "-".join("".join(chars[n : n + GROUP]) for n in range(0, GROUP * GROUPS, GROUP))
