"""Roster import: a cohort of soldiers from the unit's spreadsheet.

An import is two steps. ``roster_upload_store`` keeps the file; ``roster_preview`` reads it and
says what each row would do, writing nothing and calling no cloud. ``roster_import`` reads the
same stored bytes again, re-validates them against the database and refuses unless the result
is exactly the preview the person confirmed (its digest); then, in one transaction, it writes
the valid rows and queues one ``Batch``: the onboarding of each new soldier and the VMs the
rows ask for. Rejected rows never block the others. The checks a row needs from the database
are loaded with a few bulk queries per 500 rows, never one query per row.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from portal import validation
from portal.models import (
    Batch,
    Instance,
    RosterUpload,
    Soldier,
    VmTemplate,
    seoul_today,
)
from portal.openstack.types import ServerStatus
from portal.operations.errors import OperationRefused
from portal.rosterfile.columns import map_headers
from portal.rosterfile.read import RosterFileError, read_table
from portal.rosterfile.rows import (
    Action,
    KnownSoldier,
    Preview,
    RosterContext,
    RowKeys,
    row_keys,
    validate_table,
)
from portal.services.instances import instance_launch
from portal.services.onboarding import soldier_create, soldier_onboard

CHUNK = 500
BATCH_KIND = "roster_import"


class RosterRefused(OperationRefused):
    """The confirmation is refused as a whole; ``str()`` is a sentence for people."""


class RosterStale(RosterRefused):
    """The data changed since the preview; ``preview`` is what a confirmation would do now."""

    def __init__(self, preview: Preview) -> None:
        super().__init__(
            gettext_noop(
                "Soldiers, accounts or templates changed since this preview was shown, so "
                "nothing was imported. Check the updated preview below and confirm again."
            )
        )
        self.preview = preview


def _max_rows() -> int:
    return int(settings.ROSTER_MAX_ROWS)


def _ttl() -> timedelta:
    return timedelta(seconds=int(settings.ROSTER_UPLOAD_TTL_SECONDS))


def roster_upload_store(*, uploaded_by: Any, filename: str, data: bytes) -> RosterUpload:
    """Keep an uploaded roster for its preview and confirmation; forget expired ones.

    Raises ``RosterFileError`` for a file too large, unreadable or without service numbers.
    """
    limit = int(settings.ROSTER_MAX_UPLOAD_BYTES)
    if len(data) > limit:
        raise RosterFileError(
            _(
                "The file is %(size)s KiB; the import takes files up to %(limit)s KiB "
                "(ROSTER_MAX_UPLOAD_BYTES). Split it into smaller files."
            ),
            size=len(data) // 1024,
            limit=limit // 1024,
        )
    # A file that is no roster at all is refused now, on the upload form, and not kept.
    map_headers(read_table(data, filename=filename, max_rows=_max_rows()).headers)
    RosterUpload.objects.filter(created_at__lt=timezone.now() - _ttl()).delete()
    return RosterUpload.objects.create(
        uploaded_by=uploaded_by,
        filename=filename[-255:],
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def roster_preview(*, upload: RosterUpload) -> Preview:
    """What importing the upload would do, row by row; writes nothing, calls no cloud.

    Raises ``RosterFileError`` for a file that cannot be read as a roster at all.
    """
    data = bytes(upload.data)
    if hashlib.sha256(data).hexdigest() != upload.sha256:
        raise RosterFileError(_("The stored file does not match its checksum; upload it again."))
    table = read_table(data, filename=upload.filename, max_rows=_max_rows())
    columns = map_headers(table.headers)
    context = roster_context(row_keys(table, columns))
    preview = validate_table(table, columns, context)
    preview.digest = hashlib.sha256(f"{upload.sha256}:{preview.digest}".encode()).hexdigest()
    return preview


def _chunks[T](items: Iterable[T]) -> Iterator[list[T]]:
    items = list(items)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def roster_context(keys: RowKeys) -> RosterContext:
    """Everything the rows are checked against, in a few queries per CHUNK rows."""
    known: dict[str, dict[str, Any]] = {}
    for numbers in _chunks(sorted(keys.service_numbers)):
        for row in Soldier.objects.filter(service_number__in=numbers).values(
            "pk",
            "service_number",
            "name",
            "unit",
            "enlisted_on",
            "discharge_on",
            "keystone_user_name",
            "state",
        ):
            known[row["service_number"]] = dict(row)
    by_pk: dict[int, dict[str, Any]] = {row["pk"]: row for row in known.values()}
    templates_of: dict[int, set[str]] = defaultdict(set)
    for pks in _chunks(sorted(by_pk)):
        live = (
            Instance.objects.filter(
                owner_id__in=pks, deleted_outside_portal=False, template__isnull=False
            )
            .exclude(status=ServerStatus.DELETED)
            .values_list("owner_id", "template__name")
        )
        for owner_id, template_name in live:
            templates_of[owner_id].add(template_name)
    soldier_usernames: dict[str, str] = {}
    account_usernames: set[str] = set()
    for names in _chunks(sorted(keys.usernames)):
        soldier_usernames.update(
            Soldier.objects.annotate(lowered=Lower("keystone_user_name"))
            .filter(lowered__in=names)
            .values_list("lowered", "service_number")
        )
        account_usernames.update(
            get_user_model()
            .objects.annotate(lowered=Lower("username"))
            .filter(lowered__in=names)
            .values_list("lowered", flat=True)
        )
    return RosterContext(
        soldiers={
            number: KnownSoldier(
                pk=row["pk"],
                service_number=number,
                name=row["name"],
                unit=row["unit"],
                enlisted_on=row["enlisted_on"],
                discharge_on=row["discharge_on"],
                username=row["keystone_user_name"],
                state=row["state"],
                vm_templates=frozenset(templates_of[row["pk"]]),
            )
            for number, row in known.items()
        },
        soldier_usernames=soldier_usernames,
        account_usernames=frozenset(account_usernames),
        templates=dict(VmTemplate.objects.values_list("name", "is_active")),
        reserved=validation.reserved_usernames(),
        prefix=validation.project_prefix(),
        today=seoul_today(),
    )


@dataclass
class RosterImport:
    """What a confirmed import did."""

    preview: Preview
    batch: Batch | None
    created: int = 0
    updated: int = 0
    queued: int = 0
    refusals: list[str] = field(default_factory=list)


def roster_import(
    *, upload: RosterUpload, sha256: str, digest: str, requested_by: Any
) -> RosterImport:
    """Import the previewed upload: write the valid rows, queue one batch of operations.

    ``sha256`` and ``digest`` are the file and the preview the person confirmed; anything else
    is refused (``RosterRefused``; ``RosterStale`` when the data moved since the preview).
    """
    try:
        return _import(upload=upload, sha256=sha256, digest=digest, requested_by=requested_by)
    except IntegrityError as exc:
        # Another import (or an edit) wrote the same service number or username between this
        # confirmation's checks and its writes; nothing of this one was kept.
        raise RosterRefused(
            gettext_noop(
                "Someone else added the same soldiers at the same moment, so nothing was "
                "imported. Upload the file again to see what is left to do."
            )
        ) from exc


def _import(*, upload: RosterUpload, sha256: str, digest: str, requested_by: Any) -> RosterImport:
    with transaction.atomic():
        # Locks the upload: a double-clicked confirmation imports once.
        locked = RosterUpload.objects.select_for_update().get(pk=upload.pk)
        if locked.confirmed_at is not None:
            raise RosterRefused(gettext_noop("This file has already been imported."))
        if locked.created_at < timezone.now() - _ttl():
            raise RosterRefused(
                gettext_noop(
                    "This preview is older than %(minutes)s minutes; upload the file again."
                ),
                minutes=int(_ttl().total_seconds() // 60),
            )
        if sha256 != locked.sha256:
            raise RosterRefused(
                gettext_noop(
                    "The file confirmed is not the file previewed; upload it again and check "
                    "the preview."
                )
            )
        preview = roster_preview(upload=locked)
        if preview.digest != digest:
            raise RosterStale(preview)
        result = _write(preview, requested_by)
        locked.confirmed_at = timezone.now()
        locked.batch = result.batch
        locked.save(update_fields=["confirmed_at", "batch"])
    return result


def _write(preview: Preview, requested_by: Any) -> RosterImport:
    result = RosterImport(preview=preview, batch=None)
    soldiers: dict[int, Soldier] = {}  # by row number
    creates = [r for r in preview.rows if r.action == Action.CREATE]
    user_model = get_user_model()
    users = []
    for row in creates:
        user = user_model(username=row.username)
        # Soldiers sign in with their cloud password (Keystone), never a portal one.
        user.set_unusable_password()
        users.append(user)
    users = user_model.objects.bulk_create(users, batch_size=CHUNK)
    for row, user in zip(creates, users, strict=True):
        soldiers[row.row] = soldier_create(
            user=user,
            service_number=row.service_number,
            keystone_user_name=row.username,
            **row.values,
        )
    result.created = len(creates)

    known_rows = [r for r in preview.rows if r.action == Action.UPDATE and r.soldier_pk is not None]
    known: dict[int, Soldier] = {}
    for pks in _chunks(r.soldier_pk for r in known_rows if r.soldier_pk is not None):
        known.update(Soldier.objects.select_for_update().in_bulk(pks))
    by_fields: dict[tuple[str, ...], list[Soldier]] = defaultdict(list)
    now = timezone.now()
    for row in known_rows:
        assert row.soldier_pk is not None
        soldier = known[row.soldier_pk]
        soldiers[row.row] = soldier
        if row.changes:
            for name, value in row.values.items():
                setattr(soldier, name, value)
            soldier.updated_at = now
            by_fields[tuple(sorted(row.values))].append(soldier)
    for fields, group in by_fields.items():
        Soldier.objects.bulk_update(group, [*fields, "updated_at"], batch_size=CHUNK)
    result.updated = sum(len(group) for group in by_fields.values())

    work = [r for r in preview.rows if r.row in soldiers and (r.onboard or r.launch)]
    if not work:
        return result
    templates = VmTemplate.objects.in_bulk({r.launch for r in work if r.launch}, field_name="name")
    batch = Batch.objects.create(kind=BATCH_KIND, requested_by=requested_by)
    for row in work:
        soldier = soldiers[row.row]
        try:
            if row.onboard:
                soldier_onboard(soldier=soldier, requested_by=requested_by, batch=batch)
            if row.launch:
                # The launch joins the onboarding queued just above instead of starting its own.
                instance_launch(
                    soldier=soldier,
                    template=templates[row.launch],
                    requested_by=requested_by,
                    batch=batch,
                )
        except OperationRefused as exc:
            result.refusals.append(
                gettext("Row %(row)s (%(number)s): %(reason)s")
                % {"row": row.row, "number": row.service_number, "reason": exc}
            )
    batch.total = batch.operations.count()
    if not batch.total:
        batch.delete()
        return result
    batch.save(update_fields=["total"])
    result.batch = batch
    result.queued = batch.total
    return result
