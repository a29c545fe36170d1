"""Pure unit tests of devcloud's building blocks (no server, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devcloud.compute import status_of
from devcloud.core import Response, Router, iso_naive, iso_z, page, parse_time
from devcloud.faults import Fault, Faults


@pytest.mark.parametrize(
    ("vm_state", "task_state", "status"),
    [
        ("building", "scheduling", "BUILD"),
        ("active", None, "ACTIVE"),
        ("active", "powering-off", "ACTIVE"),
        ("active", "rebooting", "REBOOT"),
        ("active", "rebooting_hard", "HARD_REBOOT"),
        ("active", "deleting", "ACTIVE"),
        ("stopped", None, "SHUTOFF"),
        ("stopped", "powering-on", "SHUTOFF"),
        ("error", None, "ERROR"),
        ("deleted", None, "DELETED"),
        ("rescued", None, "UNKNOWN"),
    ],
)
def test_status_is_derived_from_vm_and_task_state(
    vm_state: str, task_state: str | None, status: str
) -> None:
    assert status_of(vm_state, task_state) == status


def test_times_are_written_in_each_services_own_form() -> None:
    moment = datetime(2020, 10, 16, 6, 26, 8, 123456, tzinfo=UTC).timestamp()
    assert iso_z(moment) == "2020-10-16T06:26:08Z"
    assert iso_naive(moment) == "2020-10-16T06:26:08.123456"
    assert iso_naive(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "2020-10-16T06:26:08Z",
        "2020-10-16T06:26:08.000000",
        "2020-10-16T15:26:08+09:00",
        "2020-10-16T06:26:08.000000Z",
    ],
)
def test_parse_time_accepts_z_offsets_and_naive_utc(text: str) -> None:
    assert parse_time(text) == datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC).timestamp()


def test_parse_time_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_time("yesterday")


def test_the_router_tells_an_unknown_path_from_a_wrong_method() -> None:
    router = Router()
    router.add("GET", "/v3/users/(?P<user_id>[^/]+)", lambda req: Response(200))
    router.add("PATCH", "/v3/users/(?P<user_id>[^/]+)", lambda req: Response(200))
    route, params, allowed = router.match("GET", "/v3/users/abc")
    assert route is not None
    assert params == {"user_id": "abc"}
    route, _, allowed = router.match("POST", "/v3/users/abc")
    assert route is None
    assert sorted(allowed) == ["GET", "PATCH"]
    assert router.match("GET", "/v3/nothing") == (None, {}, [])


def test_page_slices_after_the_marker_and_reports_more() -> None:
    items = [{"id": str(n)} for n in range(5)]
    assert page(items, 2, None) == (items[:2], True)
    assert page(items, 2, "3") == ([items[4]], False)
    assert page(items, None, "1") == (items[2:], False)
    assert page(items, 2, "missing") is None


def test_a_counted_fault_retires_after_its_hits() -> None:
    faults = Faults(seed=1)
    faults.add(Fault(method="POST", path="/servers$", status=500, count=2))
    assert faults.decide("GET", "/compute/v2.1/servers").fault is None
    hits = [faults.decide("POST", "/compute/v2.1/servers").fault for _ in range(3)]
    assert [h is not None for h in hits] == [True, True, False]
    assert faults.list() == []


def test_latencies_add_up_and_the_first_effect_wins() -> None:
    faults = Faults(seed=1)
    faults.add(Fault(status=None, latency=0.2))
    first = faults.add(Fault(status=503))
    faults.add(Fault(status=500))
    decision = faults.decide("GET", "/image/v2/images")
    assert decision.latency == pytest.approx(0.2)
    assert decision.fault is first


def test_a_seeded_fraction_is_repeatable() -> None:
    def run() -> list[bool]:
        faults = Faults(seed=7)
        faults.add(Fault(status=503, fraction=0.3))
        return [faults.decide("GET", "/x").fault is not None for _ in range(50)]

    assert run() == run()
    assert 0 < sum(run()) < 50


@pytest.mark.parametrize(
    ("field", "value"),
    [("action", "explode"), ("fraction", 1.5), ("count", 0), ("latency", -1), ("status", 200)],
)
def test_invalid_fault_rules_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Faults().add(Fault(**{field: value}))  # type: ignore[arg-type]


def test_build_failures_are_used_once_each() -> None:
    faults = Faults()
    faults.fail_builds(2, "boom")
    assert [faults.next_build_failure() for _ in range(3)] == ["boom", "boom", None]
