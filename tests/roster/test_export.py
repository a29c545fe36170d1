"""Exports from the Soldier and Instance admins: CSV with a BOM and .xlsx, filters honoured, and
a soldier export that imports back as "unchanged" for every row."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import openpyxl
import pytest
from django.test import Client
from django.urls import reverse

from portal.models import Instance, Project, Soldier
from tests.roster.conftest import Importer, soldier, template

pytestmark = pytest.mark.django_db


@pytest.fixture
def soldiers(staff: Any) -> list[Soldier]:
    first = soldier(
        "22-71234567",
        "22-71234567",
        name="김똠방",
        unit="제1대대",
        enlisted_on=date(2024, 3, 5),
        discharge_on=date(2099, 9, 4),
    )
    project = Project.objects.create(soldier=first, name="cs-22-71234567", keystone_id="p1")
    standard = template("standard")
    Instance.objects.create(
        project=project,
        owner=first,
        name="22-71234567-standard",
        template=standard,
        server_id="srv-1",
        status="ACTIVE",
        vm_state="active",
        power_state=1,
        floating_ip="203.0.113.7",
        fixed_ip="10.20.0.5",
        launched_at=datetime(2020, 10, 16, 6, 26, 8, tzinfo=UTC),
        launched_at_raw="2020-10-16T06:26:08.000000",
        addresses=[{"addr": "10.20.0.5", "type": "fixed"}],
    )
    Instance.objects.create(
        project=project, owner=first, name="old", status="DELETED", floating_ip="203.0.113.9"
    )
    second = soldier("DEMO-0001", "Soldier1", name="=데모", unit="-")
    Soldier.objects.filter(pk=second.pk).update(state=Soldier.State.DISABLED)
    third = soldier(
        "legacy_7",
        "admin.like",
        name="오래된",
        enlisted_on=date(2024, 5, 1),
        discharge_on=date(2024, 1, 1),
    )
    return [first, second, third]


def csv_rows(response: Any) -> list[list[str]]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_rows(response: Any) -> list[list[Any]]:
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def export(client: Client, model: str, file_format: str, query: str = "") -> Any:
    response = client.get(reverse(f"admin:portal_{model}_export", args=[file_format]) + query)
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    return response


def test_the_soldier_export_gives_project_vms_status_addresses_and_dates(
    soldiers: list[Soldier], staff_client: Client
) -> None:
    header, *rows = csv_rows(export(staff_client, "soldier", "csv"))
    assert header == [
        "Service number", "Name", "Unit", "Enlisted on", "Discharge on", "Username",
        "State", "Project", "VMs", "VM status", "Floating IPs", "Cloud access kept until",
    ]  # fmt: skip
    by_number = {row[0]: row for row in rows}
    assert by_number["22-71234567"] == [
        "22-71234567", "김똠방", "제1대대", "2024-03-05", "2099-09-04", "22-71234567",
        "Pending onboarding", "cs-22-71234567", "1", "22-71234567-standard: Running",
        "203.0.113.7", "",
    ]  # fmt: skip
    # A name Excel would run as a formula stays text.
    assert by_number["DEMO-0001"][1:3] == ["'=데모", "'-"]


def test_the_korean_soldier_export_has_the_headers_the_unit_uses(
    soldiers: list[Soldier], staff: Any
) -> None:
    client = Client(headers={"accept-language": "ko"})
    client.force_login(staff)
    header = csv_rows(export(client, "soldier", "csv"))[0]
    assert header[:6] == ["군번", "이름", "소속", "입대일", "전역일", "사용자명"]


def test_the_soldier_export_honours_the_changelist_filters_and_search(
    soldiers: list[Soldier], staff_client: Client
) -> None:
    changelist = staff_client.get(reverse("admin:portal_soldier_changelist") + "?unit=제1대대&p=1")
    link = (
        reverse("admin:portal_soldier_export", args=["xlsx"]) + "?unit=%EC%A0%9C1%EB%8C%80%EB%8C%80"
    )
    assert link in changelist.content.decode()
    rows = xlsx_rows(export(staff_client, "soldier", "xlsx", "?unit=제1대대"))
    assert [r[0] for r in rows[1:]] == ["22-71234567"]
    rows = xlsx_rows(export(staff_client, "soldier", "xlsx", "?q=DEMO"))
    assert [r[0] for r in rows[1:]] == ["DEMO-0001"]
    assert rows[1][1] == "=데모"  # a text cell, not a formula


def test_selected_soldiers_export_through_the_changelist_action(
    soldiers: list[Soldier], staff_client: Client
) -> None:
    response = staff_client.post(
        reverse("admin:portal_soldier_changelist"),
        {"action": "export_selected_xlsx", "_selected_action": [soldiers[2].pk]},
    )
    rows = xlsx_rows(response)
    assert [r[0] for r in rows[1:]] == ["legacy_7"]
    assert rows[1][3] == datetime(2024, 5, 1)  # a date cell


def test_the_instance_export_has_every_mirrored_field_and_times_in_kst_and_utc(
    soldiers: list[Soldier], staff_client: Client
) -> None:
    header, *rows = csv_rows(export(staff_client, "instance", "csv", "?status__exact=ACTIVE"))
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    for field in Instance._meta.concrete_fields:
        label = str(field.verbose_name)
        assert label in header or f"{label} (KST)" in header, label
    assert row["launched (KST)"] == "2020-10-16 15:26:08 KST"
    assert row["launched (UTC)"] == "2020-10-16T06:26:08Z"
    assert row["launched (as sent)"] == "2020-10-16T06:26:08.000000"
    assert row["power state"] == "Running"
    assert row["owner"] == "김똠방 (22-71234567)"
    assert row["Merged status"] == "Running"
    assert row["addresses"] == '[{"addr": "10.20.0.5", "type": "fixed"}]'
    xlsx = xlsx_rows(export(staff_client, "instance", "xlsx", "?status__exact=ACTIVE"))
    assert xlsx[0] == header
    assert xlsx[1][header.index("launched (UTC)")] == "2020-10-16T06:26:08Z"


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_a_soldier_export_imports_back_as_unchanged_for_every_row(
    soldiers: list[Soldier], staff_client: Client, file_format: str
) -> None:
    exported = export(staff_client, "soldier", file_format)
    preview = Importer(staff_client).preview(exported.content, f"soldiers.{file_format}")
    rows = preview.context["preview"].rows
    assert [(r.service_number, r.action, r.errors) for r in rows] == [
        (s.service_number, "unchanged", []) for s in Soldier.objects.order_by("service_number")
    ]
    assert "Nothing to import" in preview.content.decode()


def test_an_unknown_export_format_is_refused(staff_client: Client) -> None:
    url = reverse("admin:portal_soldier_export", args=["pdf"])
    assert staff_client.get(url).status_code == 403
