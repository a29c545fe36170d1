"""Every URL the resolver knows, for every role and every method.

The table below names each URL pattern of the project (the console's, Django admin's own, the
soldier pages', the htmx partials', login, logout, passwords, i18n, healthz, metrics) with the
real rows that fill its parameters and the answer each role gets. A pattern the table does not
know fails the test: nobody adds a page without saying who may open it.

For each request the test also checks that a refusal (302 to a login page, 302 from a soldier
page to the console, 403, 404, 405) wrote nothing (no Operation, no queued task, no other row)
and made no cloud call, and that no page view (GET) calls the cloud except the one page whose
job it is. Every POST first goes without its CSRF token, plain and as htmx sends it, and must be
refused by the CSRF check with nothing written; then it goes with the token.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from portal import tasks
from portal.models import (
    Batch,
    Drift,
    FloatingIP,
    Instance,
    Operation,
    Project,
    ProjectNetwork,
    RosterUpload,
    Soldier,
    SshKey,
    VmTemplate,
)
from portal.selfservice.cards import ACTIONS
from tests.console.conftest import ensure_groups, staff_user
from tests.integration.conftest import make_soldier, recorded_calls, unique

ROLES = ("anonymous", "soldier_a", "soldier_b", "viewer", "operator")
SOLDIERS = ("soldier_a", "soldier_b")
# What a refusal looks like: sent to a login page, sent from a soldier page to the console,
# forbidden, not found, method not allowed.
REFUSALS = {"login", "admin-login", "console", "403", "404", "405"}
OTHER_METHODS = ("put", "patch", "delete")
CSRF_ALPHABET = string.ascii_letters + string.digits


# --- the rows that fill the URLs ------------------------------------------------------------


@dataclass
class World:
    """Real rows for every kind of object a URL names (soldier A's VM, soldier B's, ...)."""

    a: Soldier
    b: Soldier
    vm_a: Instance
    vm_b: Instance
    template: Any
    withdrawn_template: Any
    spare_template: Any
    viewer: Any
    operator: Any
    batch: Batch
    drift: Drift
    operation: Operation
    floating_ip: FloatingIP
    network: ProjectNetwork
    upload: RosterUpload
    task: DBTaskResult
    group: Group
    attempt: AccessAttempt
    access_log: AccessLog
    failure_log: AccessFailureLog


def _vm_of(soldier: Soldier, template: VmTemplate) -> Instance:
    project = Project.objects.create(
        soldier=soldier, name=unique("cs-p"), keystone_id=secrets.token_hex(16)
    )
    return Instance.objects.create(
        project=project,
        owner=soldier,
        name=unique("vm"),
        template=template,
        server_id=unique("srv"),
        status="ACTIVE",
        power_state=1,
        floating_ip="203.0.113.7",
    )


def build_world() -> World:
    ensure_groups()
    template = VmTemplate.objects.create(name=unique("tpl"), image_id="img-1", flavor_id="fl-1")
    withdrawn = VmTemplate.objects.create(
        name=unique("old"), image_id="img-2", flavor_id="fl-2", is_active=False
    )
    a, b = make_soldier(), make_soldier()
    vm_a, vm_b = _vm_of(a, template), _vm_of(b, template)
    operator = staff_user("operators")
    operation = Operation.objects.create(kind=Operation.Kind.SYNC, instance=vm_a, soldier=a)
    tasks.operation_run.enqueue(operation_id=operation.pk)
    when = timezone.now()
    who = {"user_agent": "test", "ip_address": "127.0.0.1", "username": "someone"}
    return World(
        a=a,
        b=b,
        vm_a=vm_a,
        vm_b=vm_b,
        template=template,
        withdrawn_template=withdrawn,
        spare_template=VmTemplate.objects.create(
            name=unique("spare"), image_id="img-3", flavor_id="fl-3"
        ),
        viewer=staff_user("viewers"),
        operator=operator,
        batch=Batch.objects.create(kind="start", total=1),
        drift=Drift.objects.create(kind=Drift.Kind.DELETED_OUTSIDE, resource_id=unique("gone")),
        operation=operation,
        floating_ip=FloatingIP.objects.create(
            neutron_id=unique("fip"), address="203.0.113.7", instance=vm_a, created_by_portal=True
        ),
        network=ProjectNetwork.objects.create(project=vm_a.project, network_id=unique("net")),
        upload=RosterUpload.objects.create(
            uploaded_by=operator, filename="r.csv", data=b"x", sha256="0" * 64, size=1
        ),
        task=DBTaskResult.objects.get(),
        group=Group.objects.get(name="viewers"),
        attempt=AccessAttempt.objects.create(
            **who,
            http_accept="*/*",
            path_info="/login/",
            attempt_time=when,
            get_data="",
            post_data="",
            failures_since_start=1,
        ),
        access_log=AccessLog.objects.create(
            **who, http_accept="*/*", path_info="/login/", attempt_time=when
        ),
        failure_log=AccessFailureLog.objects.create(
            **who, http_accept="*/*", path_info="/login/", attempt_time=when
        ),
    )


def client_for(role: str, world: World) -> Client:
    client = Client(enforce_csrf_checks=True, headers={"Accept-Language": "en"})
    if role in SOLDIERS:
        soldier = world.a if role == "soldier_a" else world.b
        client.force_login(soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
    elif role in ("viewer", "operator"):
        client.force_login(getattr(world, role))
    # A CSRF cookie the way a page sets it; the POSTs below send it back or leave it out.
    client.cookies["csrftoken"] = "".join(secrets.choice(CSRF_ALPHABET) for _ in range(32))
    return client


# --- what each role gets ----------------------------------------------------------------------

Expect = dict[str, set[str]]


def by_role(**tokens: str) -> Expect:
    """``by_role(anonymous="login", soldier_a="200", ...)``; "a|b" accepts either answer."""
    assert set(tokens) == set(ROLES), tokens
    return {role: set(token.split("|")) for role, token in tokens.items()}


def everyone(token: str) -> Expect:
    return by_role(**dict.fromkeys(ROLES, token))


def staff(viewer: str, operator: str, *, outsider: str = "admin-login") -> Expect:
    """A console page: outsiders (anonymous people, soldiers) go to the admin's login page."""
    return by_role(
        anonymous=outsider, soldier_a=outsider, soldier_b=outsider, viewer=viewer, operator=operator
    )


