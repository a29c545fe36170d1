"""The browser-side protections on every kind of answer the portal gives.

Every page the every-URL table names, asked by each kind of visitor (console pages, soldier
pages, login, htmx partials, redirects, 403/404/405 answers, exports, the health probe), carries
Django's Content-Security-Policy with no inline or evaluated script, refuses framing, keeps the
referrer to the portal and forbids content sniffing; and every script in its HTML is a file of
the portal's own or carries the answer's nonce, with no inline event handler. Over HTTPS (the
production settings behind a TLS proxy, in gunicorn) HSTS is sent and every cookie is Secure.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
import requests
from django.test import Client
from django.urls import path

from codesquare import urls as project_urls
from tests.conftest import run_manage
from tests.integration.conftest import PortalCloud, make_soldier
from tests.security.test_every_url import ROUTES, Session, build_world, client_for
from tests.test_healthz import gunicorn

PAGE_ROLES = ("anonymous", "soldier_a", "viewer", "operator")


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


class _Scripts(HTMLParser):
    """The script tags and the inline event handlers (``onclick=``) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.javascript_urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.javascript_urls.append(f"<{tag} {name}={value}>")


def protection_problems(response: Any) -> list[str]:
    """What a response lacks of the portal's browser-side protections."""
    problems = []
    policy = response.headers.get("Content-Security-Policy", "")
    directives = csp_directives(policy)
    scripts = directives.get("script-src", directives.get("default-src", []))
    if not policy:
        problems.append("no Content-Security-Policy")
    for weak in ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:"):
        if weak in scripts:
            problems.append(f"script-src allows {weak}")
    if policy and directives.get("frame-ancestors") != ["'none'"]:
        problems.append("frame-ancestors is not 'none'")
    if policy and directives.get("object-src") != ["'none'"]:
        problems.append("object-src is not 'none'")
    html = response.headers.get("Content-Type", "").startswith("text/html")
    expected = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
    if html:
        # The health probe answers before the clickjacking middleware; its JSON is never framed
        # anyway (frame-ancestors 'none').
        expected.update({"X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin"})
    for header, value in expected.items():
        if response.headers.get(header) != value:
            problems.append(f"{header} is {response.headers.get(header)!r}, not {value!r}")
    if html:
        nonces = {w[len("'nonce-") : -1] for w in scripts if w.startswith("'nonce-")}
        page = _Scripts()
        page.feed(response.content.decode())
        for script in page.scripts:
            src = script.get("src") or ""
            if src and not re.match(r"^/(static|admin)/", src):
                problems.append(f"a script from elsewhere: {src}")
            inline_code = not src and script.get("type") != "application/json"
            if inline_code and script.get("nonce") not in nonces:
                problems.append("an inline script without the answer's nonce")
        problems += [f"an inline event handler {h}" for h in page.handlers]
        problems += [f"a javascript: URL {u}" for u in page.javascript_urls]
    return problems


