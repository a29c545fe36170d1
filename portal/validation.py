"""What the cloud and the portal accept as a soldier's service number, username and dates.

Pure rules (no database, no cloud call) shared by the roster import and the services, so a name
the preview accepts is one Keystone accepts too: Keystone keeps user names up to 255 characters
and refuses project names over 64, and a soldier's project is named
``OPENSTACK_PROJECT_PREFIX`` + username. Onboarding adopts an existing Keystone user of the same
name, so the names of the cloud's own users (``admin``, the service users, the portal's own user)
are refused outright. Each rule raises ``django.core.exceptions.ValidationError`` with a code.

The services refuse with a ``Problem`` (a gettext msgid and its parameters, translated when
shown, so a message stored on an operation reads in each reader's language): the ``*_problem``
functions below wrap the same rules. Model fields use the ``validate_*`` validators.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from portal.errors import render

SERVICE_NUMBER_MAX_LENGTH = 32  # Soldier.service_number
KEYSTONE_USER_NAME_MAX_LENGTH = 255  # Keystone's user name column
KEYSTONE_PROJECT_NAME_MAX_LENGTH = 64  # Keystone refuses longer project names
DJANGO_USERNAME_MAX_LENGTH = 150  # every soldier also has a Django User of that name
NOVA_SERVER_NAME_MAX_LENGTH = 255
PERSON_NAME_MAX_LENGTH = 100  # Soldier.name
TEMPLATE_NAME_MAX_LENGTH = 100  # VmTemplate.name

# Users every OpenStack deployment may hold besides soldiers: the bootstrap admin and the users
# the services run as (devstack, kolla-ansible and OpenStack-Ansible name them after the service).
CLOUD_USERNAMES = frozenset(
    {
        "admin",
        "root",
        "administrator",
        "demo",
        "service",
        "keystone",
        "nova",
        "neutron",
        "glance",
        "placement",
        "cinder",
        "swift",
        "heat",
        "heat_domain_admin",
        "octavia",
        "ironic",
        "barbican",
        "designate",
        "manila",
        "magnum",
        "aodh",
        "ceilometer",
        "gnocchi",
        "trove",
        "zun",
        "masakari",
        "cyborg",
        "skyline",
        "horizon",
    }
)

_SERVICE_NUMBER = re.compile(r"[0-9A-Za-z](?:[0-9A-Za-z-]*[0-9A-Za-z])?")
# ASCII only: the name becomes part of the project, network and VM (host) names.
_USERNAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Spreadsheets run a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_DATE_PATTERNS = (
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})\.\s*(?P<m>\d{1,2})\.\s*(?P<d>\d{1,2})\.?"),
    re.compile(r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
)


def normalize_text(value: object) -> str:
    """A cell as text: NFKC (full-width letters and digits become ASCII), trimmed."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).strip()


def clean_text(value: str, *, max_length: int) -> str:
    """A name or unit: no control characters, no spreadsheet formula, not too long."""
    if _CONTROL.search(value):
        raise ValidationError(_("It contains control characters."), code="control_characters")
    if value.startswith(("=", "+", "@")):
        raise ValidationError(
            _("It starts with %(char)s, which spreadsheets run as a formula."),
            code="formula",
            params={"char": value[0]},
        )
    if len(value) > max_length:
        raise ValidationError(
            _("It is longer than %(max)s characters."),
            code="text_too_long",
            params={"max": max_length},
        )
    return value


def clean_service_number(value: object) -> str:
    """A service number such as 22-71234567: letters, digits and inner hyphens, ≤ 32."""
    text = normalize_text(value)
    if not text:
        raise ValidationError(_("The service number is missing."), code="required")
    if len(text) > SERVICE_NUMBER_MAX_LENGTH:
        raise ValidationError(
            _("The service number is longer than %(max)s characters."),
            code="too_long",
            params={"max": SERVICE_NUMBER_MAX_LENGTH},
        )
    if not _SERVICE_NUMBER.fullmatch(text):
        raise ValidationError(
            _("The service number %(value)s may hold only letters, digits and hyphens."),
            code="invalid",
            params={"value": text},
        )
    return text