def soldiers(a: str, b: str, *, staff_members: str = "console") -> Expect:
    """A soldier page: anonymous people log in first, staff are sent to the console."""
    return by_role(
        anonymous="login", soldier_a=a, soldier_b=b, viewer=staff_members, operator=staff_members
    )


@dataclass
class Case:
    """One URL of a pattern, with the answer each role gets to each method."""

    label: str
    url: Callable[[World], str]
    get: Expect
    post: Expect
    # PUT, PATCH and DELETE (one answer for all three, or one per method): the admin treats them
    # like GET; the soldier pages name their methods.
    other: Expect | dict[str, Expect] | None = None
    htmx: bool = False  # a partial htmx polls: asked again with HX-Request
    # The roster upload bounds the request's size before anything reads it, CSRF included, and
    # checks CSRF itself; the admin's login redirect comes first.
    csrf_after_login: bool = False
    ends_session: bool = False  # logout: the role logs in again afterwards
    calls_cloud: bool = False  # the one page whose GET asks the cloud (images, flavors)
    data: Callable[[World], dict[str, Any]] | None = None  # the POST's fields (default: none)

    def other_method(self, method: str) -> Expect:
        if self.other is None:
            return self.get
        if set(self.other) <= set(OTHER_METHODS):
            return self.other[method]  # type: ignore[return-value]
        return self.other  # type: ignore[return-value]


@dataclass
class Route:
    pattern: str
    cases: list[Case] = field(default_factory=list)


def fill(pattern: str, **values: Any) -> str:
    """The URL of a route pattern with its converters (``<int:pk>``, ``<id>``) filled in."""

    def value(match: re.Match[str]) -> str:
        return str(values[match.group(1)])

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, pattern)


