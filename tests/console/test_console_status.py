"""The status page, the index's dashboard strip, the list filters, and the language switch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import Drift, Instance, Operation, Project
from portal.services.preflight import CAPACITY_CACHE_KEY, CapacitySnapshot
from tests.console.conftest import logged_in
from tests.integration.conftest import make_soldier, recorded_calls, unique
from tests.scrape import scrape, value

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
LAUNCHED = datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC)


def vm(**fields: Any) -> Instance:
    soldier = make_soldier()
    project = Project.objects.create(soldier=soldier, name=f"cs-{soldier.keystone_user_name}")
    values: dict[str, Any] = {
        "status": "ACTIVE",
        "vm_state": "active",
        "power_state": 1,
        "launched_at": LAUNCHED,
        "launched_at_raw": "2020-10-16T06:26:08.000000",
        "running_since": timezone.now() - timedelta(hours=3, minutes=5),
        **fields,
    }
    return Instance.objects.create(
        project=project, owner=soldier, name=unique("vm"), server_id=unique("srv"), **values
    )


def test_the_status_page_decodes_novas_four_fields_side_by_side_in_kst(operator: Client) -> None:
    running = vm()
    vm(status="ACTIVE", power_state=4)
    vm(status="SHUTOFF", vm_state="stopped", power_state=4, running_since=None)
    with recorded_calls() as calls:
        page = operator.get(reverse("admin:portal_status"))
    html = page.content.decode()
    assert not calls.exchanges
    assert running.name in html
    assert "2020-10-16 15:26 KST" in html  # 06:26 UTC
    assert 'datetime="2020-10-16T06:26:08Z"' in html
    assert "original: 2020-10-16T06:26:08.000000" in html
    assert "3 hours 5 minutes" in html
    assert "Off (guest shut down)" in html
    assert "The operating system inside the VM shut itself down" in html
    assert "Shutdown <span" in html  # power state 4 decoded, its number beside it
    assert "<code>stopped</code>" in html
    assert "Every VM on this page is settled." in html
    assert "hx-trigger" not in html  # a stable page never polls


def test_the_status_page_never_says_settled_while_a_vm_needs_attention(operator: Client) -> None:
    vm()  # running: nothing to do
    vm(status="ERROR", vm_state="error", power_state=0)
    vm(power_state=6)  # crashed
    vm(deleted_outside_portal=True)  # gone
    html = operator.get(reverse("admin:portal_status")).content.decode()
    assert "3 VMs need attention" in html
    assert "settled" not in html
    assert 'class="cs-badge cs-tone-purple">Gone</span>' in html


def test_active_with_no_power_state_is_a_vm_its_host_does_not_see(operator: Client) -> None:
    vm(status="ACTIVE", power_state=0)
    html = operator.get(reverse("admin:portal_status")).content.decode()
    assert "Not seen by its host" in html
    assert "Check nova-compute on the VM&#x27;s host" in html
    assert "shut itself down" not in html
    assert "1 VM needs attention" in html


def test_the_status_page_polls_while_a_vm_is_in_transition_then_stops(operator: Client) -> None:
    moving = vm(status="BUILD", vm_state="building", task_state="spawning", power_state=0)
    html = operator.get(reverse("admin:portal_status")).content.decode()
    assert 'hx-trigger="every 2s"' in html
    assert "1 VM on this page is changing state." in html
    poll = operator.get(reverse("admin:portal_status"), {"seen": "1"}, headers=HTMX)
    assert poll.status_code == 200
    assert "hx-swap-oob" not in poll.content.decode()

    Instance.objects.filter(pk=moving.pk).update(status="ACTIVE", task_state="", power_state=1)
    final = operator.get(reverse("admin:portal_status"), {"seen": "1"}, headers=HTMX)
    assert final.status_code == 286
    assert "Every VM on this page is settled." in final.content.decode()


def test_the_status_page_hides_deleted_vms_unless_asked(operator: Client) -> None:
    gone = vm(status="DELETED", vm_state="deleted", power_state=None)
    assert gone.name not in operator.get(reverse("admin:portal_status")).content.decode()
    assert gone.name in operator.get(reverse("admin:portal_status") + "?deleted=1").content.decode()


def test_the_index_strip_counts_statuses_failures_drift_discharges_and_free_ips(
    operator: Client, settings: Any
) -> None:
    vm()
    vm(status="ERROR", vm_state="error", power_state=0)
    soon = make_soldier(discharge_on=timezone.localdate() + timedelta(days=10))
    Operation.objects.create(
        kind=Operation.Kind.POWER,
        state=Operation.State.FAILED,
        soldier=soon,
        finished_at=timezone.now() - timedelta(hours=2),
    )
    Operation.objects.create(
        kind=Operation.Kind.POWER,
        state=Operation.State.FAILED,
        soldier=soon,
        finished_at=timezone.now() - timedelta(days=3),
    )
    Drift.objects.create(kind=Drift.Kind.UNOWNED_SERVER, resource_id="a")
    Drift.objects.create(kind=Drift.Kind.UNOWNED_SERVER, resource_id="b", ignored_at=timezone.now())
    from django.core.cache import cache

    cache.set(CAPACITY_CACHE_KEY, CapacitySnapshot(41, timezone.now()))
    with recorded_calls() as calls:
        html = operator.get(reverse("admin:index")).content.decode()
    assert not calls.exchanges
    strip = html.split('class="cs-dashboard"')[1].split("</section>")[0]
    assert "2 VMs" in strip
    assert "?merged_status=running" in strip
    assert "?merged_status=error" in strip

    def tile(title: str) -> str:
        return strip.split(title)[1].split('class="cs-number')[1].split("</p>")[0]

    assert tile("Failed operations, last 24 h").endswith(">1")
    assert tile("Open drift").endswith(">1")
    assert tile("Discharges in the next 30 days").endswith(">1")
    assert tile("Free floating IPs").endswith(">41")


def test_the_merged_status_filter_finds_the_decoded_rows(operator: Client) -> None:
    off = vm(status="ACTIVE", power_state=4)
    running = vm()
    page = operator.get(reverse("admin:portal_instance_changelist") + "?merged_status=guest_off")
    html = page.content.decode()
    assert off.name in html
    assert running.name not in html


def test_the_language_switch_works_without_javascript_and_korean_comes_first(
    operator_user: Any,
) -> None:
    client = logged_in(operator_user, language="ko")
    korean = client.get(reverse("admin:index")).content.decode()
    assert 'lang="ko"' in korean
    assert f'action="{reverse("set_language")}"' in korean
    assert '<select name="language"' in korean
    response = client.post(
        reverse("set_language"), {"language": "en", "next": reverse("admin:portal_status")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:portal_status")
    english = client.get(reverse("admin:portal_status")).content.decode()
    assert 'lang="en"' in english
    assert "VM status" in english


def test_korean_is_the_default_of_the_console(operator_user: Any) -> None:
    vm(status="SHUTOFF", vm_state="stopped", power_state=4, running_since=None)
    client = logged_in(operator_user, language="ko")
    html = client.get(reverse("admin:portal_status")).content.decode()
    assert "꺼짐" in html  # Stopped
    assert "VM 상태" in html  # the page's title


def test_operations_are_found_by_their_openstack_request_id(operator: Client) -> None:
    wanted = Operation.objects.create(
        kind=Operation.Kind.POWER, request_ids=["req-1b2c3d4e", "req-feedface"]
    )
    other = Operation.objects.create(kind=Operation.Kind.POWER, request_ids=["req-0000"])
    page = operator.get(reverse("admin:portal_operation_changelist") + "?q=req-feedface")
    html = page.content.decode()
    assert reverse("admin:portal_operation_change", args=[wanted.pk]) in html
    assert reverse("admin:portal_operation_change", args=[other.pk]) not in html


def test_the_status_page_counts_its_polls_by_whether_they_brought_news(operator: Client) -> None:
    moving = vm(status="BUILD", vm_state="building", task_state="spawning", power_state=0)
    url = reverse("admin:portal_status")
    before = scrape(operator)

    operator.get(url)  # the page itself is no poll
    operator.get(url, {"seen": "1"}, headers=HTMX)  # still the one VM changing state
    Instance.objects.filter(pk=moving.pk).update(status="ACTIVE", task_state="", power_state=1)
    operator.get(url, {"seen": "1"}, headers=HTMX)  # now everything is settled
    after = scrape(operator)

    def polls(answer: str) -> float:
        labels = {"view": "admin:portal_status", "answer": answer}
        return value(after, "portal_poll_answers_total", **labels) - value(
            before, "portal_poll_answers_total", **labels
        )

    assert (polls("unchanged"), polls("changed")) == (1, 1)
