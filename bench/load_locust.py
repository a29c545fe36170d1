"""The locust side of ``load_self_service.py``: simulated soldiers on the self-service page.

Run by ``load_self_service.py`` in its own process (locust's gevent patches the whole process,
which the Django side must not share). Each simulated soldier logs in through ``/login/`` (the
real form, CSRF token and all, checked by Keystone), opens ``/``, reads its VM card's polling URL
from the page as htmx would, and waits until every soldier has logged in. Then two phases of the
same shape: for ``--baseline-seconds`` every soldier asks for the bench's bare Django view every
2 s (the baseline); then, keeping its pace, it asks for its card every 2 s the way the page's
``hx-trigger="every 2s"`` does, for ``--poll-seconds``.

With ``--scenario morning-start`` the soldiers' VMs are shut off: after the same login and
bare-view phase, each soldier waits for the driver's ``--start-file`` (written once the bulk
start is queued), opens ``/`` again as a soldier arriving in the morning would, and polls its
card every 2 s with the ``seen`` value the page gave it, as htmx does: 200 is news (its new
``seen`` is taken), 204 is "nothing new, keep polling", 286 is stable (stop). It stops there, or
at once if ``/`` already shows a card that does not poll; what it saw last is recorded.

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
TRIGGER = re.compile(r'hx-trigger="every (\d+(?:\.\d+)?)s"')
HTMX = {"HX-Request": "true"}
# The card poll's answers, as the page's htmx takes them: 200 new content (swapped in), 204
# nothing new (kept polling), 286 stable (htmx's stop-polling status).
POLL_ANSWERS = (200, 204, 286)
BUSY_RETRIES = 20  # "try again shortly" answers one morning soldier's login may meet

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
# morning-start: set once the driver has queued the bulk start; each soldier's end is recorded.
_started = Event()
_all_done = Event()
_done: list[dict[str, Any]] = []
_done_target = 0  # the soldiers who logged in
_login_busy = 0


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
    every = POLL_SECONDS  # how often the card asks (morning-start: the page's own pace)
    morning = False

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
        global _login_busy
        creds = next(_credentials)
        for _attempt in range(BUSY_RETRIES + 1):
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
                if (
                    self.morning
                    and response.status_code == 503
                    and "Retry-After" in response.headers
                ):
                    # Every login slot was taken: the page says to try again shortly, and a
                    # soldier does. Counted on its own, not as an error.
                    response.request_meta["name"] = "login (busy: try again shortly)"
                    response.success()
                    _login_busy += 1
                    wait = float(response.headers["Retry-After"])
                    gevent.sleep(wait + random.uniform(0, wait))
                    continue
                if response.status_code != 302 or response.headers.get("Location") != "/":
                    response.failure(f"login answered {response.status_code}, not a redirect to /")
                    raise locust.exception.StopUser()
            break
        else:
            raise locust.exception.StopUser()
        with self.client.get("/", name="home", catch_response=True) as page:
            card = CARD.search(page.text or "")
            seen = SEEN.search(page.text or "")
            if page.status_code != 200 or card is None or seen is None:
                page.failure(f"home answered {page.status_code} without the card it needs")
                raise locust.exception.StopUser()
            self.card_url = card.group(1) if card else ""
            every = TRIGGER.search(page.text or "")
            if every is not None:
                self.every = float(every.group(1))
            self.seen = html.unescape(seen.group(1)) if seen else ""

    def _get(
        self, url: str, name: str, ok: tuple[int, ...] = (200,), **options: Any
    ) -> tuple[int, str]:
        """(status, body) of one GET; a status outside ``ok`` is a failed request (status 0)."""
        global _in_flight
        if _window_closed.is_set():
            gevent.sleep(3600)  # idle until locust stops this user
        _in_flight += 1
        try:
            with self.client.get(url, name=name, catch_response=True, **options) as response:
                # batch-poll: 200 while the VM is in transition; a 286 would stop the polling.
                if response.status_code not in ok:
                    response.failure(f"{name} answered {response.status_code}")
                    return 0, ""
                response.success()  # locust would count htmx's 286 as a bad status
                return int(response.status_code), response.text or ""
        finally:
            _in_flight -= 1

    @task
    def poll(self) -> None:
        if self.morning and _card_phase.is_set():
            self._morning()
            return
        started = time.monotonic()
        if _card_phase.is_set():
            # 200 with a new card, 204 while nothing changed; htmx sends the new card's seen next.
            status, body = self._get(
                self.card_url, "card poll", ok=(200, 204), params={"seen": self.seen}, headers=HTMX
            )
            news = SEEN.search(body) if status == 200 else None
            if news is not None:
                self.seen = html.unescape(news.group(1))
        else:
            self._get("/bench/bare", "bare view", headers=HTMX)
        gevent.sleep(max(0.0, started + POLL_SECONDS - time.monotonic()))

    def _morning(self) -> None:
        """The page opened at login stays open: its card asks for news at the pace the last
        answer set (every 20 s at rest, every 2 s under way), until it shows the VM Running."""
        polls = 0
        status = 1
        # Pages were opened at different moments: their timers are spread over one interval.
        gevent.sleep(random.uniform(0, self.every))
        while not (_started.is_set() and seen_key(self.seen) == "running"):
            started = time.monotonic()
            status, body = self._get(
                self.card_url,
                "card poll",
                ok=POLL_ANSWERS,
                params={"seen": self.seen},
                headers=HTMX,
            )
            polls += 1
            if polls % 4 == 0:
                # The baseline under the same load: a bare view asked in the same moments as
                # the polls, while the worker runs the starts beside gunicorn.
                self._get("/bench/bare", "bare view (during the start)", headers=HTMX)
            if status in (0, 286):
                break
            if status == 200:
                # htmx swapped the new card in: its seen and its pace go with the next poll.
                news, every = SEEN.search(body), TRIGGER.search(body)
                if news is not None:
                    self.seen = html.unescape(news.group(1))
                if every is not None:
                    self.every = float(every.group(1))
            gevent.sleep(max(0.0, started + self.every - time.monotonic()))
        _done.append({"at": time.time(), "seen": self.seen, "polls": polls, "ok": status != 0})
        if len(_done) >= _done_target:
            _all_done.set()
        gevent.sleep(3600)  # done: idle until locust stops this user


def seen_key(seen: str) -> str:
    """The status key a card's seen value names (its first part)."""
    return seen.split(".", 1)[0]