def at_url(pattern: str, **values: Callable[[World], Any] | str) -> Callable[[World], str]:
    """``fill`` later, with values taken from the world when they are callables."""

    def url(w: World) -> str:
        return fill(pattern, **{k: v(w) if callable(v) else v for k, v in values.items()})

    return url


def admin_model(
    app: str,
    model: str,
    row: Callable[[World], Any],
    access: str,
    doomed: Callable[[World], Any] | None = None,
) -> list[Route]:
    """The seven URLs Django gives every registered ModelAdmin.

    access: "mirror" (everyone on staff looks, nobody adds, edits or deletes), "operated"
    (operators add and edit, nobody deletes), "templates" (operators also delete), or
    "superuser" (neither staff role has any permission on it). ``doomed`` is the row the delete
    page is asked about, when someone may really delete it.
    """
    base = f"admin/{app}/{model}/"
    read = staff("200", "200") if access != "superuser" else staff("403", "403")
    add = {
        "mirror": staff("403", "403"),
        "operated": staff("403", "200"),
        "templates": staff("403", "200"),
        "superuser": staff("403", "403"),
    }[access]
    change_post = add if access != "mirror" else staff("403", "403")
    delete = staff("403", "200") if access == "templates" else staff("403", "403")
    delete_post = staff("403", "302") if access == "templates" else delete

    def at(suffix: str, which: Callable[[World], Any] = row) -> Callable[[World], str]:
        return lambda w: fill(base + "<path:object_id>/" + suffix, object_id=which(w).pk)

    return [
        Route(base, [Case("changelist", lambda w: "/" + base, read, read)]),
        Route(base + "add/", [Case("add", lambda w: "/" + base + "add/", add, add)]),
        Route(
            base + "<path:object_id>/history/",
            [Case("history", at("history/"), read, read)],
        ),
        Route(
            base + "<path:object_id>/delete/",
            [Case("delete", at("delete/", doomed or row), delete, delete_post)],
        ),
        Route(
            base + "<path:object_id>/change/",
            [Case("change", at("change/"), read, change_post)],
        ),
        # Django's redirect from the old change URL (no permission of its own: it only redirects).
        Route(
            base + "<path:object_id>/",
            [Case("old change URL", at(""), staff("302", "302"), staff("302", "302"))],
        ),
    ]


def _soldier_routes() -> list[Route]:
    own = soldiers("200", "200")
    no_other = soldiers("405", "405")

    def card_case(label: str, vm: str, a: str, b: str) -> Case:
        return Case(
            label,
            lambda w: fill("vm/<int:pk>/card/", pk=getattr(w, vm).pk),
            get=soldiers(a, b),
            # The method is checked before the VM is looked up.
            post=soldiers("405", "405"),
            other=soldiers("405", "405"),
            htmx=True,
        )

    def action_cases() -> list[Case]:
        cases = []
        for slug in [*ACTIONS, "explode"]:
            for vm, owner in (("vm_a", "soldier_a"), ("vm_b", "soldier_b")):
                known = slug in ACTIONS

                def answer(role: str, ok: str, known: bool = known, owner: str = owner) -> str:
                    return ok if (known and role == owner) else "404"

                cases.append(
                    Case(
                        f"{slug} on {vm}",
                        at_url(
                            "vm/<int:pk>/<slug:action>/", pk=attrgetter(f"{vm}.pk"), action=slug
                        ),
                        get=soldiers(answer("soldier_a", "200"), answer("soldier_b", "200")),
                        post=soldiers(answer("soldier_a", "302"), answer("soldier_b", "302")),
                        other=soldiers("405", "405"),
                    )
                )
        return cases

    return [
        Route("", [Case("home", lambda w: "/", own, no_other, no_other)]),
        Route(
            "login/",
            [
                Case(
                    "login",
                    lambda w: "/login/",
                    get=by_role(
                        anonymous="200",
                        soldier_a="302",
                        soldier_b="302",
                        viewer="console",
                        operator="console",
                    ),
                    post=everyone("200"),
                    other=everyone("405"),
                )
            ],
        ),
        Route(
            "logout/",
            [
                Case(
                    "logout",
                    lambda w: "/logout/",
                    get=everyone("405"),
                    post=everyone("302"),
                    other=everyone("405"),
                    ends_session=True,
                )
            ],
        ),
        Route("password/", [Case("password", lambda w: "/password/", own, own, no_other)]),
        Route("ssh-key/", [Case("ssh key", lambda w: "/ssh-key/", own, own, no_other)]),
        Route(
            "request/<int:template_pk>/",
            [
                Case(
                    "offered template",
                    lambda w: fill("request/<int:template_pk>/", template_pk=w.template.pk),
                    get=own,
                    post=soldiers("302", "302"),
                    other=no_other,
                ),
                Case(
                    "withdrawn template",
                    lambda w: fill(
                        "request/<int:template_pk>/", template_pk=w.withdrawn_template.pk
                    ),
                    get=soldiers("404", "404"),
                    post=soldiers("404", "404"),
                    other=no_other,
                ),
            ],
        ),
        Route(
            "vm/<int:pk>/card/",
            [
                card_case("soldier A's card", "vm_a", "286|200", "404"),
                card_case("soldier B's card", "vm_b", "404", "286|200"),
            ],
        ),
        Route("vm/<int:pk>/<slug:action>/", action_cases()),
    ]


