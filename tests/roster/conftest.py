"""Roster tests: files built in the test, the Soldier admin over HTTP, devcloud for onboarding."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from typing import Any

import openpyxl
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import translation

from portal.models import Soldier, VmTemplate
from tests.integration.conftest import *  # noqa: F403 -- portal_cloud, cast, tasks, admin, ...

HEADERS_KO = ["군번", "이름", "소속", "입대일", "전역일"]

IMPORT_URL = "admin:portal_soldier_roster_import"


def csv_file(rows: Sequence[Sequence[Any]], *, encoding: str = "utf-8", bom: bool = False) -> bytes:
    """A CSV the way Excel writes it: CRLF line ends, the given encoding."""
    text = "".join(",".join(str(c) for c in row) + "\r\n" for row in rows)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


def xlsx_file(rows: Sequence[Sequence[Any]], *, title: str = "명단") -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def roster_rows(count: int, *, start: int = 0, prefix: str = "24-7") -> list[list[str]]:
    """``count`` valid rows for new soldiers, Korean names, dates in the future."""
    return [
        [f"{prefix}{n:07d}", f"김병사{n}", "제1대대", "2025-03-04", "2099-09-03"]
        for n in range(start, start + count)
    ]


def template(name: str, *, active: bool = True) -> VmTemplate:
    """A template row only (no cloud): enough for the preview and for queueing launches."""
    return VmTemplate.objects.create(
        name=name, image_id=f"img-{name}", flavor_id="flv", is_active=active
    )


def soldier(number: str, username: str, **fields: Any) -> Soldier:
    """A soldier row as the database may hold it, from before today's rules too (no checks)."""
    user = get_user_model().objects.create_user(username=username)
    return Soldier.objects.create(
        user=user, service_number=number, keystone_user_name=username, **fields
    )


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Assertions read English messages; one test checks the Korean default on its own."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    # Tests run with DEBUG off but without collectstatic's manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def staff(db: Any) -> Any:
    return get_user_model().objects.create_superuser(username="operator", password="x" * 12)


def english_client() -> Client:
    """Assertions read English; one test checks the Korean default on its own."""
    return Client(headers={"accept-language": "en"})


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = english_client()
    client.force_login(staff)
    return client


class Importer:
    """Drives the import pages the way a person does: upload, read the preview, confirm."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def upload(self, data: bytes, name: str = "roster.csv") -> Any:
        return self.client.post(reverse(IMPORT_URL), {"file": SimpleUploadedFile(name, data)})

    def preview(self, data: bytes, name: str = "roster.csv") -> Any:
        """Upload and follow to the preview page; returns its response (context included)."""
        response = self.upload(data, name)
        assert response.status_code == 302, response.content.decode()[:2000]
        return self.client.get(response["Location"])

    def confirm(self, preview_response: Any) -> Any:
        upload = preview_response.context["upload"]
        form = preview_response.context["confirm_form"]
        return self.client.post(
            reverse("admin:portal_soldier_roster_confirm", args=[upload.pk]),
            {"sha256": form.initial["sha256"], "digest": form.initial["digest"]},
        )

    def run(self, data: bytes, name: str = "roster.csv") -> Any:
        """Upload, preview and confirm; returns the confirmation's response."""
        response = self.confirm(self.preview(data, name))
        assert response.status_code == 302, response.content.decode()[:2000]
        return response


@pytest.fixture
def importer(staff_client: Client) -> Importer:
    return Importer(staff_client)


def rows_of(response: Any) -> dict[str, Any]:
    """The preview's row results by service number."""
    return {r.service_number: r for r in response.context["preview"].rows}


def text_of(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())
