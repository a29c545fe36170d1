"""Roster rows: one Django ``Form`` per row decides its fate; the whole file is previewed.

Pure: no database and no cloud. The service (``portal.services.roster_imports``) loads what the
rows must be checked against into a ``RosterContext`` with a few bulk queries, keyed on the
service number. An empty cell keeps a known soldier's current value; a missing column is left
alone. Rows that contradict each other (one service number or username twice) are rejected
together, and ``digest`` fingerprints what a confirmation would do.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal import validation
from portal.rosterfile.columns import COLUMN_BY_KEY, COLUMNS, SOLDIER_FIELDS, Columns, column_label
from portal.rosterfile.read import Table

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