def _console_routes() -> list[Route]:
    read = staff("200", "200")
    live = staff("200|286", "200|286")  # 286: nothing is moving, htmx stops polling
    operate = staff("403", "302")
    post_only = staff("405", "405")
    return [
        Route(
            "admin/status/",
            [Case("status page", lambda w: "/admin/status/", live, read, htmx=True)],
        ),
        Route(
            "admin/sync/",
            [Case("sync now", lambda w: "/admin/sync/", post_only, operate, post_only)],
        ),
        Route(
            "admin/capacity/",
            [Case("measure capacity", lambda w: "/admin/capacity/", post_only, operate, post_only)],
        ),
        Route("admin/", [Case("dashboard", lambda w: "/admin/", read, read)]),
        Route(
            "admin/login/",
            [
                Case(
                    "admin login",
                    lambda w: "/admin/login/",
                    get=by_role(
                        anonymous="200",
                        soldier_a="200",
                        soldier_b="200",
                        viewer="302",
                        operator="302",
                    ),
                    post=everyone("200"),
                    # Django's LoginView takes PUT as a POST.
                    other={
                        "put": everyone("200"),
                        "patch": everyone("405"),
                        "delete": everyone("405"),
                    },
                )
            ],
        ),
        # Anyone the console does not know is sent from its logout to its index (then to login).
        Route(
            "admin/logout/",
            [
                Case(
                    "admin logout",
                    lambda w: "/admin/logout/",
                    get=staff("405", "405", outsider="console"),
                    post=staff("200", "200", outsider="console"),
                    other=staff("405", "405", outsider="console"),
                    ends_session=True,
                )
            ],
        ),
        Route(
            "admin/password_change/",
            [
                Case(
                    "staff password",
                    lambda w: "/admin/password_change/",
                    read,
                    read,
                    {"put": read, "patch": staff("405", "405"), "delete": staff("405", "405")},
                )
            ],
        ),
        Route(
            "admin/password_change/done/",
            [
                Case(
                    "staff password done",
                    lambda w: "/admin/password_change/done/",
                    read,
                    staff("405", "405"),
                    staff("405", "405"),
                )
            ],
        ),
        # Without its parameters the autocomplete answers 403 even to staff.
        Route(
            "admin/autocomplete/",
            [
                Case(
                    "autocomplete",
                    lambda w: "/admin/autocomplete/",
                    staff("403", "403"),
                    staff("405", "405"),
                    staff("405", "405"),
                )
            ],
        ),
        Route(
            "admin/jsi18n/",
            [
                Case(
                    "admin catalogue",
                    lambda w: "/admin/jsi18n/",
                    read,
                    staff("405", "405"),
                    staff("405", "405"),
                )
            ],
        ),
        # No portal model has a public page to show.
        Route(
            "admin/r/<path:content_type_id>/<path:object_id>/",
            [
                Case(
                    "view on site",
                    lambda w: fill(
                        "admin/r/<path:content_type_id>/<path:object_id>/",
                        content_type_id=ContentType.objects.get_for_model(Instance).pk,
                        object_id=w.vm_a.pk,
                    ),
                    staff("404", "404"),
                    staff("404", "404"),
                )
            ],
        ),
        *admin_model("auth", "group", lambda w: w.group, "superuser"),
        Route(
            "admin/auth/user/<id>/password/",
            [
                Case(
                    "user password",
                    lambda w: fill("admin/auth/user/<id>/password/", id=w.a.user.pk),
                    staff("403", "403"),
                    staff("403", "403"),
                )
            ],
        ),
        *admin_model("auth", "user", lambda w: w.a.user, "superuser"),
        *admin_model("django_tasks_database", "dbtaskresult", lambda w: w.task, "superuser"),
        *admin_model("axes", "accessattempt", lambda w: w.attempt, "superuser"),
        *admin_model("axes", "accesslog", lambda w: w.access_log, "superuser"),
        *admin_model("axes", "accessfailurelog", lambda w: w.failure_log, "superuser"),
        Route(
            "admin/portal/batch/<int:pk>/retry/",
            [
                Case(
                    "retry failed",
                    lambda w: fill("admin/portal/batch/<int:pk>/retry/", pk=w.batch.pk),
                    post_only,
                    operate,
                    post_only,
                )
            ],
        ),
        Route(
            "admin/portal/batch/<int:pk>/cancel/",
            [
                Case(
                    "cancel not started",
                    lambda w: fill("admin/portal/batch/<int:pk>/cancel/", pk=w.batch.pk),
                    post_only,
                    operate,
                    post_only,
                )
            ],
        ),
        *_batch_routes(),
        Route(
            "admin/portal/drift/<int:pk>/fix/<str:fix>/",
            [
                Case(
                    f"drift fix {fix}",
                    at_url(
                        "admin/portal/drift/<int:pk>/fix/<str:fix>/",
                        pk=attrgetter("drift.pk"),
                        fix=fix,
                    ),
                    read if known else staff("404", "404"),
                    operate if known else staff("404", "404"),
                )
                for fix, known in (("mark_terminated", True), ("ignore", True), ("adopt", False))
            ],
        ),
        *admin_model("portal", "drift", lambda w: w.drift, "mirror"),
        *admin_model("portal", "floatingip", lambda w: w.floating_ip, "mirror"),
        *_export_routes("instance"),
        *admin_model("portal", "instance", lambda w: w.vm_a, "mirror"),
        *admin_model("portal", "operation", lambda w: w.operation, "mirror"),
        *admin_model("portal", "project", lambda w: w.vm_a.project, "mirror"),
        *admin_model("portal", "projectnetwork", lambda w: w.network, "mirror"),
        Route(
            "admin/portal/soldier/roster/import/",
            [
                Case(
                    "roster upload",
                    lambda w: "/admin/portal/soldier/roster/import/",
                    staff("403", "200"),
                    staff("403", "200"),
                    csrf_after_login=True,
                )
            ],
        ),
        Route(
            "admin/portal/soldier/roster/<int:upload_id>/",
            [
                Case(
                    "roster preview",
                    lambda w: fill(
                        "admin/portal/soldier/roster/<int:upload_id>/", upload_id=w.upload.pk
                    ),
                    staff("403", "200"),
                    staff("403", "200"),
                )
            ],
        ),
        Route(
            "admin/portal/soldier/roster/<int:upload_id>/confirm/",
            [
                Case(
                    "roster confirm",
                    lambda w: fill(
                        "admin/portal/soldier/roster/<int:upload_id>/confirm/",
                        upload_id=w.upload.pk,
                    ),
                    post_only,
                    staff("403", "302"),
                    post_only,
                )
            ],
        ),
        *_export_routes("soldier"),
        *admin_model("portal", "soldier", lambda w: w.a, "operated"),
        Route(
            "admin/portal/vmtemplate/from-cloud/",
            [
                Case(
                    "template from the cloud",
                    lambda w: "/admin/portal/vmtemplate/from-cloud/",
                    staff("403", "200"),
                    staff("403", "200"),
                    calls_cloud=True,
                )
            ],
        ),
        *admin_model(
            "portal", "vmtemplate", lambda w: w.template, "templates", lambda w: w.spare_template
        ),
        Route(
            r"admin/^(?P<app_label>auth|django_tasks_database|axes|portal)/$",
            [
                Case("portal's app page", lambda w: "/admin/portal/", read, read),
                Case(
                    "auth's app page",
                    lambda w: "/admin/auth/",
                    staff("404", "404"),
                    staff("404", "404"),
                ),
            ],
        ),
        Route(
            "admin/(?P<url>.*)$",
            [
                Case(
                    "unknown console page",
                    lambda w: "/admin/no-such-page/",
                    staff("404", "404"),
                    staff("404", "404"),
                )
            ],
        ),
    ]


