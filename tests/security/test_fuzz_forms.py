"""Property tests: no value in any form of the portal makes a server error or a partial write.

Every form a person can post (the soldier pages: login, VM actions, SSH key, password, VM
request; the console: the actions' intermediate pages, the launch preflight, the roster upload
and confirmation, the soldier and template add and change forms, the template-from-the-cloud
form) gets arbitrary unicode, control characters, 10 kB strings, numbers, dates and lists where
one value belongs, and fields left out. The Django test client re-raises whatever a view lets
escape, so a 500 fails the example. A refusal (the form shown again, 403, 404, 405, 429) leaves
every row count as it was, bar the record of an operation the cloud refused; a success writes
whole rows (a soldier with their login, never one without the other). The roster files
themselves are fuzzed in tests/roster/test_fuzz.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.models import Drift, Operation, Soldier, VmTemplate
from portal.selfservice.cards import ACTIONS
from tests.integration.conftest import recorded_calls, unique
from tests.security.test_every_url import World, build_world, client_for, written
from tests.sshkeys import ed25519

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PRINTABLE = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
CONTROL = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=20)
LONG = st.tuples(PRINTABLE.filter(bool), st.integers(10_000, 10_240)).map(
    lambda t: (t[0] * t[1])[: t[1]]
)
NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "0",
        "-1",
        "99999999999999999999999",
        "1e309",
        "NaN",
        "2025-02-30",
        "9999-12-31",
        "0001-01-01",
        "../../etc/passwd",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "%s%n%x",
        "\u202e\u200b\ufeff",
        "//evil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
    ]
)
WRONG_TYPE = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
)
ONE = st.one_of(PRINTABLE, CONTROL, LONG, NASTY, WRONG_TYPE)
# A list posts the field several times, where the form expects one value.
VALUE = st.one_of(ONE, ONE, ONE, st.lists(ONE, min_size=2, max_size=3))


def fields(*names: str, **plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the named fields, each anything (or, half the time, something plausible)."""
    strategies = {
        name: st.one_of(VALUE, plausible[name]) if name in plausible else VALUE for name in names
    }
    return st.fixed_dictionaries({}, optional=strategies)


def post(client: Client, url: str, data: dict[str, Any]) -> Any:
    token = client.cookies["csrftoken"].value
    return client.post(url, {**data, "csrfmiddlewaretoken": token})


def counts_without_operations() -> tuple[int, ...]:
    # written()'s first two counts are operations and their queued tasks; the second last, the
    # VMs an operation is pending on.
    counts = written()
    return counts[2:-2] + counts[-1:]


def unfinished_operations() -> int:
    return Operation.objects.filter(state__in=Operation.ACTIVE_STATES).count()


@pytest.fixture
def world(portal_cloud: Any) -> World:
    return build_world()


REFUSED = (200, 400, 403, 404, 405, 429)


def check_refusal_wrote_nothing(response: Any, before: tuple[int, ...]) -> None:
    """A page shown again or refused wrote nothing but the records of finished operations."""
    if response.status_code in REFUSED:
        assert counts_without_operations() == before[2:-2] + before[-1:]


# --- the soldier pages ------------------------------------------------------------------------


@FUZZ
@given(data=fields("username", "password", "next", next=st.just("/ssh-key/")))
def test_the_login_form_takes_anything(world: World, data: dict[str, Any]) -> None:
    client = client_for("anonymous", world)
    before = written()
    response = post(client, "/login/", data)
    assert response.status_code in (200, 302, 429)
    # Nobody here holds a cloud account: every login is refused, and refused logins write none
    # of the portal's rows (django-axes keeps its own).
    assert response.status_code != 302
    assert written() == before


@FUZZ
@given(
    data=fields(
        "original_password",
        "new_password",
        "confirm_password",
        new_password=st.just("a-New-pass-1234"),
        confirm_password=st.just("a-New-pass-1234"),
    )
)
def test_the_password_form_takes_anything(world: World, data: dict[str, Any]) -> None:
    client = client_for("soldier_a", world)
    before, running = written(), unfinished_operations()
    response = post(client, "/password/", data)
    # Soldier A has no cloud account: a valid form is refused by Keystone (and counted).
    assert response.status_code in (200, 429)
    check_refusal_wrote_nothing(response, before)
    assert unfinished_operations() == running


@FUZZ
@given(data=fields("public_key", public_key=st.just(ed25519())))
def test_the_ssh_key_form_takes_anything(world: World, data: dict[str, Any]) -> None:
    client = client_for("soldier_a", world)
    before, running = written(), unfinished_operations()
    response = post(client, "/ssh-key/", data)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)
    assert unfinished_operations() == running


