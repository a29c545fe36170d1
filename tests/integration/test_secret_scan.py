"""The leak scanner itself: devcloud hands over what it saw, and a planted leak is found."""

from pathlib import Path
from typing import Any

import pytest

from portal import services
from portal.models import Operation
from tests.integration.conftest import Cast
from tests.secret_scan import cloud_secrets, scan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.cloud]


def test_devcloud_reports_every_password_and_token_and_the_scan_finds_a_planted_one(
    devcloud: Any, cast: Cast, tasks: Any, tmp_path: Path
) -> None:
    services.soldier_onboard(soldier=cast.soldier)
    tasks()
    cast.soldier.refresh_from_db()
    reset = services.soldier_password_reset(soldier=cast.soldier, requested_by=cast.staff)
    assert reset.password is not None
    token = devcloud.faults._authenticate()

    seen = cloud_secrets(devcloud)
    assert reset.password in seen
    assert token in seen
    assert devcloud.admin_password in seen

    log = tmp_path / "portal.log"
    log.write_text("GET /servers 200\n")
    assert scan(seen, files=[log], texts=["sessionid=abc"]) == []

    log.write_text(f"POST /v3/auth/tokens {token}\n")
    Operation.objects.filter(pk=reset.operation.pk).update(message=f"set to {reset.password}")
    hits = scan(seen, files=[log], texts=[f"csrftoken=x; t={token}"])
    assert f"{log}: {token[:4]}…" in hits
    assert f"text #0: {token[:4]}…" in hits
    assert f"database portal_operation.message: {reset.password[:4]}…" in hits
    assert all(reset.password not in hit and token not in hit for hit in hits)


def test_a_scan_with_nothing_to_look_for_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing"):
        scan(["short"], database=False)