def _batch_routes() -> list[Route]:
    routes = admin_model("portal", "batch", lambda w: w.batch, "mirror")
    for route in routes:
        if route.pattern.endswith("/change/"):
            # The batch page is its change view, read-only: its buttons post to their own URLs.
            route.cases = [
                Case(
                    "batch page",
                    route.cases[0].url,
                    staff("200|286", "200|286"),
                    staff("403", "403"),
                    htmx=True,
                )
            ]
    return routes


def _export_routes(model: str) -> list[Route]:
    pattern = f"admin/portal/{model}/export/<str:file_format>/"
    return [
        Route(
            pattern,
            [
                Case(
                    f"{model} export {fmt}",
                    at_url(pattern, file_format=fmt),
                    staff(answer, answer),
                    staff(answer, answer),
                )
                for fmt, answer in (("csv", "200"), ("xlsx", "200"), ("pdf", "403"))
            ],
        )
    ]


ROUTES: list[Route] = [
    Route(
        "healthz",
        [Case("health", lambda w: "/healthz", everyone("200"), everyone("405"), everyone("405"))],
    ),
    # The test client asks from loopback, which may scrape whoever is logged in (tests/
    # test_metrics.py: other addresses get a 404).
    Route(
        "metrics",
        [Case("metrics", lambda w: "/metrics", everyone("200"), everyone("405"), everyone("405"))],
    ),
    *_console_routes(),
    Route(
        "i18n/setlang/",
        [Case("language switch", lambda w: "/i18n/setlang/", everyone("302"), everyone("302"))],
    ),
    *_soldier_routes(),
]


