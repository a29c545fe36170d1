"""The periodic jobs, run next to db_worker: resume stale operations, reconcile, discharge.

Each tick only decides and enqueues (the worker does the cloud calls), and every decision is
guarded in the database (one active operation per lock key), so running two schedulers on two
machines does no harm. A plain loop was chosen over a task that re-enqueues itself: such a chain
breaks silently when a worker dies mid-task, while a process that a supervisor restarts cannot.
"""

import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from portal import services


class Command(BaseCommand):
    help = "Run the portal's periodic jobs every --interval seconds (or once with --once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between ticks")
        parser.add_argument("--once", action="store_true", help="run one tick and exit")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        self._running = True
        if not once:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
        while True:
            close_old_connections()
            report = services.scheduler_tick()
            if once or options["verbosity"] > 1:
                self.stdout.write(
                    f"resumed={report.resumed} reconcile_started={report.reconcile_started} "
                    f"discharges_started={report.discharges_started}"
                )
            if once:
                return
            deadline = time.monotonic() + interval
            while self._running and time.monotonic() < deadline:
                time.sleep(min(0.5, interval))
            if not self._running:
                return

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._running = False
