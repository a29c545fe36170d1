"""Roster files: read a unit's spreadsheet, validate every row, write exports.

Pure: no database and no cloud. The service (``portal.services.roster``) loads what the rows
must be checked against into a ``RosterContext`` with a few bulk queries, and this module decides
each row's fate with one Django ``Form`` per row, keyed on the service number:

- CSV is decoded as UTF-8 (with or without a BOM) strictly, then CP949 strictly (a superset of
  EUC-KR: the ``euc_kr`` codec fails on syllables such as 똠), then by charset-normalizer;
  ``.xlsx`` is read with openpyxl in read-only mode.
- Headers may be Korean or English, in any order; headers and cells are NFKC-normalised
  (full-width letters and digits become ASCII) and trimmed.
- An empty cell keeps a known soldier's current value; a missing column is left alone.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import unicodedata
import zipfile
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal import validation

MAX_COLUMNS = 64
# A worksheet expands to far more than the zip's size; refuse archives declaring more than this.
MAX_XLSX_EXPANDED_BYTES = 200 * 1024 * 1024

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (Excel 97-2003)
_ZIP_MAGIC = b"PK\x03\x04"


class RosterFileError(Exception):
    """The file as a whole cannot be read; ``str()`` is a sentence for people."""

    def __init__(self, message: str | Promise, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def __str__(self) -> str:
        text = str(self.message)
        return text % self.params if self.params else text


# --- reading -----------------------------------------------------------------------------


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
    for number, raw in enumerate(rows, start=first_row):
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


# --- columns -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    label: Promise  # what exports write and pages show ("군번" in Korean)
    aliases: tuple[str, ...]
    help: Promise
    required: bool = False


_DATE_HELP = _("YYYY-MM-DD, YYYY.MM.DD, YYYYMMDD or an Excel date cell.")

COLUMNS = (
    Column(
        "service_number",
        _("Service number"),
        ("군번", "service_number", "service number", "service no", "serviceno"),
        _(
            "Required. Letters, digits and hyphens, e.g. 22-71234567. A service number the "
            "portal knows updates that soldier."
        ),
        required=True,
    ),
    Column("name", _("Name"), ("이름", "성명", "name"), _("Required for a new soldier.")),
    Column("unit", _("Unit"), ("소속", "부대", "unit"), _("Optional.")),
    Column(
        "enlisted_on",
        _("Enlisted on"),
        ("입대일", "입대일자", "enlisted_on", "enlistment date", "enlisted"),
        _DATE_HELP,
    ),
    Column(
        "discharge_on",
        _("Discharge on"),
        ("전역일", "전역일자", "전역예정일", "discharge_on", "discharge date", "discharge"),
        _DATE_HELP,
    ),
    Column(
        "username",
        _("Username"),
        ("사용자명", "아이디", "username", "user name"),
        _(
            "Optional: the service number in lowercase when absent. Lowercase letters, digits, "
            "dots, hyphens and underscores; a known soldier's username cannot change."
        ),
    ),
    Column(
        "template",
        _("Template"),
        ("템플릿", "template", "vm template"),
        _("Optional: the VM template to launch a VM from (once per soldier and template)."),
    ),
)
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
SOLDIER_FIELDS = ("name", "unit", "enlisted_on", "discharge_on")


def header_key(text: object) -> str:
    """A header as compared: NFKC, case-folded, without spaces, underscores, hyphens, dots."""
    return re.sub(r"[\s_\-.]", "", unicodedata.normalize("NFKC", str(text)).casefold())


_ALIASES = {header_key(alias): c.key for c in COLUMNS for alias in (*c.aliases, c.key)}


def column_label(key: str) -> str:
    """A column's name for people: "군번 (service_number)" in Korean."""
    column = COLUMN_BY_KEY[key]
    return f"{column.aliases[0]} ({column.key})"


@dataclass(frozen=True)
class Columns:
    """Which column of the file holds what."""

    index: dict[str, int]  # column key -> position
    ignored: list[str]  # headers the import does not use (shown on the preview)


def map_headers(headers: Sequence[str]) -> Columns:
    """Find each known column among the headers; refuse a file without service numbers."""
    index: dict[str, int] = {}
    ignored: list[str] = []
    for position, header in enumerate(headers):
        key = _ALIASES.get(header_key(header))
        if key is None:
            if header:
                ignored.append(header)
            continue
        if key in index:
            raise RosterFileError(
                _("The column %(column)s appears twice in the header row."),
                column=column_label(key),
            )
        index[key] = position
    if "service_number" not in index:
        raise RosterFileError(
            _(
                "The header row has no %(column)s column, which every row needs. "
                "Headers found: %(found)s."
            ),
            column=column_label("service_number"),
            found=", ".join(h for h in headers if h)[:300] or "-",
        )
    return Columns(index, ignored)


