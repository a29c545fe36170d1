"""Property tests: no file and no cell value makes the import fail with a server error, and a
dry run never writes (the Django test client re-raises any exception a view lets escape)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from portal.models import Batch, Operation, RosterUpload, Soldier
from portal.rosterfile.read import _cell
from portal.rosterfile.rows import Action, RosterContext, RosterRowForm
from portal.rosterfile.write import _ILLEGAL_XML
from tests.integration.conftest import unique
from tests.roster.conftest import HEADERS_KO, Importer, xlsx_file

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

XLSX = xlsx_file([HEADERS_KO, ["22-1", "김똠방", "제1대대", date(2025, 3, 4), "2099.01.01"]])


def mutate(base: bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(base) - 1), st.binary(min_size=1, max_size=64)).map(
        lambda cut: base[: cut[0]] + cut[1] + base[cut[0] + len(cut[1]) :]
    )


FILES = st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=512).map(lambda b: b"\xef\xbb\xbf" + b),
    st.binary(max_size=512).map(lambda b: "군번,이름\r\n".encode("cp949") + b),
    st.binary(max_size=512).map(lambda b: b"PK\x03\x04" + b),
    mutate(XLSX),
)
NAMES = st.sampled_from(["roster.csv", "roster.xlsx", "roster.xls", "roster.txt", "roster"])

TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)
CELL = st.one_of(
    TEXT,
    st.sampled_from(["22-7123", "2025-03-04", "2025.3.4.", "20250304", "nova", "standard", "=1"]),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.datetimes(),
    st.booleans(),
    st.none(),
)
HEADER = st.one_of(
    st.sampled_from([*HEADERS_KO, "사용자명", "템플릿", "service_number", "ｎａｍｅ", " 전역일 "]),
    TEXT,
)
# Control characters alone, and cells of 10 kB (a paste gone wrong), besides everything above.
CONTROL = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=12)
LONG = st.tuples(TEXT.filter(bool), st.integers(10_000, 10_240)).map(
    lambda t: (t[0] * t[1])[: t[1]]
)
CELL = st.one_of(
    CELL,
    st.from_regex(r"2[0-9]-[0-9]{3,8}", fullmatch=True),
    st.text(alphabet="김이박최정똠방병사", min_size=1, max_size=4),
    CONTROL,
    LONG,
)
# Headers always hold the service number somewhere, so rows reach the row form.
TABLES = st.tuples(
    st.lists(HEADER, max_size=7).flatmap(lambda hs: st.permutations([*hs, "군번"]).map(list)),
    st.lists(st.lists(CELL, max_size=9), max_size=15),
)
SERVICE_NUMBER = st.from_regex(r"2[0-9]-[0-9]{3,8}", fullmatch=True)
# Known headers only, each column mostly holding what it should: these rows often create.


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four a plausible value, else anything."""
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: valid if ok else CELL)


COLUMN_CELLS = {
    "군번": mostly(SERVICE_NUMBER),
    "이름": mostly(st.text(alphabet="김이박최정똠방병사 ", min_size=1, max_size=6)),
    "소속": mostly(st.none() | TEXT),
    "입대일": mostly(st.none() | st.dates()),
    "전역일": mostly(st.none() | st.dates(min_value=date(2100, 1, 1))),
}
WELL_FORMED = st.permutations(list(COLUMN_CELLS)).flatmap(
    lambda hs: st.tuples(
        st.just(list(hs)),
        st.lists(st.tuples(*[COLUMN_CELLS[h] for h in hs]).map(list), max_size=10),
    )
)
TABLES = st.one_of(TABLES, WELL_FORMED)


def writes() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "soldiers": Soldier.objects.count(),
        "operations": Operation.objects.count(),
        "batches": Batch.objects.count(),
    }


