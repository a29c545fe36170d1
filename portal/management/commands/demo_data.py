"""Create the demo logins of a local run (idempotent) and write them to VAR_DIR/demo_logins.txt."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_STAFF = ("staff", "codesquare-staff-demo")
DEMO_SOLDIER = ("soldier1", "codesquare-soldier-demo")


class Command(BaseCommand):
    help = "Create the demo staff and soldier logins of a local run."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        staff_name, staff_password = DEMO_STAFF
        staff, created = user_model.objects.get_or_create(
            username=staff_name, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            staff.set_password(staff_password)
            staff.save()
        soldier_name, soldier_password = DEMO_SOLDIER
        soldier, created = user_model.objects.get_or_create(username=soldier_name)
        if created:
            soldier.set_password(soldier_password)
            soldier.save()

        lines = [
            f"  demo staff login:             {staff_name} / {staff_password}",
            f"  demo soldier login:           {soldier_name} / {soldier_password}",
        ]
        Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        (Path(settings.VAR_DIR) / "demo_logins.txt").write_text("\n".join(lines) + "\n")
        self.stdout.write("demo logins ready")