# --- the resolver -----------------------------------------------------------------------------


def resolver_patterns() -> list[str]:
    """Every URL pattern of the project, prefixes joined, in the resolver's order."""
    found: list[str] = []

    def walk(patterns: Any, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            else:
                assert isinstance(entry, URLPattern)
                found.append(prefix + str(entry.pattern))

    walk(get_resolver().url_patterns, "")
    return found


def test_the_table_names_every_url_pattern_of_the_project() -> None:
    known = [route.pattern for route in ROUTES]
    patterns = resolver_patterns()

    assert len(set(known)) == len(known), "a pattern is in the table twice"
    assert not set(patterns) - set(known), (
        "URL patterns nobody has said who may open (add them to ROUTES):\n"
        + "\n".join(sorted(set(patterns) - set(known)))
    )
    assert not set(known) - set(patterns), "patterns the project no longer has"
    assert all(route.cases for route in ROUTES)


# --- asking -----------------------------------------------------------------------------------


def answer(response: Any, role: str, url: str) -> str:
    """The kind of answer: a status code, or where a redirect sends the browser."""
    if response.status_code != 302:
        return str(response.status_code)
    location = response["Location"]
    if location.startswith("/login/?next="):
        return "login"
    if location.startswith("/admin/login/?next="):
        return "admin-login"
    if location == "/admin/" and not (role in ("viewer", "operator") and url.startswith("/admin/")):
        return "console"
    return "302"


_COUNTED = (
    Operation,
    DBTaskResult,
    Soldier,
    get_user_model(),
    Group,
    VmTemplate,
    Instance,
    Project,
    ProjectNetwork,
    FloatingIP,
    Batch,
    Drift,
    RosterUpload,
    SshKey,
    LogEntry,
)


def written() -> tuple[int, ...]:
    """Row counts of everything a request might write, and the rows an action would mark."""
    tables = [model._meta.db_table for model in _COUNTED]
    parts = [f'(SELECT COUNT(*) FROM "{table}")' for table in tables]  # noqa: S608 -- model tables
    parts.append('(SELECT COUNT(ignored_at) FROM "portal_drift")')
    parts.append('(SELECT COUNT(pending_operation_id) FROM "portal_instance")')
    parts.append('(SELECT COUNT(confirmed_at) FROM "portal_rosterupload")')
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts))
        row = cursor.fetchone()
    return tuple(row)


