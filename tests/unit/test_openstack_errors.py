"""Every service's error body becomes the right typed error, with message and request id."""

from __future__ import annotations

import json

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from portal.openstack import (
    BadRequest,
    Conflict,
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    OpenStackError,
    QuotaExceeded,
    Unauthorized,
    Unavailable,
)
from portal.openstack.errors import error_from_response


def _response(
    status: int, body: object, headers: dict[str, str] | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    response.headers = CaseInsensitiveDict(headers or {})
    response.url = "http://cloud.test/x"
    return response


CASES = [
    # Keystone (measured bodies)
    (
        400,
        {
            "error": {
                "code": 400,
                "message": "'user' is a required property",
                "title": "Bad Request",
            }
        },
        BadRequest,
        "'user' is a required property",
    ),
    (
        401,
        {
            "error": {
                "code": 401,
                "title": "Unauthorized",
                "message": "The request you have made requires authentication.",
            }
        },
        Unauthorized,
        "The request you have made requires authentication.",
    ),
    (
        403,
        {
            "error": {
                "code": 403,
                "title": "Forbidden",
                "message": "You are not authorized to perform the requested action: "
                "identity:list_users.",
            }
        },
        Forbidden,
        "You are not authorized to perform the requested action: identity:list_users.",
    ),
    (
        404,
        {"error": {"code": 404, "title": "Not Found", "message": "Could not find user: 9fe1d3."}},
        NotFound,
        "Could not find user: 9fe1d3.",
    ),
    (
        405,
        {
            "error": {
                "code": 405,
                "title": "Method Not Allowed",
                "message": "The method is not allowed for the requested URL.",
            }
        },
        MethodNotAllowed,
        "The method is not allowed for the requested URL.",
    ),
    (
        409,
        {
            "error": {
                "code": 409,
                "title": "Conflict",
                "message": "Conflict occurred attempting to "
                "store user - Duplicate entry found with name x at domain ID default.",
            }
        },
        Conflict,
        "Conflict occurred attempting to store user - Duplicate entry found with name x at "
        "domain ID default.",
    ),
    # Nova
    (
        404,
        {"itemNotFound": {"code": 404, "message": "Instance 43fd359d could not be found."}},
        NotFound,
        "Instance 43fd359d could not be found.",
    ),
    (
        409,
        {
            "conflictingRequest": {
                "code": 409,
                "message": "Cannot 'stop' instance s1 while it is in vm_state stopped",
            }
        },
        Conflict,
        "Cannot 'stop' instance s1 while it is in vm_state stopped",
    ),
    (
        403,
        {
            "forbidden": {
                "code": 403,
                "message": "Policy doesn't allow "
                "os_compute_api:servers:index:get_all_tenants to be performed.",
            }
        },
        Forbidden,
        "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed.",
    ),
    (
        403,
        {
            "forbidden": {
                "code": 403,
                "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 "
                "instances",
            }
        },
        QuotaExceeded,
        "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
    ),
    (
        406,
        {
            "computeFault": {
                "code": 406,
                "message": "Version 2.200 is not supported by the API. "
                "Minimum is 2.1 and maximum is 2.104.",
            }
        },
        NotAcceptable,
        "Version 2.200 is not supported by the API. Minimum is 2.1 and maximum is 2.104.",
    ),
    (
        500,
        {"computeFault": {"code": 500, "message": "Unexpected API Error."}},
        Unavailable,
        "Unexpected API Error.",
    ),
    (
        413,
        {"overLimit": {"code": 413, "message": "Rate limit", "retryAfter": "5"}},
        QuotaExceeded,
        "Rate limit",
    ),
    # Neutron
    (
        404,
        {
            "NeutronError": {
                "type": "FloatingIPNotFound",
                "message": "Floating IP 2f24 could not be found",
                "detail": "",
            }
        },
        NotFound,
        "Floating IP 2f24 could not be found",
    ),
    (
        409,
        {
            "NeutronError": {
                "type": "OverQuota",
                "message": "Quota exceeded for resources: ['floatingip'].",
                "detail": "",
            }
        },
        QuotaExceeded,
        "Quota exceeded for resources: ['floatingip'].",
    ),
    (
        409,
        {
            "NeutronError": {
                "type": "RouterInUse",
                "message": "Router r1 still has ports",
                "detail": "",
            }
        },
        Conflict,
        "Router r1 still has ports",
    ),
    (
        404,
        {"type": "HTTPNotFound", "message": "The resource could not be found.", "detail": ""},
        NotFound,
        "The resource could not be found.",
    ),
    # Glance (webob JSON, code as a string)
    (
        404,
        {"message": "No image found with ID 1bea", "code": "404 Not Found", "title": "Not Found"},
        NotFound,
        "No image found with ID 1bea",
    ),
    # Proxies and the like
    (
        503,
        "<html><body>Service Unavailable</body></html>",
        Unavailable,
        "<html><body>Service Unavailable</body></html>",
    ),
    (418, "", OpenStackError, "Teapot"),
]


@pytest.mark.parametrize(("status", "body", "cls", "message"), CASES)
def test_error_bodies(status: int, body: object, cls: type[OpenStackError], message: str) -> None:
    response = _response(status, body, {"x-openstack-request-id": "req-7e0f"})
    if status == 418:
        response.reason = "Teapot"
    error = error_from_response(response, "GET")
    assert type(error) is cls
    assert error.message == message
    assert error.status == status
    assert error.request_id == "req-7e0f"
    assert str(error).startswith(f"HTTP {status}:")
    assert str(error).endswith("(request req-7e0f)")


def test_nova_compute_request_id_is_used_when_no_openstack_one() -> None:
    response = _response(
        404, {"itemNotFound": {"code": 404, "message": "x"}}, {"X-Compute-Request-Id": "req-nova"}
    )
    assert error_from_response(response, "GET").request_id == "req-nova"


def test_error_type_names_the_fault() -> None:
    response = _response(
        409,
        {"NeutronError": {"type": "FloatingIPPortAlreadyAssociated", "message": "m", "detail": ""}},
    )
    error = error_from_response(response, "POST")
    assert error.error_type == "FloatingIPPortAlreadyAssociated"
    assert error.method == "POST"
