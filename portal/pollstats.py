"""How often htmx polls bring news: ``record_poll`` from each polled view (``portal.metrics``).

A poll whose answer is mostly "unchanged" is load spent on nothing; the counts show whether
a polling interval or a stop condition is worth revisiting.
"""

from __future__ import annotations

from portal import metrics


def record_poll(view: str, changed: bool) -> None:
    """Count one poll answer of ``view``: whether the polled part had changed since the last."""
    metrics.record_poll_answer(view, changed=changed)
