"""Import roster in the Soldier admin over HTTP: every rejection, the dry run, confirm, refusals.

The operations a confirmation queues are not run here (tests/roster/test_onboarding.py runs
them over devcloud); these tests look at what is written and queued.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from django_tasks_db.models import DBTaskResult

from portal.models import Batch, Instance, Operation, RosterUpload, Soldier
from tests.integration.conftest import recorded_calls
from tests.roster.conftest import (
    HEADERS_KO,
    IMPORT_URL,
    Importer,
    csv_file,
    english_client,
    roster_rows,
    soldier,
    template,
    text_of,
    xlsx_file,
)

pytestmark = pytest.mark.django_db

FULL = ["군번", "이름", "소속", "입대일", "전역일", "사용자명", "템플릿"]


@pytest.fixture
def world(staff: Any) -> dict[str, Any]:
    known = soldier(
        "KNOWN-1",
        "known1",
        name="박알림",
        unit="제2대대",
        enlisted_on=date(2024, 1, 2),
        discharge_on=date(2099, 7, 1),
    )
    gone = soldier("GONE-1", "gone1", name="전역자")
    Soldier.objects.filter(pk=gone.pk).update(state=Soldier.State.DISABLED)
    return {
        "known": known,
        "standard": template("standard"),
        "retired": template("retired", active=False),
    }


def counts() -> dict[str, int]:
    """Everything an import could write or queue."""
    return {
        "users": get_user_model().objects.count(),
        "soldiers": Soldier.objects.count(),
        "operations": Operation.objects.count(),
        "batches": Batch.objects.count(),
        "instances": Instance.objects.count(),
        "tasks": DBTaskResult.objects.count(),
    }


def snapshot() -> list[tuple[Any, ...]]:
    return list(
        Soldier.objects.order_by("pk").values_list(
            "service_number", "name", "unit", "enlisted_on", "discharge_on", "keystone_user_name"
        )
    )


GOOD = ["NEW-1", "정상", "제1대대", "2025-03-04", "2099-01-01", "", ""]

REJECTIONS = [
    pytest.param(["군번", "소속"], [["NEW-2", "x"]], "missing_column", "이름", id="missing-column"),
    pytest.param(FULL, [["NEW-2", "", "", "", "", "", ""]], "required", "name", id="no-name"),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "2024-13-01", "", "", ""]],
        "invalid_date",
        "2024-13-01",
        id="bad-date",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "2025-01-02", "2025-01-01", "", ""]],
        "discharge_before_enlistment",
        "before the enlistment",
        id="discharge-before-enlistment",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "", ""], ["NEW-2", "김", "", "", "", "", ""]],
        "duplicate_service_number",
        "more than once",
        id="duplicate-service-number",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "known1", ""]],
        "username_taken",
        "KNOWN-1",
        id="username-of-another-soldier",
    ),
    pytest.param(
        FULL,
        [["KNOWN1", "홍", "", "", "", "", ""]],
        "username_taken",
        "KNOWN-1",
        id="derived-username-of-another-soldier",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "operator", ""]],
        "username_taken",
        "portal account",
        id="username-of-a-staff-account",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "same", ""], ["NEW-3", "김", "", "", "", "same", ""]],
        "duplicate_username",
        "asked for by rows",
        id="duplicate-username",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "nova", ""]],
        "reserved",
        "cloud itself",
        id="service-user-name",
    ),
    pytest.param(
        FULL,
        [["ADMIN", "홍", "", "", "", "", ""]],
        "reserved",
        "cloud itself",
        id="derived-admin",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "a" * 62, ""]],
        "too_long",
        "61",
        id="username-too-long",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "kim minsu", ""]],
        "invalid",
        "lowercase",
        id="username-characters",
    ),
    pytest.param(FULL, [["N 2", "홍", "", "", "", "", ""]], "invalid", "hyphens", id="bad-number"),
    pytest.param(FULL, [["", "홍", "", "", "", "", ""]], "required", "missing", id="no-number"),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "", "nope"]],
        "unknown_template",
        "nope",
        id="unknown-template",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "", "retired"]],
        "inactive_template",
        "retired",
        id="inactive-template",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "2020-01-01", "", ""]],
        "discharged",
        "has passed",
        id="discharge-passed",
    ),
    pytest.param(
        FULL,
        [["KNOWN-1", "", "", "", "", "other", ""]],
        "username_changed",
        "cannot rename",
        id="rename-known-soldier",
    ),
    pytest.param(
        FULL,
        [["GONE-1", "", "", "", "", "", "standard"]],
        "discharged",
        "cannot get a VM",
        id="discharged-soldier-asks-for-a-vm",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍", "", "", "", "", "", "extra"]],
        "extra_cells",
        "right of the last",
        id="cells-beyond-the-header",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "=cmd|' /C calc'!A0", "", "", "", "", ""]],
        "formula",
        "formula",
        id="formula",
    ),
    pytest.param(
        FULL,
        [["NEW-2", "홍" * 101, "", "", "", "", ""]],
        "text_too_long",
        "100",
        id="long-name",
    ),
]


@pytest.mark.parametrize(("headers", "bad_rows", "code", "words"), REJECTIONS)
def test_each_rejection_is_shown_with_its_reason_and_never_blocks_the_good_row(
    world: dict[str, Any],
    importer: Importer,
    headers: list[str],
    bad_rows: list[list[str]],
    code: str,
    words: str,
) -> None:
    good = GOOD[: len(headers)] if headers == FULL else ["NEW-1", "제1대대"]
    before = counts()
    response = importer.preview(csv_file([headers, good, *bad_rows]))
    assert response.status_code == 200
    preview = response.context["preview"]
    good_row, *bad = preview.rows
    assert good_row.action == "create" if headers == FULL else good_row.action == "rejected"
    for row in bad:
        assert row.action == "rejected"
        assert code in row.error_codes, row.errors
        assert any(words in e for e in row.errors), row.errors
        assert escape(row.errors[0]) in response.content.decode()
    assert counts() == before


def test_a_dry_run_writes_nothing_calls_no_cloud_and_queues_nothing(
    world: dict[str, Any], importer: Importer, portal_cloud: Any
) -> None:
    data = csv_file(
        [
            FULL,
            ["NEW-1", "김똠방", "제1대대", "2025-03-04", "2099-01-01", "", "standard"],
            ["KNOWN-1", "", "", "", "2099-12-31", "", "standard"],
            ["NEW-9", "", "", "", "", "", ""],
        ],
        encoding="cp949",
    )
    before, rows_before = counts(), snapshot()
    with recorded_calls() as calls:
        response = importer.preview(data)
        importer.client.get(response.request["PATH_INFO"] + "?show=rejected")
    assert response.context["preview"].totals == {
        "create": 1,
        "update": 1,
        "unchanged": 0,
        "rejected": 1,
    }
    assert calls.exchanges == []
    assert counts() == before
    assert snapshot() == rows_before


def test_the_preview_shows_the_encoding_the_totals_and_old_and_new_values(
    world: dict[str, Any], importer: Importer
) -> None:
    data = csv_file(
        [
            HEADERS_KO,
            ["NEW-1", "김똠방", "제1대대", "2025.03.04", "20990101"],
            ["KNOWN-1", "박알림", "제2대대", "2024-01-02", "2099-08-15"],
        ],
        encoding="cp949",
    )
    response = importer.preview(data)
    page = text_of(response)
    assert "CP949" in page
    assert "김똠방" in page
    new, known = response.context["preview"].rows
    assert (new.action, new.username) == ("create", "new-1")
    assert {c.field: c.new_shown for c in new.changes}["discharge_on"] == "2099-01-01"
    assert [(c.field, c.old_shown, c.new_shown) for c in known.changes] == [
        ("discharge_on", "2099-07-01", "2099-08-15")
    ]
    assert "<del>2099-07-01</del>" in page
    assert "<ins>2099-08-15</ins>" in page


def test_an_xlsx_with_date_cells_and_english_headers_previews(
    world: dict[str, Any], importer: Importer
) -> None:
    data = xlsx_file(
        [
            [" Discharge on ", "Name", "Service Number", "Enlisted on"],
            [date(2099, 1, 1), "Lee", "NEW-1", date(2025, 3, 4)],
        ]
    )
    response = importer.preview(data, "cohort.xlsx")
    (row,) = response.context["preview"].rows
    assert row.action == "create"
    assert row.values == {
        "name": "Lee",
        "enlisted_on": date(2025, 3, 4),
        "discharge_on": date(2099, 1, 1),
    }
    assert "Excel" in text_of(response)


def test_confirming_writes_the_valid_rows_and_queues_one_batch(
    world: dict[str, Any], importer: Importer, staff: Any
) -> None:
    data = csv_file(
        [
            FULL,
            ["NEW-1", "김똠방", "제1대대", "2025-03-04", "2099-01-01", "", "standard"],
            ["NEW-2", "이영희", "", "", "", "lee.yh", ""],
            ["KNOWN-1", "", "", "", "2099-12-31", "", "standard"],
            ["NEW-3", "", "", "", "", "", ""],
        ]
    )
    response = importer.run(data)
    batch = Batch.objects.get()
    assert response["Location"] == reverse("admin:portal_batch_change", args=[batch.pk])
    first = Soldier.objects.get(service_number="NEW-1")
    assert (first.name, first.unit, first.keystone_user_name) == ("김똠방", "제1대대", "new-1")
    assert (first.enlisted_on, first.discharge_on) == (date(2025, 3, 4), date(2099, 1, 1))
    assert not first.user.has_usable_password()
    assert Soldier.objects.get(service_number="NEW-2").user.username == "lee.yh"
    assert not Soldier.objects.filter(service_number="NEW-3").exists()
    known = Soldier.objects.get(service_number="KNOWN-1")
    assert (known.discharge_on, known.name) == (date(2099, 12, 31), "박알림")
    # Onboarding for the two new soldiers, and the two launches asked for (KNOWN-1's launch
    # onboards that soldier first by itself).
    kinds = sorted(batch.operations.values_list("kind", flat=True))
    assert kinds == ["launch", "launch", "onboard", "onboard"]
    assert batch.total == 4
    assert (batch.kind, batch.requested_by) == ("roster_import", staff)
    assert RosterUpload.objects.get().batch == batch


def test_reimporting_the_same_file_changes_nothing_and_queues_nothing(
    world: dict[str, Any], importer: Importer
) -> None:
    data = csv_file(
        [FULL, ["NEW-1", "김똠방", "제1대대", "2025-03-04", "2099-01-01", "", "standard"]]
    )
    importer.run(data)
    before, rows_before = counts(), snapshot()
    again = importer.preview(data)
    assert again.context["preview"].totals["unchanged"] == 1
    assert "Nothing to import" in text_of(again)
    response = importer.confirm(again)  # even when posted anyway
    assert response.status_code == 302
    assert counts() == before
    assert snapshot() == rows_before


def test_a_moved_discharge_date_updates_that_field_and_nothing_else(
    world: dict[str, Any], importer: Importer
) -> None:
    importer.run(csv_file([HEADERS_KO, ["NEW-1", "김똠방", "제1대대", "2025-03-04", "2099-01-01"]]))
    soldier_before: dict[str, Any] = dict(Soldier.objects.values().get(service_number="NEW-1"))
    before = counts()
    importer.run(csv_file([HEADERS_KO, ["NEW-1", "김똠방", "제1대대", "2025-03-04", "2099-02-15"]]))
    soldier_after: dict[str, Any] = dict(Soldier.objects.values().get(service_number="NEW-1"))
    changed = {k for k in soldier_before if soldier_before[k] != soldier_after[k]}
    assert changed == {"discharge_on", "updated_at"}
    assert soldier_after["discharge_on"] == date(2099, 2, 15)
    assert counts() == before


def test_a_preview_made_stale_by_a_change_in_the_data_is_refused(
    world: dict[str, Any], importer: Importer
) -> None:
    data = csv_file(
        [HEADERS_KO, ["KNOWN-1", "", "", "", "2099-08-15"], ["NEW-1", "새", "", "", ""]]
    )
    preview = importer.preview(data)
    # Someone else moves the date meanwhile: the preview's "old → new" is no longer true.
    Soldier.objects.filter(service_number="KNOWN-1").update(discharge_on=date(2099, 8, 1))
    before, rows_before = counts(), snapshot()
    response = importer.confirm(preview)
    assert response.status_code == 200
    assert "changed since this preview" in text_of(response)
    assert counts() == before
    assert snapshot() == rows_before
    # The page shows the new preview, which can be confirmed.
    (known,) = [r for r in response.context["preview"].rows if r.service_number == "KNOWN-1"]
    assert known.changes[0].old_shown == "2099-08-01"
    assert importer.confirm(response).status_code == 302
    assert Soldier.objects.filter(service_number="NEW-1").exists()


def test_a_confirmation_for_another_file_is_refused(
    world: dict[str, Any], importer: Importer
) -> None:
    preview = importer.preview(csv_file([HEADERS_KO, ["NEW-1", "새", "", "", ""]]))
    other = importer.preview(csv_file([HEADERS_KO, ["NEW-2", "다른", "", "", ""]]))
    before = counts()
    response = importer.client.post(
        reverse("admin:portal_soldier_roster_confirm", args=[preview.context["upload"].pk]),
        {
            "sha256": other.context["upload"].sha256,
            "digest": other.context["preview"].digest,
        },
        follow=True,
    )
    assert "not the file previewed" in text_of(response)
    assert counts() == before


def test_a_stored_file_altered_after_its_preview_is_refused(
    world: dict[str, Any], importer: Importer
) -> None:
    preview = importer.preview(csv_file([HEADERS_KO, ["NEW-1", "새", "", "", ""]]))
    RosterUpload.objects.update(data=csv_file([HEADERS_KO, ["NEW-666", "악", "", "", ""]]))
    before = counts()
    response = importer.confirm(preview)
    assert counts() == before
    assert response.status_code == 302
    assert "checksum" in text_of(importer.client.get(response["Location"]))


def test_a_file_is_imported_once_even_if_confirmed_twice(
    world: dict[str, Any], importer: Importer
) -> None:
    preview = importer.preview(csv_file([HEADERS_KO, ["NEW-1", "새", "", "", ""]]))
    importer.confirm(preview)
    before = counts()
    response = importer.confirm(preview)
    assert response.status_code == 302
    assert counts() == before


def test_an_expired_upload_cannot_be_confirmed(
    world: dict[str, Any], importer: Importer, settings: Any
) -> None:
    preview = importer.preview(csv_file([HEADERS_KO, ["NEW-1", "새", "", "", ""]]))
    settings.ROSTER_UPLOAD_TTL_SECONDS = 0
    response = importer.confirm(preview)
    assert "upload the file again" in text_of(importer.client.get(response["Location"]))
    assert not Soldier.objects.filter(service_number="NEW-1").exists()


def test_nobody_else_can_see_or_confirm_someone_elses_upload(
    world: dict[str, Any], importer: Importer
) -> None:
    preview = importer.preview(csv_file([HEADERS_KO, ["NEW-1", "새", "", "", ""]]))
    other = english_client()
    other.force_login(get_user_model().objects.create_superuser(username="other-op"))
    upload = preview.context["upload"]
    assert (
        other.get(reverse("admin:portal_soldier_roster_preview", args=[upload.pk])).status_code
        == 404
    )
    assert Importer(other).confirm(preview).status_code == 404
    assert not Soldier.objects.filter(service_number="NEW-1").exists()


def test_the_confirmation_posts_two_fields_whatever_the_row_count(
    world: dict[str, Any], importer: Importer, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    importer.run(csv_file([HEADERS_KO, *roster_rows(50)]))
    assert Soldier.objects.filter(service_number__startswith="24-7").count() == 50


def test_a_file_over_the_size_limit_is_refused_with_the_limit(
    world: dict[str, Any], importer: Importer, settings: Any
) -> None:
    settings.ROSTER_MAX_UPLOAD_BYTES = 2048
    response = importer.upload(csv_file([HEADERS_KO, *roster_rows(100)]))
    assert response.status_code == 200
    assert "up to 2 KiB" in text_of(response)
    assert RosterUpload.objects.count() == 0


def test_a_request_far_over_the_size_limit_is_refused_before_it_is_read(
    world: dict[str, Any], importer: Importer, settings: Any
) -> None:
    settings.ROSTER_MAX_UPLOAD_BYTES = 1024
    big = SimpleUploadedFile("big.csv", b"x" * (200 * 1024))
    response = importer.client.post(reverse(IMPORT_URL), {"file": big})
    assert response.status_code == 413
    assert "up to 1 KiB" in text_of(response)
    assert RosterUpload.objects.count() == 0


def test_a_file_over_the_row_limit_is_refused_with_the_limit(
    world: dict[str, Any], importer: Importer, settings: Any
) -> None:
    settings.ROSTER_MAX_ROWS = 5
    response = importer.upload(csv_file([HEADERS_KO, *roster_rows(6)]))
    assert response.status_code == 200
    assert "more than 5 rows" in text_of(response)
    assert RosterUpload.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "Save it from Excel"),
        (b"PK\x03\x04garbage", "cannot be read"),
        ("이름,소속\r\n홍,1대대\r\n".encode(), "군번"),
    ],
)
def test_a_file_that_is_no_roster_is_refused_on_the_upload_form(
    world: dict[str, Any], importer: Importer, data: bytes, words: str
) -> None:
    response = importer.upload(data, "roster.csv")
    assert response.status_code == 200
    assert words in text_of(response)
    assert RosterUpload.objects.count() == 0


def test_a_viewer_can_export_but_not_import(world: dict[str, Any]) -> None:
    viewer = get_user_model().objects.create_user(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_soldier"))
    client = english_client()
    client.force_login(viewer)
    changelist = client.get(reverse("admin:portal_soldier_changelist"))
    assert changelist.status_code == 200
    assert reverse(IMPORT_URL) not in changelist.content.decode()
    assert client.get(reverse(IMPORT_URL)).status_code == 403
    assert client.get(reverse("admin:portal_soldier_export", args=["csv"])).status_code == 200


def test_the_changelist_offers_the_import_to_an_operator(staff_client: Client) -> None:
    page = staff_client.get(reverse("admin:portal_soldier_changelist")).content.decode()
    assert reverse(IMPORT_URL) in page
    assert staff_client.get(reverse(IMPORT_URL)).status_code == 200


def test_the_preview_speaks_korean_by_default(world: dict[str, Any], staff: Any) -> None:
    client = Client()
    client.force_login(staff)
    importer = Importer(client)
    data = csv_file(
        [HEADERS_KO, ["NEW-1", "김똠방", "", "", ""], ["NEW-2", "홍", "", "2024-13-01", ""]]
    )
    page = text_of(importer.preview(data))
    assert "미리 보기입니다" in page
    assert "신규" in page
    assert "입대일 (enlisted_on): 2024-13-01은(는) 날짜가 아닙니다" in page


def test_a_10000_row_file_is_refused_whole_at_the_default_limit(
    world: dict[str, Any], importer: Importer
) -> None:
    response = importer.upload(csv_file([HEADERS_KO, *roster_rows(10_000)]))
    assert "more than 5000 rows" in text_of(response)
    assert RosterUpload.objects.count() == 0
    assert not Soldier.objects.filter(service_number__startswith="24-7").exists()


def test_a_soldier_added_by_someone_else_during_the_confirmation_is_refused_cleanly(
    world: dict[str, Any], importer: Importer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portal.rosterfile.rows import RowKeys
    from portal.services import roster_imports as roster_service

    preview = importer.preview(csv_file([HEADERS_KO, ["NEW-1", "새", "", "", ""]]))
    # The race: the confirmation's checks saw the database before another request's commit.
    seen = roster_service.roster_context(RowKeys({"NEW-1"}, {"new-1"}, set()))
    monkeypatch.setattr(roster_service, "roster_context", lambda keys: seen)
    soldier("NEW-1", "new-1", name="먼저 온 사람")
    before = counts()
    response = importer.confirm(preview)
    assert "at the same moment" in text_of(importer.client.get(response["Location"]))
    assert counts() == before
    assert RosterUpload.objects.get().confirmed_at is None
