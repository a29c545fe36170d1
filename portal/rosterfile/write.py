"""Writing exports: CSV that Excel opens in Korean, and ``.xlsx`` whose text stays text.

A cell that starts like a formula ("=", "+", "-", "@") is written so that Excel shows it as
text, and the import reads it back unchanged (``portal.rosterfile.read``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext

from portal import validation

_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    # A name such as "=HYPERLINK(...)" must stay text when the file is opened in Excel.
    if text.startswith(validation.FORMULA_PREFIXES):
        return "'" + text
    return text


def csv_bytes(headers: Sequence[str | Promise], rows: Iterable[Sequence[Any]]) -> bytes:
    """CSV in UTF-8 with a BOM (so Excel reads Korean correctly), Excel's line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([str(h) for h in headers])
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def xlsx_bytes(
    headers: Sequence[str | Promise], rows: Iterable[Sequence[Any]], *, title: str
) -> bytes:
    """An .xlsx workbook with one sheet; text stays text, dates are date cells."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title=re.sub(r"[\[\]:*?/\\]", "", title)[:31] or "Sheet1")

    def cells(values: Sequence[Any]) -> Iterator[Any]:
        for value in values:
            if isinstance(value, bool):
                value = _csv_cell(value)
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, value=_ILLEGAL_XML.sub("", value))
                cell.data_type = "s"  # never a formula, whatever it starts with
                yield cell
            elif isinstance(value, datetime):
                yield WriteOnlyCell(sheet, value=value.isoformat())
            elif isinstance(value, date):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = "yyyy-mm-dd"
                yield cell
            else:
                yield value

    sheet.append(list(cells([str(h) for h in headers])))
    for row in rows:
        sheet.append(list(cells(row)))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