# --- what the rows are checked against ---------------------------------------------------


@dataclass(frozen=True)
class KnownSoldier:
    """A soldier already in the portal, as far as an import may change them."""

    pk: int
    service_number: str
    name: str
    unit: str
    enlisted_on: date | None
    discharge_on: date | None
    username: str
    state: str  # Soldier.State value
    vm_templates: frozenset[str]  # templates the soldier has a live VM from


@dataclass(frozen=True)
class RosterContext:
    soldiers: Mapping[str, KnownSoldier]  # by service number
    soldier_usernames: Mapping[str, str]  # lowercased username -> that soldier's service number
    account_usernames: Collection[str]  # lowercased usernames of portal accounts (User rows)
    templates: Mapping[str, bool]  # template name -> offered (is_active)
    reserved: Collection[str]
    prefix: str
    today: date


@dataclass(frozen=True)
class RowKeys:
    """What a file refers to, for the service to look up in bulk."""

    service_numbers: set[str]
    usernames: set[str]
    templates: set[str]


def row_keys(table: Table, columns: Columns) -> RowKeys:
    """The service numbers, usernames (given or derived) and templates the rows name."""
    keys = RowKeys(set(), set(), set())

    def cell(cells: list[Any], key: str) -> str:
        position = columns.index.get(key)
        if position is None or position >= len(cells):
            return ""
        text = str(cells[position])
        # No stored value holds a NUL (PostgreSQL refuses one even in a query's parameter); the
        # row form rejects the cell with its reason.
        return "" if "\x00" in text else text

    for _number, cells in table.rows:
        service_number = cell(cells, "service_number")
        if service_number:
            keys.service_numbers.add(service_number)
            keys.usernames.add(validation.username_from_service_number(service_number))
        username = cell(cells, "username").lower()
        if username:
            keys.usernames.add(username)
        template = cell(cells, "template")
        if template:
            keys.templates.add(template)
    return keys


# --- one row -----------------------------------------------------------------------------


class RosterDateField(forms.Field):
    """A date as rosters write it, or an Excel date cell."""

    def to_python(self, value: Any) -> date | None:
        return validation.parse_date(value)


class RosterTextField(forms.CharField):
    """A name or a unit (checked by the form: a known soldier's current value always passes)."""

    def __init__(self, *, limit: int) -> None:
        super().__init__(required=False)
        self.limit = limit

    def to_python(self, value: Any) -> str:
        if isinstance(value, datetime | date):
            value = value.isoformat()
        return str(super().to_python(value) or "")


def _shown(value: Any) -> str:
    if value in (None, ""):
        return "—"
    return value.isoformat() if isinstance(value, date) else str(value)


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any

    @property
    def label(self) -> str:
        return str(COLUMN_BY_KEY[self.field].label)

    @property
    def old_shown(self) -> str:
        return _shown(self.old)

    @property
    def new_shown(self) -> str:
        return _shown(self.new)


class Action:
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"
    ALL = (CREATE, UPDATE, UNCHANGED, REJECTED)
    LABELS = {
        CREATE: _("New"),
        UPDATE: _("Changed"),
        UNCHANGED: _("Unchanged"),
        REJECTED: _("Rejected"),
    }
    # The badge colour; the label always says the same in words.
    TONES = {CREATE: "green", UPDATE: "blue", UNCHANGED: "grey", REJECTED: "red"}


@dataclass
class RowResult:
    """What importing one row does."""

    row: int
    service_number: str  # as cleaned, or as written when it is not valid
    name: str
    keyed: bool = False  # the service number is valid (duplicates are looked for among these)
    action: str = Action.UNCHANGED
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_codes: list[str] = field(default_factory=list)
    username: str = ""
    soldier_pk: int | None = None
    onboard: bool = False  # queue the soldier's onboarding
    launch: str = ""  # launch a VM from this template

    @property
    def action_label(self) -> str:
        return str(Action.LABELS[self.action])

    @property
    def tone(self) -> str:
        return Action.TONES[self.action]

    def reject(self, message: str, code: str) -> None:
        self.errors.append(message)
        self.error_codes.append(code)
        self.action = Action.REJECTED

    @property
    def values(self) -> dict[str, Any]:
        """The field values to write (all of them for a new soldier, the changed for others)."""
        return {c.field: c.new for c in self.changes}


