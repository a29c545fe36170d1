"""Sync the portal's mirrors with the cloud now: one server list and one floating-IP list."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal import services
from portal.models import Operation


class Command(BaseCommand):
    help = "Reconcile the portal's mirrors with the cloud (runs here, or queues with --queue)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", action="store_true", help="queue the pass for a db_worker instead"
        )

    def handle(self, *args: Any, queue: bool = False, **options: Any) -> None:
        try:
            op = services.cloud_reconcile(run_now=not queue)
        except services.OperationRefused as exc:
            raise CommandError(str(exc)) from exc
        if queue:
            self.stdout.write(f"reconcile queued as operation {op.pk}")
            return
        if op.state != Operation.State.SUCCEEDED:
            raise CommandError(f"reconcile failed: {op.message_text}")
        stats = op.progress.get("stats", {})
        summary = ", ".join(f"{key}={value}" for key, value in sorted(stats.items()))
        self.stdout.write(f"reconcile succeeded: {summary}")
