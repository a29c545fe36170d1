"""Reading roster files: encodings, formats, headers and dates (pure, no database)."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import openpyxl
import pytest

from portal.rosterfile.columns import map_headers
from portal.rosterfile.read import RosterFileError, Table, read_table
from portal.rosterfile.write import csv_bytes, xlsx_bytes
from tests.roster.conftest import HEADERS_KO, csv_file, xlsx_file

ROWS = [HEADERS_KO, ["22-71234567", "김똠방", "제1대대", "2024.03.05", "20250904"]]


def read(data: bytes, name: str = "roster.csv", max_rows: int = 100) -> Table:
    return read_table(data, filename=name, max_rows=max_rows)


def test_a_cp949_csv_with_a_syllable_euc_kr_lacks_is_read_as_cp949() -> None:
    with pytest.raises(UnicodeDecodeError):
        "똠".encode("cp949").decode("euc_kr")  # why the euc_kr codec must never be the one tried
    table = read(csv_file(ROWS, encoding="cp949"))
    assert table.encoding == "CP949"
    assert table.headers == HEADERS_KO
    assert table.rows == [(2, ["22-71234567", "김똠방", "제1대대", "2024.03.05", "20250904"])]


def test_a_utf8_csv_with_a_bom_keeps_its_first_header_clean() -> None:
    table = read(csv_file(ROWS, bom=True))
    assert table.encoding == "UTF-8 (BOM)"
    assert table.headers[0] == "군번"
    assert table.rows[0][1][1] == "김똠방"


def test_a_utf8_csv_without_a_bom_is_read_as_utf8() -> None:
    assert read(csv_file(ROWS)).encoding == "UTF-8"


def test_a_file_in_neither_utf8_nor_cp949_falls_back_to_charset_normalizer() -> None:
    # Excel's "Unicode text": UTF-16 with a BOM, tab-separated.
    text = "\r\n".join("\t".join(row) for row in ROWS) + "\r\n"
    table = read(text.encode("utf-16"), "roster.txt")
    assert table.encoding.startswith("UTF-16")
    assert table.headers == HEADERS_KO
    assert table.rows[0][1][:2] == ["22-71234567", "김똠방"]


def test_an_xlsx_gives_date_cells_as_dates_and_number_cells_as_text() -> None:
    data = xlsx_file(
        [
            HEADERS_KO,
            [2271234567, "김똠방", "제1대대", datetime(2024, 3, 5), date(2025, 9, 4)],
            [None, None, None, None, None],
            ["22-1", "이영희", None, 20240305, "2025.09.04"],
        ]
    )
    table = read(data, "명단.xlsx")
    assert (table.format, table.sheet) == ("xlsx", "명단")
    first, second = table.rows
    # openpyxl gives every date cell as a datetime; the row form takes its date.
    assert first == (
        2,
        ["2271234567", "김똠방", "제1대대", datetime(2024, 3, 5), datetime(2025, 9, 4)],
    )
    # The blank row is dropped but the numbering stays the spreadsheet's.
    assert second == (4, ["22-1", "이영희", "", "20240305", "2025.09.04"])


def test_an_xlsx_with_wrong_stored_dimensions_is_read_whole() -> None:
    data = xlsx_file([HEADERS_KO, *[[f"S-{n}", "x", "", "", ""] for n in range(5)]])
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                body = body.replace(b'<dimension ref="A1:E6"/>', b'<dimension ref="A1"/>')
            dst.writestr(item, body)
    assert len(read(buffer.getvalue(), "r.xlsx").rows) == 5


@pytest.mark.parametrize(
    "headers",
    [
        ["service_number", "name", "unit", "enlisted_on", "discharge_on"],
        ["Service Number", "Name", "Unit", "Enlisted on", "Discharge on"],
        ["  전역일 ", "이름", " 군번", "입대일", "소속  "],
        ["ＳＥＲＶＩＣＥ＿ＮＵＭＢＥＲ", "ｎａｍｅ", "부대", "입대일자", "전역예정일"],
        ["군번", "성명", "소속", "enlistment date", "DISCHARGE-DATE"],
    ],
)
def test_headers_are_found_in_korean_or_english_in_any_order(headers: list[str]) -> None:
    columns = map_headers(headers)
    assert set(columns.index) == {"service_number", "name", "unit", "enlisted_on", "discharge_on"}
    assert columns.ignored == []


def test_unknown_headers_are_listed_as_ignored() -> None:
    columns = map_headers(["군번", "이름", "비고", "계급"])
    assert columns.ignored == ["비고", "계급"]


def test_a_header_row_without_service_numbers_is_refused_naming_what_it_found() -> None:
    with pytest.raises(RosterFileError) as refused:
        map_headers(["이름", "소속"])
    assert "군번" in str(refused.value)
    assert "이름, 소속" in str(refused.value)


def test_a_column_given_twice_is_refused() -> None:
    with pytest.raises(RosterFileError, match="twice"):
        map_headers(["군번", "이름", "name"])


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"", "roster.csv", "empty"),
        (b"\r\n \r\n", "roster.csv", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "roster.xls", ".xls"),
        (b"PK\x03\x04 not really a zip", "roster.xlsx", "cannot be read"),
        (b"PK\x03\x04" + bytes(range(256)) * 4, "roster.csv", "cannot be read"),
    ],
)
def test_a_file_in_no_supported_format_is_refused_with_a_message(
    data: bytes, name: str, words: str
) -> None:
    with pytest.raises(RosterFileError) as refused:
        read(data, name)
    assert words in str(refused.value)


def test_a_zip_that_is_not_a_workbook_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(RosterFileError, match="cannot be read"):
        read(buffer.getvalue(), "roster.xlsx")


def test_a_file_with_more_rows_than_the_limit_is_refused_with_the_limit() -> None:
    rows = [HEADERS_KO, *[[f"S-{n}", "x", "", "", ""] for n in range(11)]]
    assert len(read(csv_file(rows), max_rows=11).rows) == 11
    with pytest.raises(RosterFileError) as refused:
        read(csv_file(rows), max_rows=10)
    assert "10" in str(refused.value)
    assert "ROSTER_MAX_ROWS" in str(refused.value)
    with pytest.raises(RosterFileError, match="10"):
        read(xlsx_file(rows), "r.xlsx", max_rows=10)


def test_an_excel_text_prefix_before_a_formula_sign_is_dropped() -> None:
    table = read(csv_file([["군번", "소속"], ["S-1", "'-"], ["S-2", "'=A1"]]))
    assert [cells[1] for _, cells in table.rows] == ["-", "=A1"]


def test_the_csv_export_starts_with_a_bom_and_keeps_formulas_as_text() -> None:
    data = csv_bytes(["군번", "이름"], [["S-1", "=HYPERLINK(1)"], ["S-2", date(2025, 1, 2)]])
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").splitlines() == [
        "군번,이름",
        "S-1,'=HYPERLINK(1)",
        "S-2,2025-01-02",
    ]


def test_the_xlsx_export_writes_text_as_text_and_dates_as_dates() -> None:
    data = xlsx_bytes(
        ["군번", "이름", "전역일"], [["S-1", "=1+1", date(2025, 1, 2)]], title="soldiers"
    )
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    name, discharge = sheet["B2"], sheet["C2"]
    assert (name.value, name.data_type) == ("=1+1", "s")
    assert discharge.value == datetime(2025, 1, 2)
    assert discharge.is_date


def _with_formatted_empty_rows(data: bytes, count: int) -> bytes:
    """The workbook with ``count`` empty formatted rows after its data, as Excel writes them
    when whole columns are formatted (F8): tiny zipped, each one a row to parse."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                empty = b"".join(
                    b'<row r="%d" s="1" customFormat="1"/>' % n for n in range(3, 3 + count)
                )
                body = body.replace(b"</sheetData>", empty + b"</sheetData>")
            dst.writestr(item, body, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def test_an_xlsx_whose_used_range_is_huge_is_refused_after_a_bounded_read() -> None:
    data = _with_formatted_empty_rows(xlsx_file(ROWS), 200_000)
    assert len(data) < 5 * 1024 * 1024  # under the upload limit, as in the finding
    with pytest.raises(RosterFileError, match="empty rows with formatting") as refused:
        read(data, "r.xlsx", max_rows=100)
    # It stopped where the rows it may read ran out, far before the end of the sheet.
    # 1 header + 100 rows + 1,000 empty ones may be read; row 1,102 is not.
    assert "past row 1101," in str(refused.value)


def test_a_few_empty_formatted_rows_below_the_roster_are_fine() -> None:
    data = _with_formatted_empty_rows(xlsx_file(ROWS), 500)
    assert len(read(data, "r.xlsx", max_rows=100).rows) == 1
