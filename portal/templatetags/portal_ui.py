"""Template helpers shared by the console and the soldier pages: times, statuses, durations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.html import format_html

from portal import status
from portal.models import power_state_label

register = template.Library()


@register.simple_tag
def kst(value: datetime | None, original: str = "", seconds: bool = False) -> str:
    """``<time>`` in Asia/Seoul, with the cloud's original string and UTC in its tooltip."""
    if value is None:
        return format_html('<span class="cs-none">{}</span>', "—")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        status.iso_utc(value),
        status.time_tooltip(value, original),
        status.format_kst(value, seconds=seconds),
    )


@register.simple_tag
def merged_status(instance: Any, audience: str = "staff") -> status.MergedStatus:
    """``{% merged_status instance "soldier" as st %}``."""
    return status.merged_status(instance, audience=status.Audience(audience))


@register.filter
def power_label(value: int | None) -> str:
    return power_state_label(value)


@register.filter
def duration(value: Any) -> str:
    return "" if value is None else status.format_duration(value)


@register.simple_tag
def uptime(instance: Any) -> str:
    delta = status.uptime(instance)
    return "" if delta is None else status.format_duration(delta)
