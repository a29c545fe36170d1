"""The locust side of ``load_self_service.py``: simulated soldiers on the self-service page.

Run by ``load_self_service.py`` in its own process (locust's gevent patches the whole process,
which the Django side must not share). Each simulated soldier logs in through ``/login/`` (the
real form, CSRF token and all, checked by Keystone), opens ``/``, reads its VM card's polling URL
from the page as htmx would, and waits until every soldier has logged in. Then two phases of the
same shape: for ``--baseline-seconds`` every soldier asks for the bench's bare Django view every
2 s (the baseline); then, keeping its pace, it asks for its card every 2 s the way the page's
``hx-trigger="every 2s"`` does, for ``--poll-seconds``.

Every request is written to ``--out`` (JSON) with its start time, so the driver can split the
phases and line them up with devcloud's request log. Credentials come from a file
(``--credentials``) and are never printed.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import locust
from gevent.event import Event
from locust import FastHttpUser, constant, events, task
from locust.env import Environment

POLL_SECONDS = 2.0  # the page's hx-trigger="every 2s"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CARD = re.compile(r'hx-get="(/vm/\d+/card/)"')
SEEN = re.compile(r'name="seen" value="([^"]*)"')
HTMX = {"HX-Request": "true"}

_credentials: Iterator[dict[str, str]] = iter(())
_expected = 0
_logins_done = 0
_logins_ok = 0
_all_logged_in = Event()
# Set when the window closes: no new request starts, the ones under way are waited for, so
# the slowest answers of the window are counted rather than cut off.
_window_closed = Event()
_in_flight = 0
# The baseline phase (every soldier asks for the bare view every 2 s) comes first; then the
# same soldiers, keeping their pace, ask for their card instead.
_card_phase = Event()
_records: list[list[Any]] = []
_errors: list[str] = []


def _finished_login() -> None:
    global _logins_done
    _logins_done += 1
    if _logins_done >= _expected:
        _all_logged_in.set()


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    response: Any,
    exception: BaseException | None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    status = getattr(response, "status_code", None)
    _records.append([name, start_time, response_time, exception is not None, status])
    if exception is not None and len(_errors) < 20:
        _errors.append(f"{request_type} {name}: {status} {type(exception).__name__}: {exception}")


class Soldier(FastHttpUser):
    # Pacing is done inside poll() so that the card and the bare view keep a fixed phase.
    wait_time = constant(0)
    card_url = ""
    seen = ""

    def on_start(self) -> None:
        global _logins_ok
        try:
            self._log_in()
            _logins_ok += 1
        finally:
            _finished_login()
        _all_logged_in.wait()
        # Pages are opened at different moments: spread the first polls over one interval.
        gevent.sleep(random.uniform(0, POLL_SECONDS))

    def _log_in(self) -> None:
        creds = next(_credentials)
        form = self.client.get("/login/", name="login form")
        match = CSRF.search(form.text or "")
        if match is None:
            raise locust.exception.StopUser()
        data = {
            "username": creds["username"],
            "password": creds["password"],
            "csrfmiddlewaretoken": match.group(1),
        }
        with self.client.post(
            "/login/", data=data, name="login", allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code != 302 or response.headers.get("Location") != "/":
                response.failure(f"login answered {response.status_code}, not a redirect to /")
                raise locust.exception.StopUser()
        with self.client.get("/", name="home", catch_response=True) as page:
            card = CARD.search(page.text or "")
            if page.status_code != 200 or card is None:
                page.failure(f"home answered {page.status_code} without a polling card")
                raise locust.exception.StopUser()
            self.card_url = card.group(1)
            seen = SEEN.search(page.text or "")
            self.seen = seen.group(1) if seen else ""

    def _get(self, url: str, name: str, **options: Any) -> None:
        global _in_flight
        if _window_closed.is_set():
            gevent.sleep(3600)  # idle until locust stops this user
        _in_flight += 1
        try:
            with self.client.get(url, name=name, catch_response=True, **options) as response:
                # 200 while the VM is in transition, 204 for a card poll that found nothing new;
                # a 286 would stop the page's polling.
                ok = (200, 204) if name == "card poll" else (200,)
                if response.status_code not in ok:
                    response.failure(f"{name} answered {response.status_code}")
                elif name == "card poll" and response.status_code == 200:
                    # As htmx does: the new card replaces the old, its seen goes with the next poll.
                    seen = SEEN.search(response.text or "")
                    if seen:
                        self.seen = html.unescape(seen.group(1))
        finally:
            _in_flight -= 1

    @task
    def poll(self) -> None:
        started = time.monotonic()
        if _card_phase.is_set():
            self._get(self.card_url, "card poll", params={"seen": self.seen}, headers=HTMX)
        else:
            self._get("/bench/bare", "bare view", headers=HTMX)
        gevent.sleep(max(0.0, started + POLL_SECONDS - time.monotonic()))


def main() -> None:
    global _credentials, _expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--spawn-rate", type=float, default=50)
    parser.add_argument("--poll-seconds", type=float, required=True)
    parser.add_argument("--login-timeout", type=float, default=300)
    parser.add_argument("--baseline-seconds", type=float, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--card-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    credentials = json.loads(args.credentials.read_text())
    _credentials = itertools.cycle(credentials)  # one account per simulated soldier
    _expected = len(credentials)
    environment = Environment(user_classes=[Soldier], host=args.host, events=events)
    runner = environment.create_local_runner()
    started = time.time()
    runner.start(_expected, spawn_rate=args.spawn_rate)
    logged_in = _all_logged_in.wait(timeout=args.login_timeout)
    ready_at = time.time()
    args.ready_file.write_text(str(ready_at))
    card_at = ready_at
    if logged_in:
        gevent.sleep(args.baseline_seconds)
        card_at = time.time()
        _card_phase.set()
        args.card_file.write_text(str(card_at))
        gevent.sleep(args.poll_seconds)
    end_at = time.time()
    _window_closed.set()
    drain_until = time.monotonic() + 120
    while _in_flight and time.monotonic() < drain_until:
        gevent.sleep(0.05)
    runner.quit()
    args.out.write_text(
        json.dumps(
            {
                "started_at": started,
                "ready_at": ready_at,
                "card_at": card_at,
                "end_at": end_at,
                "users": _expected,
                "logins_finished": _logins_done,
                "logins_ok": _logins_ok,
                "all_logged_in": logged_in,
                "requests": _records,
                "errors": _errors,
            }
        )
    )


if __name__ == "__main__":
    main()