def csv_of(headers: list[Any], rows: list[list[Any]], encoding: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in [headers, *rows]:
        writer.writerow(["" if c is None else c for c in row])
    return out.getvalue().encode(encoding, errors="replace")


def xlsx_of(headers: list[Any], rows: list[list[Any]]) -> bytes:
    def cell(value: Any) -> Any:
        # openpyxl itself refuses control characters and some floats; those cannot be in a file.
        if isinstance(value, str):
            return _ILLEGAL_XML.sub("", value)
        if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
            return str(value)
        return value

    return xlsx_file([[cell(c) for c in row] for row in [headers, *rows]])


@PROPERTY
@given(data=FILES, name=NAMES)
def test_arbitrary_bytes_never_cause_a_server_error_or_a_write(
    importer: Importer, staff: Any, data: bytes, name: str
) -> None:
    before = writes()
    response = importer.upload(data, name)
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert importer.client.get(response["Location"]).status_code == 200
    assert writes() == before


@PROPERTY
@given(table=TABLES, file_format=st.sampled_from(["utf-8", "cp949", "xlsx"]))
def test_arbitrary_cells_never_cause_a_server_error_and_the_dry_run_writes_nothing(
    importer: Importer, staff: Any, table: tuple[list[Any], list[list[Any]]], file_format: str
) -> None:
    headers, rows = table
    if file_format == "xlsx":
        data, name = xlsx_of(headers, rows), "roster.xlsx"
    else:
        data, name = csv_of(headers, rows, file_format), "roster.csv"
    before, uploads = writes(), RosterUpload.objects.count()
    response = importer.upload(data, name)
    assert response.status_code in (200, 302)
    if response.status_code != 302:
        # Refused on the upload form, with the reason, and not kept.
        assert 'class="errorlist"' in response.content.decode()
        assert RosterUpload.objects.count() == uploads
        return
    preview = importer.client.get(response["Location"])
    assert preview.status_code == 200
    assert writes() == before
    confirmed = importer.confirm(preview)
    assert confirmed.status_code == 302
    created = preview.context["preview"].totals["create"]
    event(f"created {min(created, 2)}+")
    assert Soldier.objects.count() == before["soldiers"] + created


@settings(max_examples=300, deadline=None)
@given(
    data=st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(
            (
                "service_number",
                "name",
                "unit",
                "enlisted_on",
                "discharge_on",
                "username",
                "template",
            ),
            CELL,
        ),
    )
)
def test_the_row_form_decides_every_row_without_raising(data: dict[str, Any]) -> None:
    context = RosterContext(
        soldiers={},
        soldier_usernames={},
        account_usernames=frozenset(),
        templates={"standard": True},
        reserved=frozenset({"admin", "nova"}),
        prefix="cs-",
        today=date(2025, 1, 1),
    )
    cells = {k: _cell(v) for k, v in data.items()}
    result = RosterRowForm(cells, context=context, present=set(cells)).result(2)
    assert result.action in (Action.CREATE, Action.REJECTED)
    assert (result.action == Action.REJECTED) == bool(result.errors)


@PROPERTY
@given(table=WELL_FORMED, tamper=st.sampled_from(["digest", "sha256", "missing", "database"]))
def test_a_confirmation_that_no_longer_matches_what_was_previewed_writes_nothing(
    importer: Importer, staff: Any, table: tuple[list[Any], list[list[Any]]], tamper: str
) -> None:
    headers, rows = table
    response = importer.upload(csv_of(headers, rows, "utf-8"), "roster.csv")
    assume(response.status_code == 302)
    preview = importer.client.get(response["Location"])
    creates = [r for r in preview.context["preview"].rows if r.action == Action.CREATE]
    assume(creates)
    initial = preview.context["confirm_form"].initial
    fields = {"sha256": initial["sha256"], "digest": initial["digest"]}
    if tamper in ("digest", "sha256"):
        fields[tamper] = fields[tamper][::-1] if len(set(fields[tamper])) > 1 else "0" * 64
    elif tamper == "missing":
        del fields["digest"]
    else:
        # Someone else took the first new soldier's service number since the preview.
        user = get_user_model().objects.create_user(username=unique("other"))
        Soldier.objects.create(
            user=user, service_number=creates[0].service_number, keystone_user_name=user.username
        )
    before, upload = writes(), preview.context["upload"]
    confirmed = importer.client.post(
        reverse("admin:portal_soldier_roster_confirm", args=[upload.pk]), fields
    )
    assert confirmed.status_code in (200, 302)
    assert writes() == before
    upload.refresh_from_db()
    assert upload.confirmed_at is None


@pytest.mark.parametrize("column", ["군번", "사용자명", "템플릿"])
def test_a_nul_in_a_cell_the_preview_looks_up_is_a_rejected_row_not_a_500(
    importer: Importer, staff: Any, column: str
) -> None:
    # Found by the fuzzer on PostgreSQL, which refuses a NUL even as a query's parameter.
    headers = ["군번", "이름", "사용자명", "템플릿"]
    row = ["22-7123456", "김병사", "kimbyeongsa", "standard"]
    row[headers.index(column)] = row[headers.index(column)][:3] + "\x00" + "1"
    before = writes()
    preview = importer.preview(csv_of(headers, [row], "utf-8"))
    assert preview.status_code == 200
    assert [r.action for r in preview.context["preview"].rows] == [Action.REJECTED]
    assert writes() == before
