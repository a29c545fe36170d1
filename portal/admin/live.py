"""Pages that follow work in progress: a full render, or for htmx only the live part.

The live part polls every 2 s while something is in transition; the answer that finds nothing
pending is sent with htmx's stop-polling status (286), so a finished page stops asking. One
persistent ``role="status"`` element announces milestones: an out-of-band swap fills it only
when the milestone differs from the one the poll says it has already seen.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django_htmx.http import HttpResponseStopPolling

from portal.metrics import record_poll_answer


def live_response(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    polling: bool,
    milestone: str,
) -> HttpResponse:
    """The page (first load, no JavaScript) or its ``#live`` partial (an htmx poll)."""
    context = {
        **context,
        "polling": polling,
        "milestone": milestone,
        "announce": request.GET.get("seen") != milestone,
        "poll_url": _without_seen(request),
    }
    if getattr(request, "htmx", False):
        # Counted by whether the milestone moved; every one renders afresh (the card's polls
        # have a true "unchanged" answer, portal/selfservice/poll.py; staff are few).
        match = request.resolver_match
        record_poll_answer(match.view_name if match else template, changed=context["announce"])
    if not getattr(request, "htmx", False):
        response = render(request, template, context)
    elif polling:
        response = render(request, f"{template}#live", context)
    else:
        response = HttpResponseStopPolling(
            render_to_string(f"{template}#live", context, request=request)
        )
    response["Cache-Control"] = "no-store"
    return response


def _without_seen(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("seen", None)
    return request.path + (f"?{params.urlencode()}" if params else "")
