"""The merged status decoder: one table over every Nova status, task state and power state."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import translation

from portal.models import power_state_label
from portal.openstack.types import PowerState, ServerStatus
from portal.status import (
    STATUS_KEYS,
    Audience,
    Tone,
    d_day,
    format_duration,
    format_kst,
    iso_utc,
    merged_status,
    time_tooltip,
    uptime,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def vm(**fields: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "status": "ACTIVE",
        "vm_state": "active",
        "task_state": "",
        "power_state": 1,
        "pending_action": "",
        "pending_operation": None,
        "last_error": "",
        "deleted_outside_portal": False,
        "fault": "",
        "created_at": NOW - timedelta(minutes=1),
        "running_since": None,
    }
    base.update(fields)
    return SimpleNamespace(**base)


def op(state: str = "running", step: str = "", started_at: datetime | None = None) -> Any:
    return SimpleNamespace(state=state, step=step, started_at=started_at)


# (fields, expected key, tone): the first matching rule of portal.status wins.
TABLE: list[tuple[dict[str, Any], str, Tone]] = [
    # The portal's own pending action comes first.
    ({"pending_action": "stop", "pending_operation": op("queued")}, "queued", Tone.BLUE),
    (
        {"pending_action": "launch", "pending_operation": op("queued"), "status": ""},
        "queued",
        Tone.BLUE,
    ),
    ({"pending_action": "launch", "pending_operation": op(), "status": ""}, "building", Tone.BLUE),
    ({"pending_action": "delete", "pending_operation": op()}, "deleting", Tone.BLUE),
    (
        {"pending_action": "start", "pending_operation": op(), "status": "SHUTOFF"},
        "starting",
        Tone.BLUE,
    ),
    ({"pending_action": "stop", "pending_operation": op()}, "stopping", Tone.BLUE),
    ({"pending_action": "reboot_soft", "pending_operation": op()}, "restarting", Tone.BLUE),
    ({"pending_action": "reboot_hard", "pending_operation": op()}, "restarting", Tone.BLUE),
    # Nova's transitional states, with or without a portal action.
    (
        {"status": "BUILD", "vm_state": "building", "task_state": "scheduling", "power_state": 0},
        "building",
        Tone.BLUE,
    ),
    ({"status": "BUILD", "task_state": "networking", "power_state": 0}, "building", Tone.BLUE),
    ({"status": "BUILD", "task_state": "spawning", "power_state": 0}, "building", Tone.BLUE),
    ({"status": "BUILD", "task_state": "", "power_state": None}, "building", Tone.BLUE),
    ({"status": "REBOOT", "task_state": "rebooting"}, "restarting", Tone.BLUE),
    ({"status": "HARD_REBOOT", "task_state": "rebooting_hard"}, "restarting", Tone.BLUE),
    ({"status": "ACTIVE", "task_state": "reboot_started"}, "restarting", Tone.BLUE),
    ({"status": "ACTIVE", "task_state": "image_snapshot"}, "running", Tone.GREEN),
    ({"status": "SHUTOFF", "task_state": "powering-on", "power_state": 4}, "starting", Tone.BLUE),
    ({"status": "ACTIVE", "task_state": "powering-off"}, "stopping", Tone.BLUE),
    ({"status": "ACTIVE", "task_state": "deleting"}, "deleting", Tone.BLUE),
    ({"status": "ERROR", "task_state": "deleting"}, "deleting", Tone.BLUE),
    # Stable states.
    ({"status": "ACTIVE", "power_state": 1}, "running", Tone.GREEN),
    ({"status": "ACTIVE", "power_state": 4}, "guest_off", Tone.AMBER),
    ({"status": "ACTIVE", "power_state": 0}, "guest_off", Tone.AMBER),
    ({"status": "ACTIVE", "power_state": 6}, "crashed", Tone.RED),
    ({"status": "ACTIVE", "power_state": 3}, "paused", Tone.AMBER),
    ({"status": "ACTIVE", "power_state": 7}, "suspended", Tone.AMBER),
    ({"status": "ACTIVE", "power_state": 9}, "unknown", Tone.GREY),
    ({"status": "ACTIVE", "power_state": None}, "unknown", Tone.GREY),
    ({"status": "SHUTOFF", "vm_state": "stopped", "power_state": 4}, "stopped", Tone.GREY),
    ({"status": "SHUTOFF", "power_state": 1}, "stopped", Tone.GREY),
    ({"status": "PAUSED", "vm_state": "paused", "power_state": 3}, "paused", Tone.AMBER),
    ({"status": "SUSPENDED", "vm_state": "suspended", "power_state": 7}, "suspended", Tone.AMBER),
    ({"status": "ERROR", "vm_state": "error", "power_state": 0}, "error", Tone.RED),
    ({"status": "ERROR", "last_error": "boom"}, "error", Tone.RED),
    ({"status": "", "last_error": "The cloud refused"}, "failed", Tone.RED),
    ({"status": "DELETED", "vm_state": "deleted", "power_state": None}, "deleted", Tone.GREY),
    ({"status": "DELETED", "deleted_outside_portal": True}, "gone", Tone.GREY),
    ({"status": "ACTIVE", "deleted_outside_portal": True}, "gone", Tone.GREY),
    # Nova statuses the portal never causes fall through to "unknown" with the raw values.
    ({"status": "MIGRATING", "task_state": "migrating"}, "unknown", Tone.GREY),
    ({"status": "PASSWORD"}, "unknown", Tone.GREY),
    ({"status": "REBUILD", "task_state": "rebuilding"}, "unknown", Tone.GREY),
    ({"status": "RESCUE", "vm_state": "rescued"}, "unknown", Tone.GREY),
    ({"status": "RESIZE", "task_state": "resize_prep"}, "unknown", Tone.GREY),
    ({"status": "REVERT_RESIZE"}, "unknown", Tone.GREY),
    ({"status": "VERIFY_RESIZE", "vm_state": "resized"}, "unknown", Tone.GREY),
    ({"status": "SHELVED", "vm_state": "shelved"}, "unknown", Tone.GREY),
    ({"status": "SHELVED_OFFLOADED", "vm_state": "shelved_offloaded"}, "unknown", Tone.GREY),
    ({"status": "SOFT_DELETED", "vm_state": "soft-delete"}, "unknown", Tone.GREY),
    ({"status": "UNKNOWN", "vm_state": "unknown"}, "unknown", Tone.GREY),
    ({"status": "SOMETHING_NEW"}, "unknown", Tone.GREY),
    ({"status": ""}, "unknown", Tone.GREY),
]


@pytest.mark.parametrize(("fields", "key", "tone"), TABLE)
def test_each_combination_decodes_to_one_status(
    fields: dict[str, Any], key: str, tone: Tone
) -> None:
    with translation.override("en"):
        for audience in Audience:
            status = merged_status(vm(**fields), audience=audience, now=NOW)
            assert (status.key, status.tone) == (key, tone)
            assert status.label
            assert status.explanation
            assert status.css_class == f"cs-badge cs-tone-{tone}"


def test_the_table_covers_every_nova_status_and_every_key() -> None:
    statuses = {fields.get("status") for fields, _key, _tone in TABLE}
    assert {s.value for s in ServerStatus} <= statuses
    keys = {key for _fields, key, _tone in TABLE}
    assert keys == {key for key, _label in STATUS_KEYS}


def test_only_the_blue_states_are_transitional() -> None:
    for fields, _key, tone in TABLE:
        status = merged_status(vm(**fields), now=NOW)
        assert status.transitional == (tone is Tone.BLUE)


def test_a_guest_that_shut_itself_down_says_to_start_it() -> None:
    with translation.override("en"):
        status = merged_status(vm(power_state=4), now=NOW)
    assert status.label == "Off (guest shut down)"
    assert "shut itself down" in status.explanation
    assert status.next_step == "Start it."


def test_a_crashed_vm_says_hard_reboot() -> None:
    with translation.override("en"):
        assert "hard reboot" in merged_status(vm(power_state=6), now=NOW).next_step


def test_a_build_past_the_expected_time_says_it_is_taking_longer(settings: Any) -> None:
    settings.STATUS_BUILD_SLOW_SECONDS = 300
    slow = vm(status="BUILD", created_at=NOW - timedelta(minutes=6))
    quick = vm(status="BUILD", created_at=NOW - timedelta(minutes=1))
    with translation.override("en"):
        assert "longer than usual" in merged_status(slow, now=NOW).next_step
        assert "longer than usual" not in merged_status(quick, now=NOW).next_step


def test_a_build_explains_the_operations_step() -> None:
    building = vm(status="BUILD", pending_action="launch", pending_operation=op(step="wait_active"))
    with translation.override("en"):
        assert "building the VM" in merged_status(building, now=NOW).explanation


def test_errors_show_nova_fault_to_staff_and_plain_words_to_soldiers() -> None:
    broken = vm(status="ERROR", fault="No valid host was found", last_error="launch failed")
    with translation.override("en"):
        staff = merged_status(broken, audience=Audience.STAFF, now=NOW)
        soldier = merged_status(broken, audience=Audience.SOLDIER, now=NOW)
    assert "No valid host was found" in staff.explanation
    assert "launch failed" in staff.explanation
    assert "No valid host" not in soldier.explanation + soldier.next_step
    assert "Staff have been notified" in soldier.next_step


def test_a_failed_action_on_a_stable_vm_keeps_the_state_and_reports_the_problem() -> None:
    with translation.override("en"):
        status = merged_status(vm(last_error="The cloud refused (409)"), now=NOW)
        soldier = merged_status(
            vm(last_error="The cloud refused (409)"), audience=Audience.SOLDIER, now=NOW
        )
    assert status.key == "running"
    assert "The cloud refused (409)" in status.problem
    assert "409" not in soldier.problem
    assert soldier.problem


def test_unknown_values_are_shown_raw() -> None:
    with translation.override("en"):
        status = merged_status(vm(status="SHELVED", vm_state="shelved", power_state=4), now=NOW)
    assert status.label == "Unknown (SHELVED)"
    assert "shelved" in status.explanation
    assert "4" in status.explanation


def test_labels_are_korean_by_default() -> None:
    with translation.override("ko"):
        assert merged_status(vm(), now=NOW).label == "실행 중"
        assert merged_status(vm(status="SHUTOFF", power_state=4), now=NOW).label == "꺼짐"


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (0, "No state"),
        (1, "Running"),
        (3, "Paused"),
        (4, "Shutdown"),
        (6, "Crashed"),
        (7, "Suspended"),
        (2, "Unknown (2)"),
        (5, "Unknown (5)"),
        (8, "Unknown (8)"),
        (9, "Unknown (9)"),
        (42, "Unknown (42)"),
        (None, "Unknown"),
    ],
)
def test_power_states_are_named_and_unknown_numbers_kept(code: int | None, label: str) -> None:
    with translation.override("en"):
        assert power_state_label(code) == label


def test_times_are_shown_in_seoul_with_the_original_and_utc_in_the_tooltip() -> None:
    launched = datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC)
    assert format_kst(launched) == "2020-10-16 15:26 KST"
    assert iso_utc(launched) == "2020-10-16T06:26:08Z"
    with translation.override("en"):
        tip = time_tooltip(launched, "2020-10-16T06:26:08.000000")
    assert "2020-10-16T06:26:08.000000" in tip
    assert "2020-10-16 06:26:08 UTC" in tip


def test_uptime_counts_from_running_since_and_only_while_running() -> None:
    since = NOW - timedelta(hours=3, minutes=5)
    assert uptime(vm(running_since=since), now=NOW) == timedelta(hours=3, minutes=5)
    assert uptime(vm(running_since=since, power_state=4), now=NOW) is None
    assert uptime(vm(running_since=None), now=NOW) is None
    with translation.override("en"):
        assert format_duration(timedelta(hours=3, minutes=5)) == "3 hours 5 minutes"
        assert format_duration(timedelta(days=2, hours=1, minutes=9)) == "2 days 1 hour"
        assert format_duration(timedelta(seconds=20)) == "0 minutes"


def test_d_day_counts_down() -> None:
    with translation.override("en"):
        assert (d_day(3), d_day(0), d_day(-1), d_day(None)) == ("D-3", "D-day", "D+1", "")


def test_power_state_enum_compares_with_the_mirrors_number() -> None:
    assert PowerState.RUNNING == 1
    assert ServerStatus.ACTIVE == "ACTIVE"
