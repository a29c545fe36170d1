"""Roster import at scale: preview and confirm times, SQL queries per row, the 10,000-row file.

Run from the repository root: ``.venv/bin/python bench/bench_roster.py``. It drives the Soldier
admin's import pages through Django's test client (upload → preview → confirm) on a throwaway
SQLite portal. Targets: a 2,000-row file previews in under 10 s and confirms in under 20 s.
The baseline is the 200-row file of the same run: per-row cost at 2,000 rows over per-row cost
at 200 (about 1 = linear), and SQL queries per row, which must stay flat as files grow (the
preview's checks are bulk queries; the confirmation's are the services' own writes per soldier).
Operations are queued, not run: onboarding over the cloud is measured by the integration tests.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from portal_site import setup

HEADERS = "군번,이름,소속,입대일,전역일,템플릿\r\n"


def roster(count: int, *, start: int, template_every: int = 10) -> bytes:
    """A CP949 CSV like the unit's: Korean names; every tenth row asks for a VM."""
    lines = [HEADERS]
    for n in range(start, start + count):
        template = "bench" if n % template_every == 0 else ""
        lines.append(f"24-{n:08d},김똠방{n},제{n % 9 + 1}대대,2025.03.04,20990903,{template}\r\n")
    return "".join(lines).encode("cp949")


@dataclass
class Run:
    seconds: float = 0.0
    queries: int = 0


@contextmanager
def measured(run: Run) -> Iterator[None]:
    from django.db import connection

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        run.queries += 1
        return execute(sql, params, many, context)

    started = time.perf_counter()
    with connection.execute_wrapper(count):
        yield
    run.seconds += time.perf_counter() - started


class Importer:
    def __init__(self) -> None:
        from django.contrib.auth import get_user_model
        from django.test import Client

        user_model = get_user_model()
        staff = user_model.objects.filter(username="bench-operator").first()
        if staff is None:
            staff = user_model.objects.create_superuser(username="bench-operator")
        self.client = Client(headers={"accept-language": "en"})
        self.client.force_login(staff)

    def preview(self, data: bytes, run: Run) -> Any:
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.urls import reverse

        with measured(run):
            response = self.client.post(
                reverse("admin:portal_soldier_roster_import"),
                {"file": SimpleUploadedFile("roster.csv", data)},
            )
            if response.status_code != 302:
                return response
            page = self.client.get(response["Location"])
        assert page.status_code == 200
        return page

    def confirm(self, page: Any, run: Run) -> Any:
        from django.urls import reverse

        form = page.context["confirm_form"]
        with measured(run):
            response = self.client.post(
                reverse("admin:portal_soldier_roster_confirm", args=[page.context["upload"].pk]),
                {"sha256": form.initial["sha256"], "digest": form.initial["digest"]},
            )
        assert response.status_code == 302, response.content[:500]
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="200,1000,2000")
    args = parser.parse_args()
    devcloud, _ = setup(build_seconds=1.0, ALLOWED_HOSTS="localhost,testserver")
    from django.conf import settings
    from django.test.utils import override_settings, setup_test_environment

    setup_test_environment()  # responses carry their template context
    # DEBUG is off as in production; serve static URLs without collectstatic's manifest.
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    try:
        with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
            bench([int(s) for s in args.sizes.split(",")])
    finally:
        devcloud.stop()


def bench(sizes: list[int]) -> None:
    from django.conf import settings

    from portal.models import Batch, Operation, Soldier, VmTemplate

    VmTemplate.objects.create(name="bench", image_id="img", flavor_id="flv")
    importer = Importer()
    print(f"SQLite, Django test client; ROSTER_MAX_ROWS={settings.ROSTER_MAX_ROWS}")
    print(
        f"{'rows':>6} {'preview s':>10} {'q/row':>6} {'confirm s':>10} {'q/row':>6} "
        f"{'re-preview s':>13} {'q/row':>6} {'ops':>6}"
    )
    per_row: dict[int, tuple[float, float]] = {}
    start = 0
    for size in sizes:
        data = roster(size, start=start)
        start += size
        preview, confirm, again = Run(), Run(), Run()
        page = importer.preview(data, preview)
        assert page.context["preview"].totals["create"] == size, page.context["preview"].totals
        importer.confirm(page, confirm)
        batch = Batch.objects.latest("pk")
        expected_ops = size + (size + 9) // 10
        assert batch.total == expected_ops, (batch.total, expected_ops)
        repeat = importer.preview(data, again)
        assert repeat.context["preview"].totals["unchanged"] == size
        per_row[size] = (preview.seconds / size, confirm.seconds / size)
        print(
            f"{size:>6} {preview.seconds:>10.2f} {preview.queries / size:>6.2f} "
            f"{confirm.seconds:>10.2f} {confirm.queries / size:>6.2f} "
            f"{again.seconds:>13.2f} {again.queries / size:>6.2f} {batch.total:>6}"
        )
    first, last = sizes[0], sizes[-1]
    print(
        f"per-row cost at {last} rows / at {first} rows: preview "
        f"{per_row[last][0] / per_row[first][0]:.2f}x, confirm "
        f"{per_row[last][1] / per_row[first][1]:.2f}x (1.00x = linear)"
    )
    if 2000 in per_row:
        p, c = (per_row[2000][0] * 2000, per_row[2000][1] * 2000)
        print(f"2,000 rows: preview {p:.2f} s (target < 10 s), confirm {c:.2f} s (target < 20 s)")

    soldiers_before, ops_before = Soldier.objects.count(), Operation.objects.count()
    big, refused = roster(10_000, start=start), Run()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = importer.preview(big, refused)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    text = " ".join(response.content.decode().split())
    message = text[text.index("The file has more than") :].split("</li>")[0]
    assert Soldier.objects.count() == soldiers_before
    assert Operation.objects.count() == ops_before
    print(
        f"10,000 rows ({len(big) // 1024} KiB): refused in {refused.seconds:.2f} s, "
        f"{refused.queries} queries, peak RSS +{(rss_after - rss_before) // 1024} MiB: {message}"
    )


if __name__ == "__main__":
    main()