class RosterRowForm(forms.Form):
    """One roster row, validated against the portal's soldiers, accounts and templates."""

    service_number = forms.CharField(max_length=255, required=False)
    name = RosterTextField(limit=100)
    unit = RosterTextField(limit=100)
    enlisted_on = RosterDateField(required=False)
    discharge_on = RosterDateField(required=False)
    username = forms.CharField(max_length=255, required=False)
    template = forms.CharField(max_length=100, required=False)

    def __init__(
        self, data: Mapping[str, Any], *, context: RosterContext, present: Collection[str]
    ) -> None:
        super().__init__(data)
        self.context = context
        self.present = present

    def _known_soldier(self) -> KnownSoldier | None:
        return self.context.soldiers.get(self.cleaned_data.get("service_number", ""))

    def clean_service_number(self) -> str:
        value = validation.normalize_text(self.cleaned_data["service_number"])
        if value in self.context.soldiers:
            return value  # recorded before today's rules: an export must import back as it is
        return validation.clean_service_number(value)

    def clean_username(self) -> str:
        value = self.cleaned_data["username"]
        if not value:
            return ""
        known = self._known_soldier()
        if known is not None and value.lower() == known.username.lower():
            return known.username
        return validation.clean_username(
            value, reserved=self.context.reserved, prefix=self.context.prefix
        )

    def _clean_text(self, name: str) -> str:
        value = str(self.cleaned_data[name])
        known = self._known_soldier()
        if not value or (known is not None and value == getattr(known, name)):
            return value
        field = self.fields[name]
        assert isinstance(field, RosterTextField)
        return validation.clean_text(value, max_length=field.limit)

    def clean_name(self) -> str:
        return self._clean_text("name")

    def clean_unit(self) -> str:
        return self._clean_text("unit")

    def clean_template(self) -> str:
        name = str(self.cleaned_data["template"])
        if not name:
            return ""
        offered = self.context.templates.get(name)
        if offered is None:
            raise ValidationError(
                _("There is no VM template named %(name)s."),
                code="unknown_template",
                params={"name": name},
            )
        if not offered:
            raise ValidationError(
                _("The VM template %(name)s is not offered any more."),
                code="inactive_template",
                params={"name": name},
            )
        return name

    def result(self, row: int) -> RowResult:
        """Validate the row and say what importing it does."""
        valid = self.is_valid()
        data = self.cleaned_data
        result = RowResult(
            row=row,
            service_number=str(data.get("service_number") or self.data.get("service_number", "")),
            name=str(data.get("name") or self.data.get("name", "")),
            keyed="service_number" in data,
        )
        if not valid:
            for name, errors in self.errors.as_data().items():
                for error in errors:
                    message = " ".join(error.messages)
                    # The rules of portal.validation name their field; the generic ones do not.
                    if name in SOLDIER_FIELDS or error.code == "max_length":
                        message = f"{column_label(name)}: {message}"
                    result.reject(message, error.code or "invalid")
            return result
        known = self.context.soldiers.get(data["service_number"])
        if known is None:
            self._new(result, data)
        else:
            self._known(result, data, known)
        return result

    def _dates(self, result: RowResult, enlisted: date | None, discharge: date | None) -> None:
        try:
            validation.check_service_dates(enlisted, discharge)
        except ValidationError as exc:
            result.reject(" ".join(exc.messages), exc.code or "invalid")

    def _new(self, result: RowResult, data: dict[str, Any]) -> None:
        context = self.context
        if not data["name"]:
            if "name" not in self.present:
                result.reject(
                    gettext("The file has no %(column)s column, which a new soldier needs.")
                    % {"column": column_label("name")},
                    "missing_column",
                )
            else:
                result.reject(gettext("A new soldier needs a name."), "required")
        username = data["username"]
        if not username:
            try:
                username = validation.clean_username(
                    validation.username_from_service_number(data["service_number"]),
                    reserved=context.reserved,
                    prefix=context.prefix,
                )
            except ValidationError as exc:
                result.reject(
                    gettext("The username derived from the service number is refused: %(why)s")
                    % {"why": " ".join(exc.messages)},
                    exc.code or "invalid",
                )
        result.username = username
        if username:
            holder = context.soldier_usernames.get(username)
            if holder is not None:
                result.reject(
                    gettext("The username %(username)s is taken by the soldier %(holder)s.")
                    % {"username": username, "holder": holder},
                    "username_taken",
                )
            elif username in context.account_usernames:
                result.reject(
                    gettext("The username %(username)s is taken by another portal account.")
                    % {"username": username},
                    "username_taken",
                )
        self._dates(result, data["enlisted_on"], data["discharge_on"])
        if data["discharge_on"] and data["discharge_on"] < context.today:
            result.reject(
                gettext(
                    "The discharge date %(date)s has passed; a discharged soldier is not onboarded."
                )
                % {"date": data["discharge_on"].isoformat()},
                "discharged",
            )
        if result.action == Action.REJECTED:
            return
        result.action = Action.CREATE
        result.onboard = True
        result.launch = data["template"]
        result.changes = [
            Change(key, None, data[key]) for key in SOLDIER_FIELDS if data[key] not in ("", None)
        ]

    def _known(self, result: RowResult, data: dict[str, Any], known: KnownSoldier) -> None:
        result.soldier_pk = known.pk
        result.username = known.username
        if data["username"] and data["username"] != known.username:
            result.reject(
                gettext(
                    "This soldier's username is %(current)s; an import cannot rename a cloud "
                    "account (the file says %(new)s)."
                )
                % {"current": known.username, "new": data["username"]},
                "username_changed",
            )
        for key in SOLDIER_FIELDS:
            new = data[key]
            old = getattr(known, key)
            # An empty cell keeps the current value: a partial sheet never erases.
            if new not in ("", None) and new != old:
                result.changes.append(Change(key, old, new))
        new_values = result.values
        if {"enlisted_on", "discharge_on"} & set(new_values):
            self._dates(
                result,
                new_values.get("enlisted_on", known.enlisted_on),
                new_values.get("discharge_on", known.discharge_on),
            )
        template = data["template"]
        if template and template not in known.vm_templates:
            if known.state == "disabled":
                result.reject(
                    gettext("This soldier is discharged (disabled) and cannot get a VM."),
                    "discharged",
                )
            else:
                result.launch = template
        if result.action == Action.REJECTED:
            result.changes = []
            result.launch = ""
            return
        changed = result.changes or result.launch
        result.action = Action.UPDATE if changed else Action.UNCHANGED


