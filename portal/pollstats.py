"""Counting polls: how many answered with news and how many with "unchanged".

Each poll view calls ``record_poll`` once per answer. It does nothing yet: the metrics export
hooks in here (a counter per view and outcome), so the views need not change when it does.
"""

from __future__ import annotations


def record_poll(view: str, changed: bool) -> None:
    """One poll of ``view`` was answered, with news (``changed``) or as unchanged."""