@FUZZ
@given(
    data=fields("confirm", "name", "template", "count"),
    action=st.sampled_from([*ACTIONS, "explode"]),
    whose=st.sampled_from(["vm_a", "vm_b"]),
)
def test_the_vm_action_and_request_forms_take_anything(
    world: World, data: dict[str, Any], action: str, whose: str
) -> None:
    client = client_for("soldier_a", world)
    vm = getattr(world, whose)
    for url in (f"/vm/{vm.pk}/{action}/", f"/request/{world.template.pk}/"):
        before = written()
        response = post(client, url, data)
        assert response.status_code in (302, 404)
        if response.status_code == 404:
            assert written() == before
        else:
            # At most the one operation a power action queues, nothing else.
            after = written()
            assert after[2:-2] == before[2:-2]
            assert after[0] - before[0] <= 1


# --- the console ------------------------------------------------------------------------------


def action_data(action: str, selected: Any, extra: dict[str, Any]) -> dict[str, Any]:
    return {"action": action, "_selected_action": selected, **extra}


SELECTED = st.one_of(
    st.just("A"),  # soldier A, the right value
    VALUE,
)


def selected_of(world: World, choice: Any) -> Any:
    return world.a.pk if choice == "A" else choice


@FUZZ
@given(
    extra=fields("until", "post", until=st.dates().map(str), post=st.just("yes")),
    selected=SELECTED,
)
def test_the_postpone_page_takes_anything(
    world: World, extra: dict[str, Any], selected: Any
) -> None:
    client = client_for("operator", world)
    before = written()
    data = action_data("postpone_discharge", selected_of(world, selected), extra)
    response = post(client, "/admin/portal/soldier/", data)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)


@FUZZ
@given(
    extra=fields(
        "step",
        "template",
        "host",
        "count",
        "index",
        step=st.sampled_from(["preflight", "launch"]),
        template=st.just("T"),
        count=st.integers(0, 6),
    ),
    selected=SELECTED,
)
def test_the_launch_form_and_preflight_take_anything(
    world: World, extra: dict[str, Any], selected: Any
) -> None:
    client = client_for("operator", world)
    if extra.get("template") == "T":
        extra["template"] = world.template.pk
    before = written()
    data = action_data("launch_vm", selected_of(world, selected), extra)
    response = post(client, "/admin/portal/soldier/", data)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)


@FUZZ
@given(
    action=st.sampled_from(
        [
            ("soldier", "discharge_now"),
            ("soldier", "disable"),
            ("soldier", "reset_password"),
            ("instance", "delete_vm"),
            ("instance", "start_vm"),
        ]
    ),
    extra=fields("post", "index", "select_across", post=st.just("yes")),
    selected=st.one_of(st.just("row"), VALUE),
)
def test_the_confirmation_pages_take_anything(
    world: World, action: tuple[str, str], extra: dict[str, Any], selected: Any
) -> None:
    model, name = action
    client = client_for("operator", world)
    row = world.a if model == "soldier" else world.vm_b
    before = written()
    data = action_data(name, row.pk if selected == "row" else selected, extra)
    response = post(client, f"/admin/portal/{model}/", data)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)


SOLDIER_FIELDS = (
    "service_number",
    "name",
    "unit",
    "enlisted_on",
    "discharge_on",
    "keystone_user_name",
)
SOLDIER_PLAUSIBLE = {
    "service_number": st.from_regex(r"2[0-9]-[0-9]{4,8}", fullmatch=True),
    "name": st.text("김이박최정병사", min_size=1, max_size=5),
    "enlisted_on": st.dates().map(str),
    "discharge_on": st.dates().map(str),
    "keystone_user_name": st.from_regex(r"[a-z][a-z0-9]{3,12}", fullmatch=True),
}


@FUZZ
@given(data=fields(*SOLDIER_FIELDS, "_save", **SOLDIER_PLAUSIBLE), change=st.booleans())
def test_the_soldier_forms_take_anything(world: World, data: dict[str, Any], change: bool) -> None:
    client = client_for("operator", world)
    url = f"/admin/portal/soldier/{world.b.pk}/change/" if change else "/admin/portal/soldier/add/"
    before = written()
    soldiers = Soldier.objects.count()
    response = post(client, url, data)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)
    if response.status_code == 302 and not change:
        # A whole soldier: the row and its login together.
        assert Soldier.objects.count() == soldiers + 1
        assert Soldier.objects.filter(user__isnull=True).count() == 0


TEMPLATE_FIELDS = (
    "name",
    "description",
    "image_id",
    "image_name",
    "flavor_id",
    "flavor_name",
    "network_id",
    "security_group",
    "availability_zone",
    "is_active",
)
TEMPLATE_PLAUSIBLE = {
    "name": st.from_regex(r"[a-z][a-z0-9-]{2,20}", fullmatch=True),
    "image_id": st.uuids().map(str),
    "flavor_id": st.sampled_from(["1", "2", "m1.small"]),
    "availability_zone": st.sampled_from(["nova", ""]),
    "is_active": st.sampled_from(["on", ""]),
}


