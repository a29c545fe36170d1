"""``format_html`` for the console's per-row cells: Django's, without its per-argument wrappers.

Django's ``format_html`` escapes each argument through ``conditional_escape`` and ``escape``,
both wrapped to accept lazy strings; over a page of rows (a dozen cells each, several arguments
per cell) those wrappers were a good part of a list's time. This one does the same thing in
place: lazy strings are made text, anything with ``__html__`` (safe strings) is taken as it is,
everything else is made text and HTML-escaped exactly as ``django.utils.html.escape`` does.
``tests/unit/test_markup.py`` holds it to Django's output.
"""

from __future__ import annotations

from html import escape
from typing import Any

from django.utils.functional import Promise
from django.utils.safestring import SafeString


def conditional_escape(value: Any) -> str:
    """``django.utils.html.conditional_escape``."""
    if isinstance(value, Promise):
        value = str(value)
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return escape(str(value))


def format_html(format_string: str, *args: Any) -> SafeString:
    """``django.utils.html.format_html`` with positional arguments."""
    if not args:
        raise TypeError("args must be provided.")
    return SafeString(format_string.format(*[conditional_escape(a) for a in args]))
