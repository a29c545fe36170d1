"""gunicorn configuration; every value can be overridden from the environment."""

import multiprocessing
import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(min(4, multiprocessing.cpu_count() * 2))))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Cloud calls can be slow; the portal's own client timeouts are shorter than this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
wsgi_app = "codesquare.wsgi:application"


def child_exit(server: Any, worker: Any) -> None:
    """Let the metrics forget a dead worker's live gauges (its counters stay counted)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        # Imported here, with the directory known: the library picks its mode at import.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
