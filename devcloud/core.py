"""Request/response types, routing, per-service error bodies and time formats shared by the APIs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

# The HTTP reason phrases Keystone and webob put in "title".
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Nova names its error wrapper after the webob fault class.
NOVA_FAULT_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

NEUTRON_TYPES = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "HTTPForbidden",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    409: "HTTPConflict",
    500: "HTTPInternalServerError",
    503: "ServiceUnavailable",
}

AUTH_REQUIRED = "The request you have made requires authentication."


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or bytes sent as-is, or None for no body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class ApiError(Exception):
    """An error response already shaped the way the owning service shapes it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def keystone_error(status: int, message: str, **headers: str) -> ApiError:
    body = {"error": {"code": status, "message": message, "title": TITLES.get(status, "Error")}}
    return ApiError(Response(status, body, dict(headers)))


def nova_error(status: int, message: str) -> ApiError:
    key = NOVA_FAULT_KEYS.get(status, "computeFault")
    return ApiError(Response(status, {key: {"code": status, "message": message}}))


def neutron_error(status: int, kind: str, message: str) -> ApiError:
    body = {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    return ApiError(Response(status, body))


def glance_error(status: int, message: str, accept: str) -> ApiError:
    """webob renders Glance errors as JSON only when the client asks for it."""
    title = TITLES.get(status, "Error")
    if "json" in accept:
        return ApiError(
            Response(status, {"message": message, "code": f"{status} {title}", "title": title})
        )
    html = (
        f"<html>\n <head>\n  <title>{status} {title}</title>\n </head>\n <body>\n"
        f"  <h1>{status} {title}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>"
    )
    return ApiError(Response(status, html.encode(), content_type="text/html; charset=UTF-8"))


def placement_error(status: int, title: str, detail: str) -> ApiError:
    """Placement's JSON errors: a list of ``{"status", "title", "detail", "code"}``."""
    body = {
        "errors": [
            {
                "status": status,
                "title": title,
                "detail": detail,
                "code": "placement.undefined_code",
            }
        ]
    }
    return ApiError(Response(status, body))


def service_error(service: str, status: int, message: str, accept: str = "") -> ApiError:
    """An error in the given service's own envelope (used for injected faults and 404s)."""
    if service == "compute":
        return nova_error(status, message)
    if service == "network":
        return neutron_error(status, NEUTRON_TYPES.get(status, "HTTPError"), message)
    if service == "image":
        return glance_error(status, message, accept)
    if service == "placement":
        return placement_error(status, TITLES.get(status, "Error"), message)
    return keystone_error(status, message)


@dataclass
class Request:
    method: str
    service: str  # identity | compute | network | image | placement | control
    path: str  # the path below the service prefix, e.g. "/v2.1/servers/detail"
    raw_query: str
    headers: Message
    body: bytes
    base_url: str  # scheme://host:port of this devcloud, for links and the catalog
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4()}")
    params: dict[str, str] = field(default_factory=dict)
    token: Any = None  # set by the auth step: a devcloud.identity.Token
    microversion: tuple[int, int] = (2, 1)

    def __post_init__(self) -> None:
        self.query: dict[str, list[str]] = parse_qs(self.raw_query, keep_blank_values=True)

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def q_all(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def accept(self) -> str:
        return self.headers.get("Accept", "") or ""


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    public: bool


class Router:
    """Method + path-regex routing that tells 404 (no such path) from 405 (wrong method)."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, public: bool = False) -> None:
        """Register a route; public routes (discovery, token issue) need no token."""
        self._routes.append(Route(method, re.compile(f"^{pattern}/?$"), handler, public))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """The route and path parameters, or None plus the methods the path allows."""
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.match(path)
            if not found:
                continue
            if route.method == method:
                return route, found.groupdict(), []
            allowed.append(route.method)
        return None, {}, allowed


def now() -> float:
    return datetime.now(UTC).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def iso_keystone(ts: float) -> str:
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_z(ts: float) -> str:
    """Nova created/updated, Neutron and Glance times: whole seconds with Z."""
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_naive(ts: float | None) -> str | None:
    """Nova launched_at/terminated_at: naive UTC with microseconds, no offset."""
    return None if ts is None else _dt(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")


def parse_time(text: str) -> float:
    """Accept Z, +hh:mm, or no offset (UTC); with or without fractions. Raises ValueError."""
    value = text.strip().replace(" ", "+")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def new_id() -> str:
    return str(uuid.uuid4())


def new_hex_id() -> str:
    """Keystone ids are uuid4 hex without dashes."""
    return uuid.uuid4().hex


TRUE_WORDS = {"1", "true", "t", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "f", "no", "n", "off"}


def page(
    items: list[dict[str, Any]], limit: int | None, marker: str | None
) -> tuple[list[dict[str, Any]], bool] | None:
    """The items after marker, at most limit of them, and whether more remain.

    None means the marker is not among the items (each service words that error itself).
    """
    start = 0
    if marker:
        for index, item in enumerate(items):
            if item["id"] == marker:
                start = index + 1
                break
        else:
            return None
    rest = items[start:]
    if limit is None:
        return rest, False
    return rest[:limit], len(rest) > limit


class Service:
    """A service's routes plus hooks run around every routed request (e.g. microversions)."""

    router: Router

    def before(self, req: Request) -> None:
        """Validate per-service request headers before the handler runs."""

    def after(self, req: Request, response: Response) -> None:
        """Add per-service response headers, also to error responses."""
