"""The one base for the portal's own refusals: a translatable message and its parameters.

Cloud errors are typed in ``portal.openstack.errors``; this is the portal's side. The message is
stored as a msgid (``gettext_noop`` or a lazy string) and translated only when it is shown, so the
same refusal reads in Korean or English depending on who looks at it.
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext


def render(message: str | Promise, params: dict[str, Any] | None = None) -> str:
    """``message`` in the active language with its ``%(name)s`` placeholders filled."""
    text = gettext(message) if isinstance(message, str) else str(message)
    return text % params if params else text


class Refusal(Exception):
    """The portal will not do this; ``str()`` is a sentence for people in the active language."""

    def __init__(self, message: str | Promise, /, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def __str__(self) -> str:
        return render(self.message, self.params)
