"""The merged status decoder: one table over every Nova status, task state and power state."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from portal.models import power_state_label
from portal.openstack.types import PowerState, ServerStatus
from portal.status import (
    ATTENTION_KEYS,
    STATUS_KEYS,
    STATUSES,
    TRANSITIONAL_KEYS,
    Audience,
    StatusKey,
    Tone,
    build_slow_after,
    d_day,
    format_duration,
    format_kst,
    format_utc,
    iso_utc,
    merged_status,
    time_tooltip,
    to_seoul,
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
    # NOSTATE on an ACTIVE server: the hypervisor has no such domain, the guest did not shut down.
    ({"status": "ACTIVE", "power_state": 0}, "not_seen", Tone.RED),
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
    ({"status": "DELETED", "deleted_outside_portal": True}, "gone", Tone.PURPLE),
    ({"status": "ACTIVE", "deleted_outside_portal": True}, "gone", Tone.PURPLE),
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
    ({"status": None, "power_state": None}, "unknown", Tone.GREY),
    # A pending delete wins over what Nova says, even a deleted, vanished or building server.
    (
        {"pending_action": "delete", "pending_operation": op(), "status": "DELETED"},
        "deleting",
        Tone.BLUE,
    ),
    (
        {"pending_action": "delete", "pending_operation": op(), "deleted_outside_portal": True},
        "deleting",
        Tone.BLUE,
    ),
    (
        {"pending_action": "delete", "pending_operation": op(), "status": "BUILD"},
        "deleting",
        Tone.BLUE,
    ),
    (
        {"pending_action": "delete", "pending_operation": op(), "status": "REBOOT"},
        "deleting",
        Tone.BLUE,
    ),
    # A launch the cloud has not reported on yet is building, whatever task state is left over.
    (
        {
            "pending_action": "launch",
            "pending_operation": op(),
            "status": "",
            "task_state": "powering-on",
        },
        "building",
        Tone.BLUE,
    ),
    (
        {
            "pending_action": "launch",
            "pending_operation": op(),
            "status": "",
            "task_state": "reboot_started",
        },
        "building",
        Tone.BLUE,
    ),
    # Once the cloud reports a status, a pending launch no longer hides Nova's transitions.
    (
        {"pending_action": "launch", "pending_operation": op(), "task_state": "powering-off"},
        "stopping",
        Tone.BLUE,
    ),
    # Nova's transitions win over the portal's pending (running) action.
    (
        {"pending_action": "stop", "pending_operation": op(), "task_state": "reboot_started"},
        "restarting",
        Tone.BLUE,
    ),
    (
        {"pending_action": "delete", "pending_operation": op("queued"), "status": "DELETED"},
        "queued",
        Tone.BLUE,
    ),
    # An action whose operation is not loaded still shows; a queued operation without an action
    # (already cleared) does not.
    ({"pending_action": "stop", "pending_operation": None}, "stopping", Tone.BLUE),
    ({"pending_action": "", "pending_operation": op("queued")}, "running", Tone.GREEN),
    (
        {"pending_action": "start", "pending_operation": op("running"), "status": "ERROR"},
        "starting",
        Tone.BLUE,
    ),
    ({"status": "", "last_error": ""}, "unknown", Tone.GREY),
    ({"status": "SHUTOFF", "last_error": "refused"}, "stopped", Tone.GREY),
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


STAFF, SOLDIER = Audience.STAFF, Audience.SOLDIER
UPDATES_ITSELF = "Nothing to do: this page updates by itself."
PAUSED_WORDS = "The VM was paused or suspended in the cloud."
SLOW = "This is taking longer than usual. If it does not finish soon, staff can look at it."
SHELVED = {"status": "SHELVED", "vm_state": "shelved", "power_state": 4}
BROKEN = {"status": "ERROR", "fault": "No valid host was found", "last_error": "launch failed"}
BUILDING_AT_STEP = {
    "status": "BUILD",
    "pending_action": "launch",
    "pending_operation": op(step="wait_active"),
}

# (fields, audience, label, explanation, next step): exactly what people read, in English.
WORDS: list[tuple[dict[str, Any], Audience, str, str, str]] = [
    *[
        (
            {"pending_action": "stop", "pending_operation": op("queued")},
            audience,
            "Queued",
            "Your request is queued and will reach the cloud shortly.",
            UPDATES_ITSELF,
        )
        for audience in Audience
    ],
    *[
        ({"status": "BUILD"}, audience, "Building", "The VM is being created.", UPDATES_ITSELF)
        for audience in Audience
    ],
    *[
        (
            BUILDING_AT_STEP,
            audience,
            "Building",
            "The VM is being created: the cloud is building the VM.",
            UPDATES_ITSELF,
        )
        for audience in Audience
    ],
    *[
        (
            {"status": "BUILD", "created_at": NOW - timedelta(minutes=6)},
            audience,
            "Building",
            "The VM is being created.",
            SLOW,
        )
        for audience in Audience
    ],
    # An operation left on the row without a pending action says nothing about the build.
    *[
        (
            {
                "status": "BUILD",
                "pending_operation": op(step="wait_active", started_at=NOW - timedelta(hours=1)),
            },
            audience,
            "Building",
            "The VM is being created.",
            UPDATES_ITSELF,
        )
        for audience in Audience
    ],
    *[
        ({"status": "REBOOT"}, audience, "Restarting", "The VM is restarting.", "")
        for audience in Audience
    ],
    *[
        ({"task_state": "powering-on"}, audience, "Starting", "The VM is starting.", "")
        for audience in Audience
    ],
    *[
        ({"task_state": "powering-off"}, audience, "Stopping", "The VM is shutting down.", "")
        for audience in Audience
    ],
    *[
        (
            {"task_state": "deleting"},
            audience,
            "Deleting",
            "The VM is being deleted, then its public address is released.",
            "",
        )
        for audience in Audience
    ],
    ({}, STAFF, "Running", "The VM is running.", "Nothing to do."),
    ({}, SOLDIER, "Running", "The VM is running.", "Connect with the SSH command below."),
    *[
        (
            {"power_state": 4},
            audience,
            "Off (guest shut down)",
            "The operating system inside the VM shut itself down; the cloud has not noticed yet.",
            "Start it.",
        )
        for audience in Audience
    ],
    (
        {"power_state": 0},
        Audience.STAFF,
        "Not seen by its host",
        "Nova says the VM is active, but its hypervisor does not report it (power state "
        "NOSTATE): the host may have lost the VM, or nova-compute on that host is down.",
        "Check nova-compute on the VM's host, then sync; if the host is fine, a hard reboot "
        "brings the VM back.",
    ),
    (
        {"power_state": 0},
        Audience.SOLDIER,
        "Not seen by its host",
        "The cloud cannot see your VM on its server right now.",
        "Staff see this on their console; ask them if it lasts.",
    ),
    *[
        (
            {"power_state": 6},
            audience,
            "Crashed",
            "The VM's operating system crashed.",
            "Restart it with a hard reboot.",
        )
        for audience in Audience
    ],
    *[
        ({"status": "SHUTOFF"}, audience, "Stopped", "The VM is switched off.", "Start it.")
        for audience in Audience
    ],
    ({"status": "PAUSED"}, STAFF, "Paused", PAUSED_WORDS, "Resume it in the cloud, then sync."),
    ({"status": "PAUSED"}, SOLDIER, "Paused", PAUSED_WORDS, "Only staff can resume it; ask them."),
    ({"power_state": 7}, STAFF, "Suspended", PAUSED_WORDS, "Resume it in the cloud, then sync."),
    ({"power_state": 7}, SOLDIER, "Suspended", PAUSED_WORDS, "Only staff can resume it; ask them."),
    (
        {"status": "ERROR"},
        STAFF,
        "Error",
        "The cloud reports an error for this VM.",
        "Retry the failed operation, or delete the VM.",
    ),
    (
        BROKEN,
        STAFF,
        "Error",
        "The cloud reports an error for this VM. Cloud fault: No valid host was found "
        "launch failed",
        "Retry the failed operation, or delete the VM.",
    ),
    (
        {"status": "ERROR", "fault": "No valid host was found"},
        STAFF,
        "Error",
        "The cloud reports an error for this VM. Cloud fault: No valid host was found",
        "Retry the failed operation, or delete the VM.",
    ),
    (
        {"status": "ERROR", "last_error": "launch failed"},
        STAFF,
        "Error",
        "The cloud reports an error for this VM. launch failed",
        "Retry the failed operation, or delete the VM.",
    ),
    (
        BROKEN,
        SOLDIER,
        "Error",
        "The cloud reports an error for this VM.",
        "Staff have been notified and will fix or replace it.",
    ),
    (
        {"status": "", "last_error": "The cloud refused (409)"},
        STAFF,
        "Action failed",
        "The cloud refused (409)",
        "Retry the operation from its detail page.",
    ),
    (
        {"status": "", "last_error": "The cloud refused (409)"},
        SOLDIER,
        "Action failed",
        "The portal could not finish your last request.",
        "Try again later, or ask staff if it keeps failing.",
    ),
    (
        {"deleted_outside_portal": True},
        STAFF,
        "Gone",
        "The VM was deleted outside the portal.",
        "See the drift page.",
    ),
    (
        {"deleted_outside_portal": True},
        SOLDIER,
        "Gone",
        "The VM was deleted outside the portal.",
        "Request a new VM if you still need one.",
    ),
    *[
        ({"status": "DELETED"}, audience, "Deleted", "The VM was deleted.", "")
        for audience in Audience
    ],
    (
        SHELVED,
        STAFF,
        "Unknown (SHELVED)",
        "status SHELVED, VM state shelved, task -, power 4",
        "Sync it with the cloud and look at it there.",
    ),
    (
        SHELVED,
        SOLDIER,
        "Unknown (SHELVED)",
        "status SHELVED, VM state shelved, task -, power 4",
        "Ask staff to look at it.",
    ),
    (
        {"status": "", "vm_state": "", "power_state": None},
        STAFF,
        "Unknown (-)",
        "status -, VM state -, task -, power -",
        "Sync it with the cloud and look at it there.",
    ),
    (
        {"status": "MIGRATING", "task_state": "migrating", "power_state": 0},
        SOLDIER,
        "Unknown (MIGRATING)",
        "status MIGRATING, VM state active, task migrating, power 0",
        "Ask staff to look at it.",
    ),
]


@pytest.mark.parametrize(("fields", "audience", "label", "explanation", "next_step"), WORDS)
def test_each_status_reads_exactly_these_words(
    fields: dict[str, Any], audience: Audience, label: str, explanation: str, next_step: str
) -> None:
    with translation.override("en"):
        status = merged_status(vm(**fields), audience=audience, now=NOW)
    assert (status.label, status.explanation, status.next_step) == (label, explanation, next_step)
    assert status.problem == ""


def test_the_words_table_covers_every_key_for_both_audiences() -> None:
    read = {
        (merged_status(vm(**fields), audience=audience, now=NOW).key, audience)
        for fields, audience, *_words in WORDS
    }
    assert read == {(key, audience) for key in StatusKey for audience in Audience}


def test_keys_are_listed_in_rule_order_with_their_labels() -> None:
    with translation.override("en"):
        listed = [(key, str(label)) for key, label in STATUS_KEYS]
    assert listed == [
        ("queued", "Queued"),
        ("building", "Building"),
        ("restarting", "Restarting"),
        ("starting", "Starting"),
        ("stopping", "Stopping"),
        ("deleting", "Deleting"),
        ("running", "Running"),
        ("guest_off", "Off (guest shut down)"),
        ("not_seen", "Not seen by its host"),
        ("crashed", "Crashed"),
        ("stopped", "Stopped"),
        ("paused", "Paused"),
        ("suspended", "Suspended"),
        ("error", "Error"),
        ("failed", "Action failed"),
        ("gone", "Gone"),
        ("deleted", "Deleted"),
        ("unknown", "Unknown"),
    ]
    assert list(STATUSES) == list(StatusKey)
    assert {
        StatusKey.QUEUED,
        StatusKey.BUILDING,
        StatusKey.RESTARTING,
        StatusKey.STARTING,
        StatusKey.STOPPING,
        StatusKey.DELETING,
    } == TRANSITIONAL_KEYS


def test_the_keys_that_need_a_person_are_the_broken_the_stuck_and_the_gone() -> None:
    assert {
        StatusKey.NOT_SEEN,
        StatusKey.CRASHED,
        StatusKey.PAUSED,
        StatusKey.SUSPENDED,
        StatusKey.ERROR,
        StatusKey.FAILED,
        StatusKey.GONE,
    } == ATTENTION_KEYS
    # Gone has a colour of its own: not off (grey), not broken (red).
    tones = {key: spec.tone for key, spec in STATUSES.items()}
    assert [key for key, tone in tones.items() if tone is Tone.PURPLE] == [StatusKey.GONE]


def test_the_status_key_is_the_enum_and_compares_with_its_string() -> None:
    status = merged_status(vm(), now=NOW)
    assert status.key is StatusKey.RUNNING
    assert status.key == "running"
    assert f"{status.key}" == "running"


def test_each_spec_gives_each_audience_its_own_words() -> None:
    spec = STATUSES[StatusKey.RUNNING]
    assert spec.words(Audience.STAFF) is spec.staff
    assert spec.words(Audience.SOLDIER) is spec.soldier
    assert spec.staff != spec.soldier
    same = STATUSES[StatusKey.QUEUED]
    assert same.words(Audience.SOLDIER) is same.words(Audience.STAFF) is same.staff


@pytest.mark.parametrize(
    ("fields", "staff_problem"),
    [
        ({"last_error": "refused (409)"}, "The last action failed: refused (409)"),
        ({"status": "SHUTOFF", "last_error": "refused"}, "The last action failed: refused"),
        (
            {"pending_action": "stop", "pending_operation": op(), "last_error": "x"},
            "The last action failed: x",
        ),
        ({"status": "ERROR", "last_error": "launch failed"}, ""),
        ({"status": "", "last_error": "refused"}, ""),
        ({"pending_action": "stop", "pending_operation": op("queued"), "last_error": "x"}, ""),
        ({"last_error": ""}, ""),
    ],
)
def test_a_problem_line_only_where_the_status_does_not_already_say_it(
    fields: dict[str, Any], staff_problem: str
) -> None:
    soldier_problem = (
        "Your last request could not be finished. You can try again." if staff_problem else ""
    )
    with translation.override("en"):
        assert merged_status(vm(**fields), audience=STAFF, now=NOW).problem == staff_problem
        assert merged_status(vm(**fields), audience=SOLDIER, now=NOW).problem == soldier_problem


def test_the_default_audience_is_staff() -> None:
    with translation.override("en"):
        assert merged_status(vm(), now=NOW).next_step == "Nothing to do."


def test_a_build_step_without_words_keeps_the_plain_sentence() -> None:
    building = vm(status="BUILD", pending_action="launch", pending_operation=op(step="bogus"))
    with translation.override("en"):
        assert merged_status(building, now=NOW).explanation == "The VM is being created."


def test_build_slow_after_is_the_setting(settings: Any) -> None:
    settings.STATUS_BUILD_SLOW_SECONDS = 30
    assert build_slow_after() == timedelta(seconds=30)
    settings.STATUS_BUILD_SLOW_SECONDS = "2.5"  # as a string from the environment would be
    assert build_slow_after() == timedelta(seconds=2.5)


def test_build_slowness_counts_from_the_operations_start_and_only_past_the_limit(
    settings: Any,
) -> None:
    settings.STATUS_BUILD_SLOW_SECONDS = 60
    long_ago = NOW - timedelta(hours=1)

    def next_step(**fields: Any) -> str:
        with translation.override("en"):
            return merged_status(vm(status="BUILD", **fields), now=NOW).next_step

    # The operation's start wins over the row's creation.
    started = {"pending_action": "launch", "created_at": long_ago}
    assert next_step(pending_operation=op(started_at=NOW - timedelta(seconds=59)), **started) == (
        UPDATES_ITSELF
    )
    assert next_step(pending_operation=op(started_at=NOW - timedelta(seconds=61)), **started) == (
        SLOW
    )
    # Exactly at the limit is not slower than usual yet.
    assert next_step(created_at=NOW - timedelta(seconds=60)) == UPDATES_ITSELF
    assert next_step(created_at=NOW - timedelta(seconds=61)) == SLOW
    # A not yet started operation falls back to the row's creation; no time at all is not slow.
    assert next_step(pending_action="launch", pending_operation=op(), created_at=long_ago) == SLOW
    assert next_step(created_at=None) == UPDATES_ITSELF


def test_naive_times_are_taken_as_utc() -> None:
    # Nova's launched_at carries no offset.
    naive = datetime(2020, 10, 16, 6, 26, 8)
    aware = naive.replace(tzinfo=UTC)
    assert to_seoul(naive) == to_seoul(aware)
    assert to_seoul(naive).utcoffset() == timedelta(hours=9)
    assert to_seoul(naive).tzinfo == ZoneInfo("Asia/Seoul")
    assert format_kst(naive) == "2020-10-16 15:26 KST"
    assert iso_utc(naive) == "2020-10-16T06:26:08Z"
    assert format_utc(naive) == "2020-10-16 06:26:08 UTC"
    with translation.override("en"):
        assert time_tooltip(naive) == "2020-10-16 06:26:08 UTC"


def test_times_in_other_zones_are_converted() -> None:
    seoul_noon = datetime(2020, 10, 16, 12, 0, 5, tzinfo=ZoneInfo("Asia/Seoul"))
    assert iso_utc(seoul_noon) == "2020-10-16T03:00:05Z"
    assert format_utc(seoul_noon) == "2020-10-16 03:00:05 UTC"
    assert format_kst(seoul_noon) == "2020-10-16 12:00 KST"


def test_format_kst_with_seconds_and_without_a_time() -> None:
    launched = datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC)
    assert format_kst(launched, seconds=True) == "2020-10-16 15:26:08 KST"
    assert format_kst(None) == ""
    assert format_kst(None, seconds=True) == ""


def test_the_tooltip_names_the_original_then_utc() -> None:
    launched = datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC)
    with translation.override("en"):
        assert time_tooltip(launched, "2020-10-16T06:26:08.000000") == (
            "original: 2020-10-16T06:26:08.000000 · 2020-10-16 06:26:08 UTC"
        )
        assert time_tooltip(launched) == "2020-10-16 06:26:08 UTC"


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(0), "0 minutes"),
        (timedelta(seconds=59), "0 minutes"),
        (timedelta(seconds=-30), "0 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(seconds=90), "1 minute"),
        (timedelta(hours=1, minutes=1, seconds=30), "1 hour 1 minute"),
        (timedelta(minutes=59, seconds=59), "59 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=1, minutes=1), "1 hour 1 minute"),
        (timedelta(hours=23, minutes=59), "23 hours 59 minutes"),
        (timedelta(days=1), "1 day"),
        (timedelta(days=1, minutes=5), "1 day"),
        (timedelta(days=1, hours=1), "1 day 1 hour"),
        (timedelta(days=3, hours=4, minutes=5), "3 days 4 hours"),
        (timedelta(days=400), "400 days"),
    ],
)
def test_durations_show_two_units_at_most(delta: timedelta, words: str) -> None:
    with translation.override("en"):
        assert format_duration(delta) == words


def test_uptime_defaults_to_now() -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    up = uptime(vm(running_since=since))
    assert up is not None
    assert timedelta(hours=1) <= up < timedelta(hours=1, minutes=1)
    assert uptime(vm(running_since=since, power_state=None)) is None


def test_d_day_counts_in_days_both_ways() -> None:
    with translation.override("en"):
        assert (d_day(1), d_day(12), d_day(-7)) == ("D-1", "D-12", "D+7")
    with translation.override("ko"):
        assert d_day(0) != ""


def test_a_mirror_row_without_the_optional_fields_still_decodes() -> None:
    # Only what the decision needs: no pending action or operation, fault or running_since.
    needed: dict[str, Any] = {
        "vm_state": "",
        "task_state": "",
        "power_state": 1,
        "last_error": "",
        "deleted_outside_portal": False,
        "created_at": None,
    }
    with translation.override("en"):
        broken = merged_status(SimpleNamespace(status="ERROR", **needed), now=NOW)
        running = SimpleNamespace(status="ACTIVE", **needed)
        assert merged_status(running, now=NOW).key == "running"
        orphan = SimpleNamespace(status="ACTIVE", pending_operation=op("queued"), **needed)
        assert merged_status(orphan, now=NOW).key == "running"
        unloaded = SimpleNamespace(status="ACTIVE", pending_action="stop", **needed)
        assert merged_status(unloaded, now=NOW).key == "stopping"
    assert broken.explanation == "The cloud reports an error for this VM."
    assert uptime(running, now=NOW) is None
