"""Nova's fault text is cloud data: redacted before it is stored, shown to staff only, and
replaced by the portal's own words on the soldier's page (issue 18, F10)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from portal import services
from portal.models import Instance, Operation, Soldier
from tests.integration.conftest import Cast, PortalCloud, finished

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.usefixtures("devcloud"),
]

SECRET = "hunter2secret"
FAULT = f'No valid host <img src=x onerror=alert("XSSBUILD")> password={SECRET}'


@pytest.fixture
def failed_build(cast: Cast, tasks: Any, portal_cloud: PortalCloud) -> Instance:
    portal_cloud.faults.fail_builds(1, FAULT)
    instance = services.instance_launch(soldier=cast.soldier, template=cast.template)
    tasks()
    assert finished(instance.operations.get()).state == Operation.State.FAILED
    instance.refresh_from_db()
    assert instance.status == "ERROR"
    return instance


def test_the_fault_is_stored_redacted(failed_build: Instance) -> None:
    assert SECRET not in failed_build.fault
    assert "No valid host" in failed_build.fault
    assert "password=[redacted]" in failed_build.fault


def test_staff_read_the_redacted_fault_on_pages_and_in_exports(
    failed_build: Instance, operator: Client
) -> None:
    pages = {
        "status": operator.get("/admin/status/"),
        "list": operator.get("/admin/portal/instance/"),
        "detail": operator.get(f"/admin/portal/instance/{failed_build.pk}/change/"),
        "csv": operator.get("/admin/portal/instance/export/csv/"),
    }
    for name, answer in pages.items():
        assert answer.status_code == 200, name
        text = answer.content.decode()
        assert SECRET not in text, name
    assert "No valid host" in pages["detail"].content.decode()


def test_the_soldier_reads_the_portals_words_not_novas(failed_build: Instance) -> None:
    soldier = Soldier.objects.get(pk=failed_build.owner_id)
    for language, words in (
        ("en", "The cloud could not build the VM"),
        ("ko", "클라우드가 VM을 만들지 못했습니다"),
    ):
        browser = Client(HTTP_ACCEPT_LANGUAGE=language)
        browser.force_login(soldier.user, backend="portal.selfservice.auth.KeystoneBackend")
        text = browser.get("/").content.decode()
        assert failed_build.name in text
        assert "No valid host" not in text, language
        assert SECRET not in text
        assert "XSSBUILD" not in text
        assert words in text
