"""The client's address, as the portal's nearest trusted proxy saw it: for django-axes's
lockouts and for who may read /metrics."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The address a client cannot forge.

    Behind a proxy (``BEHIND_TLS_PROXY``) the settings say how many proxies there are
    (``AXES_IPWARE_PROXY_COUNT``) and where they put the client (``AXES_IPWARE_META_PRECEDENCE_
    ORDER``). Each proxy appends the address it saw to X-Forwarded-For, so the entry that many
    places from the right is the one a client cannot forge; anything left of it can be. Axes
    reads those settings only through django-ipware, which the portal does not install: without
    this function every failed login behind the proxy counted against the proxy's address, so
    anyone could lock a soldier out for everyone.
    """
    proxies = settings.AXES_IPWARE_PROXY_COUNT or 0
    for key in settings.AXES_IPWARE_META_PRECEDENCE_ORDER:
        value = request.META.get(key, "")
        if not value:
            continue
        if key == "REMOTE_ADDR":
            return str(value)
        hops = [hop.strip() for hop in str(value).split(",") if hop.strip()]
        if proxies and len(hops) >= proxies:
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR", ""))
