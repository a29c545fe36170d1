"""Roster columns: which header means what, in Korean or English, in any order.

Headers are compared NFKC-normalised, case-folded and without spaces, underscores, hyphens and
dots, so "군번", "Service No." and "service_number" are one column.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from portal.rosterfile.read import RosterFileError


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
