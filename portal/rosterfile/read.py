"""Reading a roster file: bytes in, a ``Table`` of normalised cells out.

- CSV is decoded as UTF-8 (with or without a BOM) strictly, then CP949 strictly (a superset of
  EUC-KR: the ``euc_kr`` codec fails on syllables such as 똠), then by charset-normalizer;
  ``.xlsx`` is read with openpyxl in read-only mode.
- Cells are NFKC-normalised (full-width letters and digits become ASCII) and trimmed.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from django.utils.translation import gettext_lazy as _

from portal import validation
from portal.errors import Refusal

MAX_COLUMNS = 64
# Empty rows are read too (Excel writes a row element for every formatted row, a million when a
# whole column is formatted): a file may hold this many beyond its data rows, and no more, so
# reading it takes bounded time however large its used range.
MAX_BLANK_ROWS = 1000
# A worksheet expands to far more than the zip's size; refuse archives declaring more than this.
MAX_XLSX_EXPANDED_BYTES = 200 * 1024 * 1024

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (Excel 97-2003)
_ZIP_MAGIC = b"PK\x03\x04"


class RosterFileError(Refusal):
    """The file as a whole cannot be read; ``str()`` is a sentence for people."""


@dataclass(frozen=True)
class Table:
    """The cells of a roster file: a header row and numbered data rows (blank rows dropped)."""

    format: str  # "csv" | "xlsx"
    encoding: str  # how a CSV was decoded ("UTF-8 (BOM)", "CP949", ...); "" for .xlsx
    sheet: str  # the worksheet read (.xlsx)
    headers: list[str]
    rows: list[tuple[int, list[Any]]]  # (row number as the spreadsheet shows it, cells)


def decode_csv(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the name of the encoding that decoded it."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "UTF-8 (BOM)"
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode("utf-8"), "UTF-8"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("cp949"), "CP949"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise RosterFileError(
            _(
                "The file is neither an Excel workbook (.xlsx) nor text in UTF-8 or CP949 "
                "(EUC-KR). Save it from Excel as .xlsx or as CSV."
            )
        )
    return str(best), best.encoding.upper().replace("_", "-")


def read_table(data: bytes, *, filename: str, max_rows: int) -> Table:
    """Read a ``.csv`` or ``.xlsx`` roster; at most ``max_rows`` data rows, else refused."""
    if not data.strip():
        raise RosterFileError(_("The file is empty."))
    name = filename.lower()
    if data.startswith(_OLE_MAGIC) or name.endswith(".xls"):
        raise RosterFileError(
            _(
                "This is an old Excel 97-2003 (.xls) file. Open it in Excel and save it as "
                "Excel Workbook (.xlsx) or CSV."
            )
        )
    if data.startswith(_ZIP_MAGIC) or name.endswith((".xlsx", ".xlsm")):
        return _read_xlsx(data, max_rows=max_rows)
    return _read_csv(data, max_rows=max_rows)


def _too_many_rows(max_rows: int) -> RosterFileError:
    return RosterFileError(
        _(
            "The file has more than %(limit)s rows; one import takes at most %(limit)s "
            "(ROSTER_MAX_ROWS). Split it into smaller files."
        ),
        limit=max_rows,
    )


def _cell(value: Any) -> Any:
    """A cell as the row form takes it: normalised text, or a date from a date cell."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2271234567 typed into a number cell
    if isinstance(value, time):
        value = value.isoformat()
    text = validation.normalize_text(value)
    # Excel's (and our export's) way to keep a leading "=" or "-" as text.
    if text[:1] == "'" and text[1:2] in validation.FORMULA_PREFIXES:
        text = text[1:]
    return text


def _data_rows(
    rows: Iterable[Sequence[Any]], *, max_rows: int, first_row: int = 1
) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    headers: list[str] | None = None
    data: list[tuple[int, list[Any]]] = []
    # The header, the data rows and the blank ones allowed: every row read counts.
    readable = 1 + max_rows + MAX_BLANK_ROWS
    for number, raw in enumerate(rows, start=first_row):
        if number - first_row >= readable:
            raise RosterFileError(
                _(
                    "The sheet goes on past row %(rows)s, empty rows with formatting included. "
                    "Delete the empty rows below the roster (or save it as CSV) and upload it "
                    "again."
                ),
                rows=number - 1,
            )
        cells = [_cell(v) for v in raw[:MAX_COLUMNS]]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        if headers is None:
            headers = [str(c) if not isinstance(c, str) else c for c in cells]
            continue
        if len(data) >= max_rows:
            raise _too_many_rows(max_rows)
        data.append((number, cells))
    if headers is None:
        raise RosterFileError(_("The file is empty."))
    return headers, data


def _read_csv(data: bytes, *, max_rows: int) -> Table:
    text, encoding = decode_csv(data)
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first_line.count)
    try:
        headers, rows = _data_rows(
            csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), max_rows=max_rows
        )
    except csv.Error as exc:
        raise RosterFileError(
            _("The CSV file cannot be read (%(detail)s). Save it again from Excel as CSV."),
            detail=str(exc)[:200],
        ) from exc
    return Table("csv", encoding, "", headers, rows)


def _read_xlsx(data: bytes, *, max_rows: int) -> Table:
    unreadable = RosterFileError(
        _("The Excel file cannot be read; it may be damaged. Save it again from Excel as .xlsx.")
    )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise unreadable from exc
    if expanded > MAX_XLSX_EXPANDED_BYTES:
        raise RosterFileError(
            _("The Excel file expands to more than %(mib)s MiB; save only the roster sheet."),
            mib=MAX_XLSX_EXPANDED_BYTES // (1024 * 1024),
        )
    import openpyxl

    workbook = None
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = workbook.active
        if not hasattr(sheet, "iter_rows"):
            sheet = workbook.worksheets[0]
        # The stored dimensions may be wrong (some tools write "A1"): read what is there.
        sheet.reset_dimensions()
        headers, rows = _data_rows(
            sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True), max_rows=max_rows
        )
        title = str(sheet.title)
    except RosterFileError:
        raise
    except Exception as exc:  # openpyxl raises many kinds on a broken file; none is a 500
        raise unreadable from exc
    finally:
        if workbook is not None:
            workbook.close()
    return Table("xlsx", "", title, headers, rows)
