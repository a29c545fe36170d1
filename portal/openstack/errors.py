"""One error hierarchy for every service, built from each service's own error body.

Keystone wraps errors in ``{"error": {...}}``, Nova in a key named after the fault
(``{"itemNotFound": {...}}``), Neutron in ``{"NeutronError": {...}}`` (and sometimes unwrapped),
Glance answers webob's ``{"message", "code", "title"}``. Callers catch these classes instead.
"""

from __future__ import annotations

import json
from typing import Any

import requests

REQUEST_ID_HEADERS = ("x-openstack-request-id", "x-compute-request-id")


class OpenStackError(Exception):
    """Base of every error raised by ``portal.openstack``.

    ``status`` is the HTTP status (None when no response arrived), ``message`` the service's own
    text, ``request_id`` the ``x-openstack-request-id`` to quote to the cloud's operators, and
    ``error_type`` the service's name for the fault (``itemNotFound``, ``OverQuota``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id
        self.method = method
        self.url = url
        self.error_type = error_type

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.insert(0, f"HTTP {self.status}:")
        if self.request_id:
            parts.append(f"(request {self.request_id})")
        return " ".join(parts)


class ConfigurationError(OpenStackError):
    """The connection settings are incomplete or contradictory."""


class EndpointNotFound(OpenStackError):
    """The service catalog has no endpoint for this service, interface and region."""


class BadRequest(OpenStackError):
    """400: the service rejected the request's content."""


class Unauthorized(OpenStackError):
    """401: bad credentials, or a token that stayed invalid after one re-authentication."""


class Forbidden(OpenStackError):
    """403: policy does not allow this call for the token's roles."""


class NotFound(OpenStackError):
    """404: no such resource (Nova and Neutron also say this for other projects' objects)."""


class MethodNotAllowed(OpenStackError):
    """405: no such route for this method (e.g. ``POST /v3/users/{id}``)."""


class NotAcceptable(OpenStackError):
    """406: e.g. a compute microversion outside the server's range."""


class Conflict(OpenStackError):
    """409: the resource's state does not allow this, or a duplicate."""


class QuotaExceeded(OpenStackError):
    """Over a quota: Nova says 403 "Quota exceeded", Neutron 409 ``OverQuota``, or 413/429."""


class Unavailable(OpenStackError):
    """The service could not answer: connection failure, timeout, or a 5xx status."""


class Timeout(Unavailable):
    """No answer within the request timeout."""


class IncompleteListing(OpenStackError):
    """A collection could not be read to its end (its next links loop, or never end).

    What was read is not the whole collection: nothing may be concluded from an item's absence.
    """


class WaitTimeout(OpenStackError):
    """``wait_for_server`` reached its deadline before the server got where it was waited for."""

    def __init__(self, message: str, *, last_status: str | None = None) -> None:
        super().__init__(message)
        self.last_status = last_status


_BY_STATUS: dict[int, type[OpenStackError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    409: Conflict,
    413: QuotaExceeded,
    429: QuotaExceeded,
}

_QUOTA_TYPES = {"OverQuota", "overLimit", "QuotaExceeded"}


def request_id_of(response: requests.Response) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return value
    return None


def _message_and_type(response: requests.Response) -> tuple[str, str | None]:
    """The service's own message and fault name, whichever service's shape the body has."""
    text = response.text or ""
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:  # Keystone
            return str(error["message"]), error.get("title")
        neutron = body.get("NeutronError")
        if isinstance(neutron, dict):
            return str(neutron.get("message", "")), neutron.get("type")
        if isinstance(neutron, str):  # very old Neutron sent a bare string
            return neutron, None
        placement = body.get("errors")
        if isinstance(placement, list) and placement and isinstance(placement[0], dict):
            first = placement[0]  # Placement: {"errors": [{"status", "title", "detail"}]}
            return str(first.get("detail") or first.get("title") or ""), first.get("code")
        if "message" in body and "type" in body:  # Neutron's unwrapped after-hook 404
            return str(body["message"]), str(body["type"])
        if "message" in body:  # Glance (webob JSON)
            return str(body["message"]), body.get("title")
        if len(body) == 1:  # Nova: {"itemNotFound": {"code", "message"}}
            ((key, inner),) = body.items()
            if isinstance(inner, dict) and "message" in inner:
                return str(inner["message"]), str(key)
    stripped = text.strip()
    if stripped:
        return stripped[:500], None
    return response.reason or f"HTTP {response.status_code}", None


def error_from_response(response: requests.Response, method: str) -> OpenStackError:
    """The typed error for a non-2xx response."""
    status = response.status_code
    message, error_type = _message_and_type(response)
    cls: type[OpenStackError]
    if error_type in _QUOTA_TYPES or (status == 403 and "quota exceeded" in message.lower()):
        cls = QuotaExceeded
    elif status >= 500:
        cls = Unavailable
    else:
        cls = _BY_STATUS.get(status, OpenStackError)
    return cls(
        message,
        status=status,
        request_id=request_id_of(response),
        method=method,
        url=response.url,
        error_type=error_type,
    )
