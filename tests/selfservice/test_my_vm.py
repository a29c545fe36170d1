"""The My VM page: one card per VM, from the mirror only; live while something is under way."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal import services
from portal.models import Instance, Operation, VmTemplate, seoul_today
from portal.openstack import OpenStackClient
from tests.integration.conftest import Cast, recorded_calls
from tests.selfservice.conftest import CloudSoldier, offline_instances

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network", "image", "compute"),
]


def page(client: Any, url: str = "/") -> str:
    response = client.get(url)
    assert response.status_code == 200, response
    return str(response.content.decode())


def test_the_card_of_a_running_vm_tells_how_to_get_in(
    soldier_a: CloudSoldier, running_vm: Instance, admin: OpenStackClient
) -> None:
    server = admin.get_server(running_vm.server_id or "")
    flavor = admin.get_flavor(running_vm.flavor_id)
    with recorded_calls() as calls:
        text = page(soldier_a.client)
    assert calls.exchanges == []  # rendered from the mirror

    assert running_vm.name in text
    assert 'class="cs-badge cs-tone-green">Running<' in text
    assert "The VM is running." in text
    assert "Connect with the SSH command below." in text
    assert "Running</dd>" in text  # the power state, decoded
    fip = running_vm.floating_ip
    assert fip
    assert f'<code id="vm-{running_vm.pk}-fip">{fip}</code>' in text
    assert f">{running_vm.fixed_ip}</code>" in text
    assert f"ssh cirros@{fip}" in text  # the login name of the image
    assert text.count('class="cs-copy') == 3
    assert flavor.name in text
    assert f"{flavor.vcpus} vCPU" in text
    assert f"{flavor.disk_gib} GiB disk" in text
    assert running_vm.image_name in text
    # Launched at and running since, in KST with Nova's own string and UTC in the tooltip.
    assert server.launched_at_raw
    assert f"original: {server.launched_at_raw}" in text
    shown_time = r'<time datetime="[^"]+Z" title="[^"]+UTC">\d{4}-\d\d-\d\d \d\d:\d\d KST'
    assert re.search(shown_time, text)
    assert "running for " in text
    # The last action and how it ended.
    assert 'Create the VM — <span class="cs-outcome cs-outcome-succeeded">Succeeded' in text
    # What the soldier may do now.
    assert f'href="/vm/{running_vm.pk}/stop/"' in text
    assert f'href="/vm/{running_vm.pk}/reboot/"' in text
    assert f'href="/vm/{running_vm.pk}/start/"' not in text
    assert f'href="/vm/{running_vm.pk}/delete/"' not in text  # soldiers may not delete, here
    # Stable: the card asks for news slowly (a start or stop by staff shows without a reload).
    assert 'hx-trigger="every 20s"' in text
    assert "{#" not in text  # a template comment Django did not take for one


def test_the_card_reports_the_flavor_size_the_server_reported(
    running_vm: Instance, admin: OpenStackClient
) -> None:
    flavor = admin.get_flavor(running_vm.flavor_id)
    running_vm.refresh_from_db()
    assert (running_vm.flavor_vcpus, running_vm.flavor_ram_mib, running_vm.flavor_disk_gib) == (
        flavor.vcpus,
        flavor.ram_mib,
        flavor.disk_gib,
    )


def test_without_a_vm_the_page_offers_the_active_templates(
    soldier_a: CloudSoldier, cast: Cast
) -> None:
    hidden = VmTemplate.objects.create(name="retired", image_id="x", flavor_id="y", is_active=False)
    text = page(soldier_a.client)
    assert "You have no VM yet" in text
    assert f'href="/request/{cast.template.pk}/"' in text
    assert cast.template.name in text
    assert f"/request/{hidden.pk}/" not in text
    assert "register your SSH key" in text


def test_the_page_warns_of_the_discharge_within_30_days(soldier_a: CloudSoldier) -> None:
    soldier = soldier_a.soldier
    soldier.discharge_on = seoul_today() + timedelta(days=31)
    soldier.save()
    assert "Your cloud access ends" not in page(soldier_a.client)
    soldier.discharge_on = seoul_today() + timedelta(days=12)
    soldier.save()
    text = page(soldier_a.client)
    assert "D-12" in text
    assert f"Your cloud access ends on {soldier.discharge_on:%Y-%m-%d}." in text
    soldier.discharge_on = seoul_today()
    soldier.save()
    assert "D-day" in page(soldier_a.client)


def test_a_vm_on_its_way_polls_until_it_runs_then_polls_slowly(
    soldier_a: CloudSoldier, cast: Cast, tasks: Any
) -> None:
    instance = services.soldier_vm_request(soldier=soldier_a.soldier, template=cast.template)
    text = page(soldier_a.client)
    poll_url = f"/vm/{instance.pk}/card/"
    assert f'hx-get="{poll_url}" hx-trigger="every 2s" hx-target="closest .cs-card-body"' in text
    assert ">Queued<" in text
    assert "Refresh" in text  # without JavaScript, a link does what polling does
    assert '<progress id="vm-' in text

    with recorded_calls() as calls:
        polled = soldier_a.client.get(poll_url, {"seen": "queued"}, HTTP_HX_REQUEST="true")
    assert calls.exchanges == []  # 0 OpenStack calls per poll
    assert polled.status_code == 200
    body = polled.content.decode()
    assert "<html" not in body  # the card's partial only
    assert ">Queued<" in body
    assert "hx-swap-oob" not in body  # nothing new to announce

    tasks()
    with recorded_calls() as calls:
        stopped = soldier_a.client.get(poll_url, {"seen": "queued"}, HTTP_HX_REQUEST="true")
    assert calls.exchanges == []
    # At rest the card still watches, slowly: a start or stop by someone else shows up.
    assert stopped.status_code == 200
    body = stopped.content.decode()
    assert ">Running<" in body
    assert 'hx-trigger="every 20s"' in body
    assert 'hx-trigger="every 2s"' in polled.content.decode()
    # The milestone goes to the card's persistent live region, once.
    assert f'<span id="vm-{instance.pk}-live" hx-swap-oob="innerHTML">' in body
    assert 'hx-trigger="every 20s"' in page(soldier_a.client)


@pytest.mark.parametrize("others", [1, 20])
def test_a_poll_costs_the_same_queries_however_many_vms_others_have(
    soldier_a: CloudSoldier, cast: Cast, others: int, django_assert_num_queries: Any
) -> None:
    instance = services.soldier_vm_request(soldier=soldier_a.soldier, template=cast.template)
    offline_instances(others)
    url = f"/vm/{instance.pk}/card/"
    soldier_a.client.get(url, HTTP_HX_REQUEST="true")  # warm the session
    with CaptureQueriesContext(connection) as queries:
        response = soldier_a.client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    # The VM with its operation: the session and the login the first poll checked in the database
    # come from the cache (portal/selfservice/poll.py). The same for 1 and for 20.
    assert len(queries) == POLL_QUERIES, [q["sql"] for q in queries]


POLL_QUERIES = 1


def test_the_page_costs_the_same_queries_with_1_or_20_vms_of_others(
    soldier_a: CloudSoldier, cast: Cast
) -> None:
    services.soldier_vm_request(soldier=soldier_a.soldier, template=cast.template)
    counts = []
    for others in (1, 19):
        offline_instances(others)
        with CaptureQueriesContext(connection) as queries:
            assert soldier_a.client.get("/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_an_action_that_failed_shows_on_the_card_in_plain_words(
    soldier_a: CloudSoldier, running_vm: Instance
) -> None:
    op = Operation.objects.create(
        kind=Operation.Kind.POWER,
        soldier=soldier_a.soldier,
        instance=running_vm,
        state=Operation.State.FAILED,
        params={"action": "stop"},
        message="The cloud call failed (%(detail)s; request %(request_id)s).",
        message_params={"detail": "boom", "request_id": "req-1"},
        finished_at=timezone.now(),
    )
    Instance.objects.filter(pk=running_vm.pk).update(last_error=op.message_text)
    text = page(soldier_a.client)
    assert "Your last request could not be finished. You can try again." in text
    assert 'Stop — <span class="cs-outcome cs-outcome-failed">Failed' in text


def test_the_page_works_without_javascript(soldier_a: CloudSoldier, running_vm: Instance) -> None:
    text = page(soldier_a.client)
    # Everything is in the HTML; the only scripts are files from the portal itself.
    scripts = re.findall(r"<script[^>]*>", text)
    assert scripts
    assert all('src="/static/' in s for s in scripts)
    assert "onclick" not in text
    assert "style=" not in text
    # Copy buttons appear only when the script runs (they are hidden in the HTML).
    buttons = re.findall(r'<button type="button" class="cs-copy[^>]*>', text)
    assert buttons
    assert all(" hidden>" in b for b in buttons)
    # Actions are links to a confirmation page whose form posts normally.
    confirm = page(soldier_a.client, f"/vm/{running_vm.pk}/stop/")
    assert '<form method="post"' in confirm
    assert "Stop this VM?" in confirm


def test_the_page_is_korean_by_default_and_english_on_request(
    soldier_a: CloudSoldier, running_vm: Instance
) -> None:
    from django.test import Client

    korean = Client()
    korean.force_login(soldier_a.soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
    text = page(korean)
    assert '<html lang="ko">' in text
    assert "내 VM" in text
    assert "실행 중" in text
    assert 'action="/i18n/setlang/"' in text
    korean.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert '<html lang="en">' in page(korean)