@dataclass
class Asked:
    role: str
    method: str
    case: Case
    url: str
    got: str
    wrote: bool
    cloud_calls: int


class Session:
    """One role's browser, logged in again whenever a request ended its session."""

    def __init__(self, role: str, world: World) -> None:
        self.role, self.world = role, world
        self.client = client_for(role, world)

    def raw(self, method: str, case: Case, *, with_token: bool = True, htmx: bool = False) -> Any:
        """Send one request of a case the way a browser (or htmx) would; the response."""
        url = case.url(self.world)
        headers: dict[str, str] = {}
        data: dict[str, Any] = case.data(self.world) if case.data and method == "post" else {}
        token = self.client.cookies["csrftoken"].value
        if htmx:
            headers["HX-Request"] = "true"
            if with_token:
                headers["X-CSRFToken"] = token
        elif with_token and method == "post":
            data["csrfmiddlewaretoken"] = token
        elif with_token and method != "get":
            headers["X-CSRFToken"] = token
        send = getattr(self.client, method)
        if method in ("get", "post"):
            response = send(url, data, headers=headers)
        else:
            response = send(url, headers=headers)
        if case.ends_session and response.status_code in (200, 302):
            self.client = client_for(self.role, self.world)
        return response

    def ask(self, method: str, case: Case, *, with_token: bool = True, htmx: bool = False) -> Asked:
        """Send one request and note what it wrote and which cloud calls it made."""
        url = case.url(self.world)
        before = written()
        with recorded_calls() as calls:
            response = self.raw(method, case, with_token=with_token, htmx=htmx)
        got = answer(response, self.role, url)
        if response.status_code == 403 and b"CSRF verification failed" in response.content:
            got = "csrf"
        return Asked(self.role, method, case, url, got, written() != before, len(calls.exchanges))


def every_request(session: Session) -> Iterator[tuple[Asked, set[str]]]:
    """Each case of each route, asked every way, with the answers the table expects."""
    role = session.role
    for route in ROUTES:
        for case in route.cases:
            yield session.ask("get", case), case.get[role]
            if case.htmx:
                yield session.ask("get", case, htmx=True), case.get[role]
            for method in OTHER_METHODS:
                yield session.ask(method, case), case.other_method(method)[role]
            # A view that takes no POST may say so before the CSRF check does.
            unchecked = {"csrf", "405"} if case.post[role] == {"405"} else {"csrf"}
            if case.csrf_after_login:
                unchecked.add("admin-login")
            for htmx in (False, True):
                yield session.ask("post", case, with_token=False, htmx=htmx), unchecked
            # Last: the POST may act (an operator deleting a template, a soldier stopping a VM).
            yield session.ask("post", case), case.post[role]