def _wait_for_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.05)
    return True


def main() -> None:
    global _credentials, _expected, _done_target
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--spawn-rate", type=float, default=50)
    parser.add_argument("--scenario", choices=("batch-poll", "morning-start"), default="batch-poll")
    parser.add_argument("--poll-seconds", type=float, default=0, help="batch-poll's card phase")
    parser.add_argument("--login-timeout", type=float, default=300)
    parser.add_argument("--baseline-seconds", type=float, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--card-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start-file", type=Path, help="morning-start: the bulk start is queued")
    parser.add_argument("--start-timeout", type=float, default=240, help="morning-start")
    args = parser.parse_args()
    morning = args.scenario == "morning-start"
    Soldier.morning = morning

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
    queued_at = None
    all_done = False
    if logged_in:
        gevent.sleep(args.baseline_seconds)
        card_at = time.time()
        _card_phase.set()
        args.card_file.write_text(str(card_at))
        if not morning:
            gevent.sleep(args.poll_seconds)
        elif _wait_for_file(args.start_file, timeout=300):
            gevent.sleep(0.1)  # the driver writes the file in one go; let it finish
            queued_at = float(args.start_file.read_text())
            _done_target = _logins_ok
            _started.set()
            all_done = _all_done.wait(timeout=args.start_timeout)
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
                "scenario": args.scenario,
                "queued_at": queued_at,
                "all_done": all_done,
                "done": _done,
                "login_busy": _login_busy,
            }
        )
    )


if __name__ == "__main__":
    main()
