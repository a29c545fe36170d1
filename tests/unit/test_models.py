"""Models: power-state display, discharge dates and warnings, operation messages and locks."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import translation

from portal.models import (
    POWER_STATE_CHOICES,
    Batch,
    Instance,
    Operation,
    PowerState,
    Project,
    Soldier,
    power_state_label,
    seoul_today,
)

pytestmark = pytest.mark.django_db


def make_soldier(username: str = "kim", **fields: Any) -> Soldier:
    user = get_user_model().objects.create_user(username=username)
    return Soldier.objects.create(
        user=user,
        service_number=f"SN-{username}",
        name=username,
        keystone_user_name=username,
        **fields,
    )


def make_instance(soldier: Soldier, **fields: object) -> Instance:
    project, _ = Project.objects.get_or_create(soldier=soldier, defaults={"name": f"cs-{soldier}"})
    return Instance.objects.create(project=project, owner=soldier, name="vm", **fields)


@pytest.mark.parametrize(
    ("code", "english"),
    [
        (0, "No state"),
        (1, "Running"),
        (3, "Paused"),
        (4, "Shutdown"),
        (6, "Crashed"),
        (7, "Suspended"),
        (5, "Unknown (5)"),
        (9, "Unknown (9)"),
        (None, "Unknown"),
    ],
)
def test_power_state_display_names_known_codes_and_numbers_unknown_ones(
    code: int | None, english: str
) -> None:
    soldier = make_soldier()
    instance = make_instance(soldier, power_state=code)
    with translation.override("en"):
        assert instance.get_power_state_display() == english
        assert power_state_label(code) == english


def test_power_state_choices_are_novas_codes() -> None:
    assert [code for code, _label in POWER_STATE_CHOICES] == [0, 1, 3, 4, 6, 7]
    assert all(code == PowerState(code) for code, _label in POWER_STATE_CHOICES)


def test_power_state_display_is_korean_by_default(settings: Any) -> None:
    assert settings.LANGUAGE_CODE == "ko"
    with translation.override(settings.LANGUAGE_CODE):
        assert power_state_label(1) == "실행 중"
        assert power_state_label(9) == "알 수 없음 (9)"


def test_discharge_warning_starts_the_configured_number_of_days_before(settings: Any) -> None:
    settings.DISCHARGE_WARNING_DAYS = 14
    today = seoul_today()
    soldier = make_soldier(discharge_on=today + timedelta(days=14), state=Soldier.State.ACTIVE)
    assert soldier.discharge_warning
    assert soldier.days_until_discharge == 14
    soldier.discharge_on = today + timedelta(days=15)
    assert not soldier.discharge_warning
    soldier.discharge_on = today
    assert soldier.discharge_warning
    assert not soldier.discharge_due


def test_discharge_is_due_the_day_after_the_discharge_date() -> None:
    soldier = make_soldier(discharge_on=seoul_today() - timedelta(days=1))
    assert soldier.discharge_due
    assert not soldier.discharge_warning


def test_postponing_moves_the_effective_date_but_never_earlier() -> None:
    today = seoul_today()
    soldier = make_soldier(
        discharge_on=today - timedelta(days=1),
        discharge_postponed_until=today + timedelta(days=3),
    )
    assert soldier.effective_discharge_on == today + timedelta(days=3)
    assert not soldier.discharge_due
    soldier.discharge_postponed_until = today - timedelta(days=10)
    assert soldier.effective_discharge_on == today - timedelta(days=1)


def test_disabled_soldiers_get_no_warning_and_are_not_due() -> None:
    soldier = make_soldier(
        discharge_on=seoul_today() - timedelta(days=1), state=Soldier.State.DISABLED
    )
    assert not soldier.discharge_due
    assert not soldier.discharge_warning


def test_operation_message_is_translated_when_shown_and_keeps_parameters() -> None:
    op = Operation.objects.create(
        kind=Operation.Kind.LAUNCH,
        message="The cloud rejected the request (%(detail)s; request %(request_id)s).",
        message_params={"detail": "bad flavor", "request_id": "req-1"},
    )
    with translation.override("en"):
        assert op.message_text == "The cloud rejected the request (bad flavor; request req-1)."
    with translation.override("ko"):
        assert "bad flavor" in op.message_text
        assert "req-1" in op.message_text


def test_operation_message_with_broken_parameters_still_shows_the_text() -> None:
    op = Operation(
        kind=Operation.Kind.LAUNCH, message="Broken %(missing)s", message_params={"x": 1}
    )
    assert op.message_text == "Broken %(missing)s"


def test_only_one_active_operation_per_lock_key() -> None:
    Operation.objects.create(kind=Operation.Kind.POWER, lock_key="instance:1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Operation.objects.create(kind=Operation.Kind.DELETE, lock_key="instance:1")


def test_a_finished_operation_frees_its_lock_key() -> None:
    Operation.objects.create(
        kind=Operation.Kind.POWER, lock_key="instance:1", state=Operation.State.SUCCEEDED
    )
    Operation.objects.create(
        kind=Operation.Kind.POWER, lock_key="instance:1", state=Operation.State.FAILED
    )
    Operation.objects.create(kind=Operation.Kind.DELETE, lock_key="instance:1")
    assert Operation.objects.active().count() == 1


def test_operations_without_lock_key_never_conflict() -> None:
    for _ in range(3):
        Operation.objects.create(kind=Operation.Kind.PASSWORD_CHANGE)
    assert Operation.objects.active().count() == 3


def test_batch_progress_counts_finished_operations() -> None:
    batch = Batch(kind="launch", total=8, succeeded=3, failed=1)
    assert batch.done == 4
    assert batch.percent == 50
    assert Batch(kind="launch", total=0).percent == 100


def test_the_warning_list_holds_exactly_the_soldiers_a_warning_is_shown_to(settings: Any) -> None:
    settings.DISCHARGE_WARNING_DAYS = 7
    today = seoul_today()
    cases: dict[str, dict[str, Any]] = {
        "soon": {"discharge_on": today + timedelta(days=7)},
        "today": {"discharge_on": today},
        "later": {"discharge_on": today + timedelta(days=8)},
        "past": {"discharge_on": today - timedelta(days=1)},
        "postponed_out": {
            "discharge_on": today + timedelta(days=2),
            "discharge_postponed_until": today + timedelta(days=30),
        },
        "postponed_in": {
            "discharge_on": today - timedelta(days=3),
            "discharge_postponed_until": today + timedelta(days=3),
        },
        "disabled": {"discharge_on": today + timedelta(days=1), "state": Soldier.State.DISABLED},
        "no_date": {},
    }
    soldiers = [make_soldier(name, **fields) for name, fields in cases.items()]

    listed = set(Soldier.objects.discharge_warning().values_list("name", flat=True))

    assert listed == {"soon", "today", "postponed_in"}
    assert listed == {s.name for s in soldiers if s.discharge_warning}