def judge(asked: Asked, expected: set[str]) -> list[str]:
    """What is wrong with one answer: not the expected one, or a refusal that did something."""
    wrong = []
    where = f"{asked.method.upper()} {asked.url} ({asked.case.label})"
    if asked.got not in expected:
        wrong.append(f"{where}: got {asked.got}, expected {'|'.join(sorted(expected))}")
    refused = asked.got in REFUSALS or asked.got == "csrf"
    if refused and asked.wrote:
        wrong.append(f"{where}: refused ({asked.got}) but wrote to the database")
    if refused and asked.cloud_calls:
        wrong.append(f"{where}: refused ({asked.got}) but called the cloud")
    if asked.method == "get" and asked.cloud_calls and not asked.case.calls_cloud:
        wrong.append(f"{where}: a page view made {asked.cloud_calls} cloud calls")
    return wrong


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_each_role_as_the_table_says(role: str, portal_cloud: Any) -> None:
    world = build_world()
    wrong: list[str] = []
    count = 0
    for asked, expected in every_request(Session(role, world)):
        count += 1
        wrong.extend(judge(asked, expected))
    assert count > 300
    assert not wrong, f"{len(wrong)} of {count} requests answered wrongly:\n" + "\n".join(wrong)


# --- the admin actions: one URL, many operations -----------------------------------------------

# The row each model's actions are run on (the action test fails for a model not named here).
ACTION_TARGETS: dict[str, Callable[[World], Any]] = {
    "soldier": lambda w: w.a,
    "instance": lambda w: w.vm_a,
    "vmtemplate": lambda w: w.template,
    "drift": lambda w: w.drift,
    "batch": lambda w: w.batch,
    "operation": lambda w: w.operation,
    "floatingip": lambda w: w.floating_ip,
    "project": lambda w: w.vm_a.project,
    "projectnetwork": lambda w: w.network,
}


# The batch page is a read-only change view: its own buttons post to their URLs (above), so an
# action posted to it is refused even for operators.
READ_ONLY_DETAIL = {"batch"}


def console_actions() -> list[tuple[str, str, str]]:
    """Every (model, action, where) the console's model admins offer anyone."""
    from django.contrib import admin
    from django.contrib.admin.options import ActionLocation

    found = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "portal":
            continue
        for where, location in (
            ("list", ActionLocation.CHANGE_LIST),
            ("detail", ActionLocation.CHANGE_FORM),
        ):
            # Django's own list of a model admin's actions for one place, before permissions.
            base_actions = model_admin._get_base_actions(location)  # type: ignore[attr-defined]
            for base_action in base_actions:
                found.append((str(model._meta.model_name), base_action.name, where))
    return sorted(found)


def test_every_model_with_actions_has_a_row_to_act_on() -> None:
    models = {model for model, _action, _where in console_actions()}

    assert models, "the console offers no action at all"
    assert models <= set(ACTION_TARGETS)


def action_cases() -> list[Case]:
    """Each action posted from the list, confirmed from its intermediate page, and posted from
    the detail page."""
    cases = []
    for model, action, where in console_actions():
        target = ACTION_TARGETS[model]
        listing = f"/admin/portal/{model}/"
        steps = (
            [
                ("list", {"action": action, "index": "0"}),
                ("confirm", {"action": action, "post": "yes"}),
            ]
            if where == "list"
            else [("detail", {"CHANGE_FORM-action": action})]
        )
        for step, fields in steps:

            def url(
                w: World, step: str = step, target: Any = target, listing: str = listing
            ) -> str:
                return f"{listing}{target(w).pk}/change/" if step == "detail" else listing

            def data(w: World, fields: dict[str, str] = fields, target: Any = target) -> Any:
                return {**fields, "_selected_action": [str(target(w).pk)]}

            # Outsiders log in; viewers get 403 before Django looks at the action; operators
            # are shown the action's page or sent back with a message.
            answers = staff(
                "403", "403" if step == "detail" and model in READ_ONLY_DETAIL else "200|302"
            )
            cases.append(Case(f"{model}.{action} ({step})", url, answers, answers, data=data))
    return cases


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_every_console_action_answers_each_role(role: str, portal_cloud: Any) -> None:
    session = Session(role, build_world())
    wrong: list[str] = []
    cases = action_cases()
    for case in cases:
        for asked, expected in (
            (session.ask("post", case, with_token=False), {"csrf"}),
            (session.ask("post", case, with_token=False, htmx=True), {"csrf"}),
            (session.ask("post", case), case.post[role]),
        ):
            wrong.extend(judge(asked, expected))
    assert len(cases) > 30
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)