# --- the whole file ----------------------------------------------------------------------


@dataclass
class Preview:
    """What importing a file does, row by row, with the totals."""

    table: Table
    columns: Columns
    rows: list[RowResult]
    digest: str = ""

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(r.action for r in self.rows)
        return {action: counts.get(action, 0) for action in Action.ALL}

    @property
    def operations(self) -> int:
        """How many cloud operations the confirmation queues."""
        return sum(int(r.onboard) + int(bool(r.launch)) for r in self.rows)

    @property
    def missing_columns(self) -> list[str]:
        return [column_label(c.key) for c in COLUMNS if c.key not in self.columns.index]


def validate_table(table: Table, columns: Columns, context: RosterContext) -> Preview:
    """Every row's outcome; rows that contradict each other are rejected together."""
    results: list[RowResult] = []
    present = set(columns.index)
    for number, cells in table.rows:
        data = {
            key: cells[position] if position < len(cells) else ""
            for key, position in columns.index.items()
        }
        form = RosterRowForm(data, context=context, present=present)
        result = form.result(number)
        extra = [c for c in cells[len(table.headers) :] if c != ""]
        if extra:
            result.reject(
                gettext(
                    "The row has %(count)s filled cells to the right of the last header; "
                    "check for a comma or a shifted column."
                )
                % {"count": len(extra)},
                "extra_cells",
            )
            result.changes, result.launch, result.onboard = [], "", False
        results.append(result)
    _reject_duplicates(results)
    preview = Preview(table=table, columns=columns, rows=results)
    preview.digest = digest(preview)
    return preview


def _reject_duplicates(results: list[RowResult]) -> None:
    by_number: dict[str, list[RowResult]] = defaultdict(list)
    by_username: dict[str, list[RowResult]] = defaultdict(list)
    for result in results:
        if result.keyed:
            by_number[result.service_number].append(result)
    for service_number, rows in by_number.items():
        if len(rows) > 1:
            where = ", ".join(str(r.row) for r in rows)
            for result in rows:
                _reject_again(
                    result,
                    gettext("The service number %(number)s appears more than once (rows %(rows)s).")
                    % {"number": service_number, "rows": where},
                    "duplicate_service_number",
                )
    for result in results:
        if result.action == Action.CREATE:
            by_username[result.username].append(result)
    for username, rows in by_username.items():
        if len(rows) > 1:
            where = ", ".join(str(r.row) for r in rows)
            for result in rows:
                _reject_again(
                    result,
                    gettext("The username %(username)s is asked for by rows %(rows)s.")
                    % {"username": username, "rows": where},
                    "duplicate_username",
                )


def _reject_again(result: RowResult, message: str, code: str) -> None:
    result.reject(message, code)
    result.changes, result.launch, result.onboard = [], "", False


def digest(preview: Preview) -> str:
    """A fingerprint of what the confirmation would do; it changes when the data does."""
    outline = [
        [
            r.row,
            r.action,
            r.service_number,
            r.soldier_pk,
            r.username,
            r.onboard,
            r.launch,
            [[c.field, _plain(c.old), _plain(c.new)] for c in r.changes],
        ]
        for r in preview.rows
    ]
    payload = json.dumps([preview.table.format, preview.columns.index, outline])
    return hashlib.sha256(payload.encode()).hexdigest()


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


# --- writing exports ---------------------------------------------------------------------

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