def username_from_service_number(service_number: str) -> str:
    """The username of a soldier whose roster row names none: the service number, lowercase."""
    return service_number.lower()


def project_prefix() -> str:
    return str(settings.OPENSTACK_PROJECT_PREFIX)


def username_max_length(prefix: str | None = None) -> int:
    """The longest username whose Keystone user, Django user and project names all fit."""
    prefix = project_prefix() if prefix is None else prefix
    return min(
        KEYSTONE_USER_NAME_MAX_LENGTH,
        DJANGO_USERNAME_MAX_LENGTH,
        KEYSTONE_PROJECT_NAME_MAX_LENGTH - len(prefix),
    )


_own_username: dict[tuple[str, ...], str] = {}


def portal_cloud_username() -> str:
    """The user the portal itself signs in to the cloud as ("" when no cloud is configured).

    Read from clouds.yaml or the ``OS_*`` variables once per configuration, not per soldier.
    """
    from portal.openstack import errors, load_config

    key = (
        str(settings.OPENSTACK_CLOUD),
        *(
            os.environ.get(name, "")
            for name in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD", "OS_USERNAME")
        ),
    )
    if key not in _own_username:
        try:
            config = load_config(settings.OPENSTACK_CLOUD or None)
        except errors.ConfigurationError:
            return ""
        _own_username[key] = (config.username or "").lower()
    return _own_username[key]


def reserved_usernames() -> frozenset[str]:
    """Names a soldier may not take: the cloud's own users, the portal's, and the configured."""
    extra = {n.strip().lower() for n in settings.OPENSTACK_RESERVED_USERNAMES if n.strip()}
    own = portal_cloud_username()
    return CLOUD_USERNAMES | extra | ({own} if own else set())


def clean_username(
    value: object,
    *,
    reserved: Collection[str] | None = None,
    prefix: str | None = None,
) -> str:
    """A soldier's username (Keystone user, Django user, project suffix), lowercased.

    ``reserved`` defaults to ``reserved_usernames()``; pass it when checking many names.
    """
    text = normalize_text(value).lower()
    if not text:
        raise ValidationError(_("The username is missing."), code="required")
    longest = username_max_length(prefix)
    if len(text) > longest:
        raise ValidationError(
            _(
                "The username %(value)s is longer than %(max)s characters (the cloud's project "
                "name, %(prefix)s plus the username, must fit in %(project_max)s)."
            ),
            code="too_long",
            params={
                "value": text,
                "max": longest,
                "prefix": project_prefix() if prefix is None else prefix,
                "project_max": KEYSTONE_PROJECT_NAME_MAX_LENGTH,
            },
        )
    if not _USERNAME.fullmatch(text):
        raise ValidationError(
            _(
                "The username %(value)s may hold only lowercase letters, digits, dots, hyphens "
                "and underscores, and must start and end with a letter or digit."
            ),
            code="invalid",
            params={"value": text},
        )
    if text in (reserved_usernames() if reserved is None else reserved):
        raise ValidationError(
            _("The username %(value)s belongs to the cloud itself and cannot be a soldier's."),
            code="reserved",
            params={"value": text},
        )
    return text


def parse_date(value: object) -> date | None:
    """A roster date: YYYY-MM-DD, YYYY.MM.DD (Excel's Korean style too), YYYYMMDD or a date cell."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # 20240305 typed into a number cell
    text = normalize_text(value)
    if not text:
        return None
    for pattern in _DATE_PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            try:
                return date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                break
    raise ValidationError(
        _("%(value)s is not a date (write YYYY-MM-DD, YYYY.MM.DD or YYYYMMDD)."),
        code="invalid_date",
        params={"value": text[:40]},
    )


def check_service_dates(enlisted_on: date | None, discharge_on: date | None) -> None:
    """A discharge cannot come before the enlistment."""
    if enlisted_on and discharge_on and discharge_on < enlisted_on:
        raise ValidationError(
            _("The discharge date %(discharge)s is before the enlistment date %(enlisted)s."),
            code="discharge_before_enlistment",
            params={"discharge": discharge_on.isoformat(), "enlisted": enlisted_on.isoformat()},
        )


# --- refusals for the services -----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A reason the cloud or the portal would refuse, for people: a msgid and its placeholders.

    A value the rules return, not an exception: a service raises it as its own ``Refusal`` (or
    ``OperationRefused``) with the same message and params, and it reads the same either way.
    """

    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return render(self.message, self.params)