@pytest.mark.django_db
@pytest.mark.parametrize("role", PAGE_ROLES)
def test_every_answer_to_every_role_carries_the_protections(role: str, portal_cloud: Any) -> None:
    session = Session(role, build_world())
    wrong: list[str] = []
    asked = 0
    for route in ROUTES:
        for case in route.cases:
            for htmx in (False, True) if case.htmx else (False,):
                response = session.raw("get", case, htmx=htmx)
                asked += 1
                wrong += [
                    f"GET {case.url(session.world)} ({response.status_code}): {problem}"
                    for problem in protection_problems(response)
                ]
    assert asked > 100
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db
def test_refusals_and_error_pages_carry_the_protections(portal_cloud: Any) -> None:
    world = build_world()
    viewer, soldier_b = client_for("viewer", world), client_for("soldier_b", world)
    token = viewer.cookies["csrftoken"].value
    answers = {
        "403 (a viewer's action)": viewer.post("/admin/sync/", {"csrfmiddlewaretoken": token}),
        "403 (CSRF)": viewer.post("/admin/sync/"),
        "404 (someone else's VM)": soldier_b.get(f"/vm/{world.vm_a.pk}/card/"),
        "404 (no such page)": Client().get("/no-such-page/"),
        "405 (wrong method)": Client().get("/logout/"),
        "health probe": Client().get("/healthz"),
        "health probe, any host": Client().get("/healthz", headers={"host": "10.0.0.5"}),
    }
    assert answers["403 (a viewer's action)"].status_code == 403
    assert answers["403 (CSRF)"].status_code == 403
    assert answers["404 (someone else's VM)"].status_code == 404
    assert answers["health probe, any host"].status_code == 200
    wrong = [f"{kind}: {p}" for kind, r in answers.items() for p in protection_problems(r)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db
def test_the_503_login_page_carries_the_protections(
    devcloud: Any, portal_cloud: PortalCloud
) -> None:
    portal_cloud.faults.add(method="POST", path="/auth/tokens", status=503)
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    # A soldier's name: any other name is refused before Keystone is asked.
    soldier = make_soldier()
    response = client.post(
        "/login/",
        {
            "username": soldier.keystone_user_name,
            "password": "pw",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 503
    assert protection_problems(response) == []


def test_over_https_the_production_settings_send_hsts_and_only_secure_cookies(
    child_env: dict[str, str],
) -> None:
    child_env.update(BEHIND_TLS_PROXY="true", ALLOWED_HOSTS="portal.codesquare.example")
    # As a deployment does: the manifest the production static storage reads.
    done = run_manage("collectstatic", "--noinput", env=child_env)
    assert done.returncode == 0, done.stderr[-2000:]
    host = {"Host": "portal.codesquare.example"}
    tls = {**host, "X-Forwarded-Proto": "https"}
    with gunicorn(child_env) as url:
        plain = requests.get(url + "/login/", headers=host, timeout=10, allow_redirects=False)
        probe = requests.get(url + "/healthz", headers=host, timeout=10, allow_redirects=False)
        login = requests.get(url + "/login/", headers=tls, timeout=10, allow_redirects=False)
        # A client's cookie jar keeps Secure cookies away from this plain loopback URL: send the
        # CSRF cookie back by hand, as the browser on the far side of the proxy would.
        token = re.search(r"csrftoken=(\w+)", login.headers["Set-Cookie"])
        assert token is not None, login.headers
        switch = requests.post(
            url + "/i18n/setlang/",
            {"language": "en", "csrfmiddlewaretoken": token.group(1)},
            headers={
                **tls,
                "Referer": "https://portal.codesquare.example/login/",
                "Cookie": f"csrftoken={token.group(1)}",
            },
            timeout=10,
            allow_redirects=False,
        )

    # Plain HTTP is sent to HTTPS, except the load balancer's probe.
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://portal.codesquare.example/login/"
    assert probe.status_code == 200
    assert probe.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in probe.headers  # never over plain HTTP
    assert login.status_code == 200
    assert login.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert protection_problems(login) == []
    assert switch.status_code == 302
    cookies = [*login.raw.headers.getlist("Set-Cookie"), *switch.raw.headers.getlist("Set-Cookie")]
    names = {c.split("=", 1)[0] for c in cookies}
    assert {"csrftoken", "django_language"} <= names
    for cookie in cookies:
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert "secure" in flags, cookie
        assert "samesite=lax" in flags, cookie
    assert not [
        c for c in cookies if c.startswith("django_language") and "httponly" not in c.lower()
    ]


def _fails(request: Any) -> Any:
    raise RuntimeError("a view that fails")


# The project's pages plus one that fails, for the 500 page (see the test below).
urlpatterns = [path("fails/", _fails), *project_urls.urlpatterns]


@pytest.mark.django_db
@pytest.mark.urls("tests.security.test_headers")
def test_the_500_page_carries_the_protections_and_tells_nothing() -> None:
    response = Client(raise_request_exception=False).get("/fails/")

    assert response.status_code == 500
    assert protection_problems(response) == []
    assert "a view that fails" not in response.content.decode()