@FUZZ
@given(data=fields(*TEMPLATE_FIELDS, "_save", **TEMPLATE_PLAUSIBLE), change=st.booleans())
def test_the_template_forms_take_anything(world: World, data: dict[str, Any], change: bool) -> None:
    client = client_for("operator", world)
    url = (
        f"/admin/portal/vmtemplate/{world.template.pk}/change/"
        if change
        else "/admin/portal/vmtemplate/add/"
    )
    before = written()
    templates = VmTemplate.objects.count()
    response = post(client, url, data)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)
    if response.status_code == 302:
        assert VmTemplate.objects.count() == templates + (0 if change else 1)


@FUZZ
@given(data=fields("name", "image", "flavor", name=TEMPLATE_PLAUSIBLE["name"]))
def test_the_template_from_the_cloud_form_takes_anything(
    world: World, data: dict[str, Any]
) -> None:
    client = client_for("operator", world)
    before = written()
    response = post(client, "/admin/portal/vmtemplate/from-cloud/", data)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)


@FUZZ
@given(data=fields("file", "sha256", "digest", "confirm"))
def test_the_roster_upload_and_confirmation_take_anything_but_a_file(
    world: World, data: dict[str, Any]
) -> None:
    client = client_for("operator", world)
    for url in (
        "/admin/portal/soldier/roster/import/",
        f"/admin/portal/soldier/roster/{world.upload.pk}/confirm/",
    ):
        before = written()
        response = post(client, url, data)
        assert response.status_code in (200, 302, 400, 404)
        assert written() == before


def test_a_valid_password_change_without_a_cloud_account_is_refused_with_words_not_a_500(
    world: World,
) -> None:
    # Found by the fuzzer: the service's refusal escaped the view.
    client = client_for("soldier_a", world)
    before = written()
    response = post(
        client,
        "/password/",
        {
            "original_password": "old-pw",
            "new_password": "n3w-Pass-word!",
            "confirm_password": "n3w-Pass-word!",
        },
    )
    assert response.status_code == 200
    assert "This soldier has no cloud account yet." in response.content.decode()
    assert written() == before


@pytest.mark.parametrize("selected", ["", "x", "1.5", "99999999999999999999999"])
def test_an_action_on_a_selection_that_is_not_an_id_is_refused_not_a_500(
    world: World, selected: str
) -> None:
    # Found by the fuzzer: Django's admin filtered pk__in with the raw values.
    client = client_for("operator", world)
    before = written()
    for step in ({"index": "0"}, {"post": "yes"}):
        data = {"action": "discharge_now", "_selected_action": [str(world.a.pk), selected], **step}
        response = post(client, "/admin/portal/soldier/", data)
        assert response.status_code == 302
        assert "The selection was not understood" in str(
            list(client.get(response["Location"]).context["messages"])
        )
    assert written() == before


@FUZZ
@given(
    fix=st.sampled_from([("unowned_server", "adopt"), ("user_without_soldier", "link_user")]),
    form=fields("soldier", soldier=st.just("B")),
    query=st.one_of(st.none(), VALUE.map(str)),
)
def test_the_drift_fix_soldier_choice_takes_anything(
    world: World, fix: tuple[str, str], form: dict[str, Any], query: str | None
) -> None:
    kind, name = fix
    drift = Drift.objects.create(kind=kind, resource_id=unique("res"), detail="fuzzed")
    client = client_for("operator", world)
    if form.get("soldier") == "B":
        form["soldier"] = world.b.pk
    url = f"/admin/portal/drift/{drift.pk}/fix/{name}/"
    if query is not None:
        url += "?" + urlencode({"soldier": query})
    before = written()
    response = post(client, url, form)
    assert response.status_code in (200, 302)
    check_refusal_wrote_nothing(response, before)


@FUZZ
@given(data=fields("username", "password", "next"))
def test_the_staff_login_and_password_forms_take_anything(
    world: World, data: dict[str, Any]
) -> None:
    before = written()
    response = post(client_for("anonymous", world), "/admin/login/", data)
    assert response.status_code in (200, 429)
    renamed = {
        new: data[old]
        for old, new in (
            ("username", "old_password"),
            ("password", "new_password1"),
            ("next", "new_password2"),
        )
        if old in data
    }
    response = post(client_for("viewer", world), "/admin/password_change/", renamed)
    assert response.status_code == 200
    assert written() == before


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_a_username_longer_than_any_account_is_refused_before_anyone_is_asked(
    world: World, url: str
) -> None:
    # Found by the fuzzer on PostgreSQL: django-axes' record of the failed login (255
    # characters) refused a 10 kB username with a DataError, a 500.
    from axes.models import AccessAttempt

    attempts = AccessAttempt.objects.count()
    with recorded_calls() as calls:
        response = post(
            client_for("anonymous", world), url, {"username": "x" * 10_000, "password": "p"}
        )
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert AccessAttempt.objects.count() == attempts
    assert not calls.exchanges