def problem_of(error: ValidationError) -> Problem:
    """The ``Problem`` of a rule's ``ValidationError``, keeping its msgid untranslated."""
    message = error.message
    if isinstance(message, Promise):
        # gettext_lazy keeps its msgid as the call's argument: store that, not this language.
        message = message._args[0]  # type: ignore[attr-defined]
    return Problem(str(message), dict(error.params or {}))


def _problem(rule: Any, *args: Any, **kwargs: Any) -> Problem | None:
    try:
        rule(*args, **kwargs)
    except ValidationError as error:
        return problem_of(error)
    return None


def names_equal(a: str, b: str) -> bool:
    """Keystone's comparison of names: case-insensitive on MySQL, its usual database."""
    return a.casefold() == b.casefold()


def username_problem(value: str) -> Problem | None:
    """A soldier's cloud username, exactly as given (the rule lowercases; stored names are)."""
    problem = _problem(clean_username, value)
    if problem is None and value != normalize_text(value).lower():
        return Problem(
            gettext_noop(
                "The username %(value)s may hold only lowercase letters, digits, dots, hyphens "
                "and underscores, and must start and end with a letter or digit."
            ),
            {"value": value},
        )
    return problem


def service_number_problem(value: str) -> Problem | None:
    return _problem(clean_service_number, value)


def person_name_problem(value: str) -> Problem | None:
    """A soldier's name (Korean or not): present, printable, not too long."""
    if not value.strip():
        return Problem(gettext_noop("The name is empty."))
    if len(value) > PERSON_NAME_MAX_LENGTH or _CONTROL.search(value):
        return Problem(
            gettext_noop("The name must be printable text of at most %(limit)s characters."),
            {"limit": PERSON_NAME_MAX_LENGTH},
        )
    return None


def dates_problem(enlisted_on: date | None, discharge_on: date | None) -> Problem | None:
    return _problem(check_service_dates, enlisted_on, discharge_on)


def server_name_problem(value: str) -> Problem | None:
    if not value or len(value) > NOVA_SERVER_NAME_MAX_LENGTH or _CONTROL.search(value):
        return Problem(
            gettext_noop("The VM name must be 1 to %(limit)s printable characters."),
            {"limit": NOVA_SERVER_NAME_MAX_LENGTH},
        )
    return None


def zone_problem(zone: str) -> Problem | None:
    """A VM's availability zone must be one the portal may use (``OPENSTACK_ALLOWED_ZONES``)."""
    allowed = [str(z) for z in settings.OPENSTACK_ALLOWED_ZONES if z]
    if zone and allowed and zone not in allowed:
        return Problem(
            gettext_noop(
                "The availability zone %(zone)s is not one the portal may use (%(allowed)s)."
            ),
            {"zone": zone, "allowed": ", ".join(allowed)},
        )
    return None


_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def template_name_problem(name: str) -> Problem | None:
    if not name or len(name) > TEMPLATE_NAME_MAX_LENGTH or not _TEMPLATE_NAME.fullmatch(name):
        return Problem(
            gettext_noop(
                "The template name %(name)s may contain only letters, digits, '.', '_' and '-' "
                "(at most %(limit)s)."
            ),
            {"name": name[:80], "limit": TEMPLATE_NAME_MAX_LENGTH},
        )
    return None


# --- model field validators ----------------------------------------------------------------------


def _raise(problem: Problem | None) -> None:
    if problem is not None:
        raise ValidationError(str(problem))


def validate_username(value: str) -> None:
    """Model and form validator for ``Soldier.keystone_user_name``."""
    _raise(username_problem(value))


def validate_service_number(value: str) -> None:
    _raise(service_number_problem(value))


def validate_person_name(value: str) -> None:
    _raise(person_name_problem(value))


def validate_template_name(value: str) -> None:
    _raise(template_name_problem(value))


def validate_zone(value: str) -> None:
    _raise(zone_problem(value))
