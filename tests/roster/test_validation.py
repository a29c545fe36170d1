"""The rules shared by the import and the services: what the cloud accepts as a soldier."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from portal import validation


def code_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        call(*args, **kwargs)
    return str(refused.value.code)


def test_a_username_must_leave_room_for_the_project_prefix_within_keystones_64(
    settings: Any,
) -> None:
    settings.OPENSTACK_PROJECT_PREFIX = "cs-"
    assert validation.username_max_length() == 61
    assert validation.clean_username("a" * 61) == "a" * 61
    assert code_of(validation.clean_username, "a" * 62) == "too_long"
    settings.OPENSTACK_PROJECT_PREFIX = "codesquare-soldier-project-"
    assert code_of(validation.clean_username, "a" * 40) == "too_long"


@pytest.mark.parametrize("name", ["admin", "nova", "neutron", "glance", "placement", "ADMIN"])
def test_the_clouds_own_users_cannot_be_soldiers(name: str) -> None:
    assert code_of(validation.clean_username, name) == "reserved"


def test_the_portals_own_cloud_user_and_configured_names_are_reserved(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  site:\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n"
        "      username: CodeSquare-Portal\n      password: x\n      project_name: admin\n"
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    settings.OPENSTACK_CLOUD = "site"
    settings.OPENSTACK_RESERVED_USERNAMES = ["backup", " Ops "]
    assert {"codesquare-portal", "backup", "ops", "nova"} <= validation.reserved_usernames()
    assert code_of(validation.clean_username, "codesquare-portal") == "reserved"


@pytest.mark.parametrize("name", ["kim minsu", "김민수", "-kim", "kim.", "a/b", "a@b"])
def test_a_username_is_lowercase_ascii_that_starts_and_ends_with_a_letter_or_digit(
    name: str,
) -> None:
    assert code_of(validation.clean_username, name) == "invalid"


def test_a_username_is_normalised_to_lowercase_nfkc() -> None:
    assert validation.clean_username("  Ｋｉｍ.Minsu_01 ") == "kim.minsu_01"


def test_the_derived_username_is_the_service_number_in_lowercase() -> None:
    assert validation.username_from_service_number("DEMO-0001") == "demo-0001"


@pytest.mark.parametrize(
    ("value", "code"),
    [("", "required"), ("1" * 33, "too_long"), ("22 71234567", "invalid"), ("-22", "invalid")],
)
def test_a_bad_service_number_is_refused(value: str, code: str) -> None:
    assert code_of(validation.clean_service_number, value) == code


def test_a_full_width_service_number_becomes_ascii() -> None:
    assert validation.clean_service_number("２２－７１２３４５６７") == "22-71234567"


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-05",
        "2024.03.05",
        "2024. 3. 5.",
        "20240305",
        20240305,
        "2024/3/5",
        datetime(2024, 3, 5, 0, 0),
        date(2024, 3, 5),
        "２０２４－０３－０５",
    ],
)
def test_roster_dates_are_read_in_every_written_form(value: object) -> None:
    assert validation.parse_date(value) == date(2024, 3, 5)


@pytest.mark.parametrize("value", ["2024-13-01", "2024-02-30", "05/03/2024", "45123", "soon"])
def test_a_date_that_is_not_one_is_refused(value: str) -> None:
    assert code_of(validation.parse_date, value) == "invalid_date"


def test_an_empty_date_is_no_date() -> None:
    assert validation.parse_date("  ") is None
    assert validation.parse_date(None) is None


def test_a_discharge_before_the_enlistment_is_refused() -> None:
    validation.check_service_dates(date(2024, 1, 1), date(2024, 1, 1))
    assert (
        code_of(validation.check_service_dates, date(2024, 1, 2), date(2024, 1, 1))
        == "discharge_before_enlistment"
    )


@pytest.mark.parametrize(
    ("value", "code"), [("=1+1", "formula"), ("@x", "formula"), ("a\x07", "control_characters")]
)
def test_names_that_spreadsheets_would_run_or_garble_are_refused(value: str, code: str) -> None:
    assert code_of(validation.clean_text, value, max_length=100) == code
