"""One VM per soldier, as promised (issue 18 point 6): the preflight flags a soldier who has a
live VM from the template unless staff tick "second VM"; one launch form launches once, however
often and by however many operators it is submitted; the database holds the line."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from portal import services
from portal.models import Batch, Instance, Operation
from tests.console.conftest import logged_in
from tests.console.support import act, form_fields, messages_of, onboarded, running_vm
from tests.console.test_console_preflight import hidden_ids
from tests.integration.conftest import Cast, make_soldier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "compute", "network", "image"),
]


def preflight_page(operator: Client, cast: Cast, ids: list[Any], **extra: Any) -> str:
    page = act(
        operator,
        "soldier",
        "launch_vm",
        ids,
        step="preflight",
        template=cast.template.pk,
        count=1,
        host="",
        **extra,
    )
    assert page.status_code == 200
    return str(page.content.decode())


def launch_form(html: str) -> dict[str, Any]:
    """What the preflight page's launch button posts."""
    fields: dict[str, Any] = dict(form_fields(html))
    fields.pop("csrfmiddlewaretoken", None)
    fields["_selected_action"] = hidden_ids(html)
    return fields


def post_launch(client: Client, fields: dict[str, Any]) -> Any:
    return client.post("/admin/portal/soldier/", fields)


def test_the_preflight_flags_a_soldier_who_has_a_vm_from_the_template(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    has_one, has_none = onboarded(tasks), onboarded(tasks)
    first = running_vm(has_one, cast.template, tasks)

    html = preflight_page(operator, cast, [has_one.pk, has_none.pk])

    assert f"already has a VM from this template ({first.name})" in html
    assert hidden_ids(html) == [str(has_none.pk)]
    post_launch(operator, launch_form(html))
    tasks()
    assert Instance.objects.filter(owner=has_one).count() == 1
    assert Instance.objects.filter(owner=has_none).count() == 1


def test_a_second_vm_is_launched_only_when_the_box_is_ticked(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    soldier = onboarded(tasks)
    running_vm(soldier, cast.template, tasks)
    page = act(operator, "soldier", "launch_vm", [soldier.pk]).content.decode()
    assert 'name="second_vm"' in page  # the launch form offers the box

    html = preflight_page(operator, cast, [soldier.pk], second_vm="on")
    assert "already has a VM" not in html
    assert launch_form(html)["second_vm"] == "on"
    post_launch(operator, launch_form(html))
    tasks()
    second = Instance.objects.filter(owner=soldier).order_by("-pk").first()
    assert second is not None
    assert second.second_vm
    assert second.status == "ACTIVE"


def test_more_than_one_vm_per_soldier_needs_the_second_vm_box(operator: Client, cast: Cast) -> None:
    soldier = make_soldier()
    page = act(
        operator,
        "soldier",
        "launch_vm",
        [soldier.pk],
        step="preflight",
        template=cast.template.pk,
        count=2,
        host="",
    )
    assert 'More than one VM per soldier needs the "second VM" box ticked.' in (
        page.content.decode().replace("&quot;", '"')
    )
    assert not Instance.objects.exists()


def test_a_launch_posted_without_the_preflights_key_shows_the_preflight(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    soldier = onboarded(tasks)
    response = act(
        operator,
        "soldier",
        "launch_vm",
        [soldier.pk],
        step="launch",
        template=cast.template.pk,
        count=1,
        host="",
    )
    assert response.status_code == 200
    assert "Look at the preflight, then launch from its page." in messages_of(response)
    assert 'name="launch_key"' in response.content.decode()
    assert not Instance.objects.exists()


def test_the_same_launch_form_submitted_twice_launches_once_and_shows_the_first_batch(
    operator: Client, cast: Cast, tasks: Any
) -> None:
    soldier = onboarded(tasks)
    fields = launch_form(preflight_page(operator, cast, [soldier.pk]))

    first = post_launch(operator, fields)
    again = operator.post("/admin/portal/soldier/", fields, follow=True)

    batch = Batch.objects.get()
    assert batch.launch_key == fields["launch_key"]
    assert first["Location"].endswith(f"/batch/{batch.pk}/change/")
    assert again.redirect_chain[-1][0].endswith(f"/batch/{batch.pk}/change/")
    assert any("already submitted; nothing more was launched" in m for m in messages_of(again))
    tasks()
    assert Instance.objects.filter(owner=soldier).count() == 1
    assert Operation.objects.filter(kind=Operation.Kind.LAUNCH).count() == 1


def _at_once(posts: list[tuple[Client, dict[str, Any]]]) -> list[int]:
    barrier = threading.Barrier(len(posts))
    codes: list[int] = []

    def submit(client: Client, fields: dict[str, Any]) -> None:
        try:
            barrier.wait()
            codes.append(post_launch(client, fields).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=post) for post in posts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return codes


def test_two_operators_submitting_one_form_at_once_make_one_vm(
    operator: Client, operator_user: Any, cast: Cast, tasks: Any
) -> None:
    soldier = onboarded(tasks)
    fields = launch_form(preflight_page(operator, cast, [soldier.pk]))
    other = logged_in(operator_user)

    codes = _at_once([(operator, fields), (other, dict(fields))])

    assert codes == [302, 302]
    tasks()
    assert Instance.objects.filter(owner=soldier).count() == 1
    assert Operation.objects.filter(kind=Operation.Kind.LAUNCH).count() == 1
    assert Batch.objects.count() == 1


def test_two_preflight_pages_launched_at_once_make_one_vm(
    operator: Client, operator_user: Any, cast: Cast, tasks: Any
) -> None:
    soldier = onboarded(tasks)
    mine = launch_form(preflight_page(operator, cast, [soldier.pk]))
    other = logged_in(operator_user)
    theirs = launch_form(preflight_page(other, cast, [soldier.pk]))

    codes = _at_once([(operator, mine), (other, theirs)])

    assert sorted(codes) == [302, 302]
    tasks()
    live = Instance.objects.filter(owner=soldier)
    assert live.count() == 1
    assert live.get().status == "ACTIVE"
    assert mine.get("launch_key") != theirs.get("launch_key")  # two forms, two keys


def test_the_database_refuses_a_second_live_vm_of_one_template_unless_asked(
    cast: Cast, tasks: Any
) -> None:
    soldier = onboarded(tasks)
    first = services.instance_launch(soldier=soldier, template=cast.template)
    twin = {
        "project": first.project,
        "owner": soldier,
        "name": "twin",
        "template": cast.template,
        "request_tag": uuid.uuid4(),
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Instance.objects.create(**twin)
    Instance.objects.create(**{**twin, "request_tag": uuid.uuid4(), "second_vm": True})
    with pytest.raises(services.OperationRefused, match="already has a VM from the template"):
        services.instance_launch(soldier=soldier, template=cast.template)
