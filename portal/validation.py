"""What the cloud will accept, checked before anything is sent to it.

Pure rules shared by the services (which refuse with ``OperationRefused``), the model fields
(Django validators, so admin forms agree) and the roster import. Each rule returns a ``Problem``
(a gettext msgid and its parameters, translated when shown) or None.

The limits are the cloud's: Keystone refuses user names over 255 characters and project names
over 64, and the portal names a soldier's project ``OPENSTACK_PROJECT_PREFIX + username`` (and
its network and router after the project), so the username's real limit is 64 minus the prefix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_noop

KEYSTONE_PROJECT_NAME_MAX = 64
KEYSTONE_USER_NAME_MAX = 255
NOVA_SERVER_NAME_MAX = 255
SERVICE_NUMBER_MAX = 32
PERSON_NAME_MAX = 100
TEMPLATE_NAME_MAX = 100

# Names a soldier may never be given: the cloud's own accounts (Keystone's bootstrap admin and
# the service users every OpenStack deployment creates) and the portal's. Compared the way a
# MySQL-backed Keystone compares names: without regard to case.
RESERVED_USER_NAMES = frozenset(
    {
        "admin",
        "root",
        "service",
        "services",
        "demo",
        "nova",
        "neutron",
        "glance",
        "placement",
        "cinder",
        "swift",
        "keystone",
        "heat",
        "octavia",
        "barbican",
        "designate",
        "manila",
        "ironic",
        "aodh",
        "gnocchi",
        "ceilometer",
        "magnum",
        "trove",
        "zun",
        "masakari",
        "codesquare",
        "codesquare-portal",
    }
)

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SERVICE_NUMBER = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]*$")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Problem:
    """A reason the cloud would refuse, for people: a msgid and its placeholders."""

    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        text = gettext(self.message)
        return text % self.params if self.params else text


def names_equal(a: str, b: str) -> bool:
    """Keystone's comparison of names: case-insensitive on MySQL, its usual database."""
    return a.casefold() == b.casefold()


def reserved_names() -> frozenset[str]:
    extra = {str(n).casefold() for n in getattr(settings, "OPENSTACK_RESERVED_USER_NAMES", ())}
    return RESERVED_USER_NAMES | extra


def username_limit() -> int:
    return KEYSTONE_PROJECT_NAME_MAX - len(str(settings.OPENSTACK_PROJECT_PREFIX))


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value)


def username_problem(value: str, *, portal_user: str | None = None) -> Problem | None:
    """A soldier's cloud username: what Keystone, the project name and Nova will all accept."""
    limit = username_limit()
    if not value:
        return Problem(gettext_noop("The username is empty."))
    if len(value) > limit:
        return Problem(
            gettext_noop(
                "The username %(name)s is %(length)s characters long; at most %(limit)s fit, "
                "because the cloud project is named %(prefix)s + the username (64 at most)."
            ),
            {
                "name": value[:80],
                "length": len(value),
                "limit": limit,
                "prefix": settings.OPENSTACK_PROJECT_PREFIX,
            },
        )
    if not _USERNAME.match(value):
        return Problem(
            gettext_noop(
                "The username %(name)s may contain only letters a-z, digits, '.', '_' and '-', "
                "and must start with a letter or a digit."
            ),
            {"name": value[:80]},
        )
    reserved = reserved_names()
    if portal_user:
        reserved = reserved | {portal_user.casefold()}
    if value.casefold() in reserved:
        return Problem(
            gettext_noop(
                "The username %(name)s belongs to the cloud itself (a service or administrator "
                "account) and cannot be given to a soldier."
            ),
            {"name": value},
        )
    return None


def service_number_problem(value: str) -> Problem | None:
    if not value:
        return Problem(gettext_noop("The service number is empty."))
    if len(value) > SERVICE_NUMBER_MAX or not _SERVICE_NUMBER.match(value):
        return Problem(
            gettext_noop(
                "The service number %(value)s is not valid: use digits, letters and '-', "
                "at most %(limit)s characters."
            ),
            {"value": value[:40], "limit": SERVICE_NUMBER_MAX},
        )
    return None


def person_name_problem(value: str) -> Problem | None:
    """A soldier's name (Korean or not): present, printable, not too long."""
    if not value.strip():
        return Problem(gettext_noop("The name is empty."))
    if len(value) > PERSON_NAME_MAX or _has_control(value):
        return Problem(
            gettext_noop("The name must be printable text of at most %(limit)s characters."),
            {"limit": PERSON_NAME_MAX},
        )
    return None


def dates_problem(enlisted_on: date | None, discharge_on: date | None) -> Problem | None:
    if enlisted_on and discharge_on and discharge_on < enlisted_on:
        return Problem(
            gettext_noop(
                "The discharge date %(discharge)s is before the enlistment date %(enlisted)s."
            ),
            {"discharge": discharge_on.isoformat(), "enlisted": enlisted_on.isoformat()},
        )
    return None


def server_name_problem(value: str) -> Problem | None:
    if not value or len(value) > NOVA_SERVER_NAME_MAX or _has_control(value):
        return Problem(
            gettext_noop("The VM name must be 1 to %(limit)s printable characters."),
            {"limit": NOVA_SERVER_NAME_MAX},
        )
    return None


def zone_problem(zone: str) -> Problem | None:
    """A VM's availability zone must be one the portal may use (``OPENSTACK_ALLOWED_ZONES``)."""
    allowed = [str(z) for z in getattr(settings, "OPENSTACK_ALLOWED_ZONES", ()) if z]
    if zone and allowed and zone not in allowed:
        return Problem(
            gettext_noop(
                "The availability zone %(zone)s is not one the portal may use (%(allowed)s)."
            ),
            {"zone": zone, "allowed": ", ".join(allowed)},
        )
    return None


def template_problem(
    *, name: str, image_id: str, flavor_id: str, availability_zone: str = ""
) -> Problem | None:
    if not name or len(name) > TEMPLATE_NAME_MAX or not _TEMPLATE_NAME.match(name):
        return Problem(
            gettext_noop(
                "The template name %(name)s may contain only letters, digits, '.', '_' and '-' "
                "(at most %(limit)s)."
            ),
            {"name": name[:80], "limit": TEMPLATE_NAME_MAX},
        )
    if not image_id or not flavor_id:
        return Problem(gettext_noop("A template needs an image and a flavor."))
    return zone_problem(availability_zone)


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
    if not value or len(value) > TEMPLATE_NAME_MAX or not _TEMPLATE_NAME.match(value):
        _raise(template_problem(name=value, image_id="-", flavor_id="-"))


def validate_zone(value: str) -> None:
    _raise(zone_problem(value))
