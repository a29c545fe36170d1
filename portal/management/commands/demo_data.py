"""Create the demo logins of a local run (idempotent) and write them to VAR_DIR/demo_logins.txt.

Staff logins: an administrator (superuser), an operator (runs every console action) and a viewer
(sees everything, runs nothing), in the groups migration 0003 creates. When a cloud is configured
(OS_CLOUD or OS_* variables), the demo soldier is also onboarded there (Keystone user, project,
roles, network), given the demo password as their cloud password, a VM template is made from the
cloud's first image and smallest flavor, and a VM is queued for the soldier (the task worker
``bin/run`` starts launches it).
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from portal import services
from portal.models import Operation, Soldier, seoul_today
from portal.openstack import OpenStackError
from portal.openstack.types import ServerStatus

DEMO_STAFF = ("staff", "codesquare-staff-demo")
DEMO_OPERATOR = ("operator", "codesquare-operator-demo")
DEMO_VIEWER = ("viewer", "codesquare-viewer-demo")
DEMO_SOLDIER = ("soldier1", "codesquare-soldier-demo")
DEMO_TEMPLATE = "standard"


class Command(BaseCommand):
    help = "Create the demo staff and soldier logins of a local run."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO_DATA:
            # Published passwords in a real cloud or a production database would be an open door.
            raise CommandError(
                "demo_data creates logins whose passwords are published; it runs only for the "
                "devcloud that bin/run starts (CODESQUARE_DEMO_DATA=true). Create the first "
                "staff account with: python manage.py createsuperuser"
            )
        user_model = get_user_model()
        staff_name, staff_password = DEMO_STAFF
        staff, created = user_model.objects.get_or_create(
            username=staff_name, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            staff.set_password(staff_password)
            staff.save()
        operator = self._staff(DEMO_OPERATOR, "operators")
        self._staff(DEMO_VIEWER, "viewers")
        soldier_name, soldier_password = DEMO_SOLDIER
        soldier_user, created = user_model.objects.get_or_create(username=soldier_name)
        if created:
            soldier_user.set_password(soldier_password)
            soldier_user.save()
        soldier, _ = Soldier.objects.get_or_create(
            user=soldier_user,
            defaults={
                "service_number": "DEMO-0001",
                "name": "데모 병사",
                "unit": "CodeSquare",
                "enlisted_on": seoul_today() - timedelta(days=100),
                "discharge_on": seoul_today() + timedelta(days=445),
                "keystone_user_name": soldier_name,
            },
        )
        self._onboard(soldier, operator, soldier_password)

        lines = [
            f"  demo staff login:             {staff_name} / {staff_password} (administrator)",
            f"  demo operator login:          {DEMO_OPERATOR[0]} / {DEMO_OPERATOR[1]}",
            f"  demo viewer login:            {DEMO_VIEWER[0]} / {DEMO_VIEWER[1]}",
            f"  demo soldier login:           {soldier_name} / {soldier_password}",
        ]
        Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        (Path(settings.VAR_DIR) / "demo_logins.txt").write_text("\n".join(lines) + "\n")
        self.stdout.write("demo logins ready")

    def _staff(self, login: tuple[str, str], group: str) -> Any:
        name, password = login
        user, created = get_user_model().objects.get_or_create(
            username=name, defaults={"is_staff": True}
        )
        if created:
            user.set_password(password)
            user.save()
        user.groups.add(Group.objects.get(name=group))
        return user

    def _onboard(self, soldier: Soldier, staff: Any, password: str) -> None:
        """Onboard the demo soldier in the cloud; a missing or unreachable cloud only warns."""
        if not services.cloud_is_configured():
            self.stdout.write("no cloud configured (OS_CLOUD or OS_*); demo soldier not onboarded")
            return
        try:
            if soldier.state != Soldier.State.ACTIVE:
                op = services.soldier_onboard(soldier=soldier, requested_by=staff, run_now=True)
                if op.state != Operation.State.SUCCEEDED:
                    self.stderr.write(f"demo soldier not onboarded: {op.message_text}")
                    return
                soldier.refresh_from_db()
            # The demo login doubles as the soldier's cloud password, so the pages that log
            # soldiers in against Keystone accept it.
            reset = services.soldier_password_reset(
                soldier=soldier, requested_by=staff, new_password=password
            )
            if reset.password is None:
                self.stderr.write(f"demo password not set: {reset.operation.message_text}")
                return
            template = services.vm_template_from_cloud(name=DEMO_TEMPLATE)
        except (OpenStackError, services.OperationRefused) as exc:
            self.stderr.write(f"cloud not ready, demo soldier not onboarded: {exc}")
            return
        self.stdout.write(
            f"demo soldier {soldier.keystone_user_name} onboarded; template {template.name!r} "
            f"({template.image_name}, {template.flavor_name})"
        )
        if not soldier.instances.exclude(status=ServerStatus.DELETED).exists():
            try:
                instance = services.instance_launch(
                    soldier=soldier, template=template, requested_by=staff
                )
            except services.OperationRefused as exc:
                self.stderr.write(f"demo VM not launched: {exc}")
                return
            self.stdout.write(f"demo VM {instance.name} queued; the task worker launches it")
