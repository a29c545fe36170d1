"""A journey through the portal in Chromium: every page it reaches is screenshot at a laptop's and
a phone's width, saved as HTML and checked with axe-core; the results make one table."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Locator, Page, ViewportSize, expect

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDE = ViewportSize(width=1280, height=800)
NARROW = ViewportSize(width=375, height=800)
IMPACTS = ("critical", "serious", "moderate", "minor")
BLOCKING = ("critical", "serious")
# What a person waits for (a page, a button) and what they wait longer for (a batch of launches
# on a shared 2-core machine); every wait ends as soon as its condition holds.
STEP_MS = 15_000
PATIENCE_MS = 90_000
expect.set_options(timeout=STEP_MS)

AXE_RESULTS: list[dict[str, Any]] = []
NARROW_CHECKED: set[str] = set()  # kinds of page already checked at 375 px
# Seconds spent on axe-core and on screenshots, and pages seen: printed with the axe table.
COSTS: dict[str, float] = {"axe": 0.0, "screenshots": 0.0, "pages": 0}
_axe = Axe()


@dataclass
class Journey:
    """One person (or several, one browser context each) going through the portal."""

    name: str
    stack_url: str
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    page: Page | None = None
    step: str = "start"
    count: int = 0
    html_saved: list[Path] = field(default_factory=list)
    secret_pages: list[Path] = field(default_factory=list)
    cookies_seen: list[dict[str, Any]] = field(default_factory=list)

    def open(self, *, locale: str = "ko-KR") -> Page:
        """A new person at the portal: a fresh browser context (no cookies), Korean by default.

        The browser's clock is UTC on purpose: every time the portal shows must be KST anyway.
        """
        context = self.browser.new_context(
            base_url=self.stack_url, viewport=WIDE, locale=locale, timezone_id="UTC"
        )
        context.set_default_timeout(STEP_MS)
        self.contexts.append(context)
        self.page = context.new_page()
        return self.page

    def see(self, step: str, page: Page | None = None, *, shows_secret: bool = False) -> None:
        """The page as a person sees it now: screenshots at both widths, its HTML, axe-core."""
        page = page or self.page
        assert page is not None
        self.page = page
        self.count += 1
        self.step = f"{self.name}-{self.count:02d}-{step}"
        page.wait_for_load_state("load")
        self._record_cookies(page.context)
        self._check(page, "1280")
        started = time.perf_counter()
        shots = ARTIFACTS / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=shots / f"{self.step}-1280.png", full_page=True)
        page.set_viewport_size(NARROW)
        page.screenshot(path=shots / f"{self.step}-375.png", full_page=True)
        COSTS["screenshots"] += time.perf_counter() - started
        # A phone's width changes what scrolls (and so what must be reachable by keyboard):
        # checked on the first visit of every kind of page (an admin action answers at its list's
        # URL, so the title tells them apart), to keep the run short.
        kind = re.sub(r"\d+", "N", f"{urlsplit(page.url).path} {page.title()}")
        if kind not in NARROW_CHECKED:
            NARROW_CHECKED.add(kind)
            self._check(page, "375")
        page.set_viewport_size(WIDE)
        COSTS["pages"] += 1
        html = ARTIFACTS / "html" / f"{self.step}.html"
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page.content())
        (self.secret_pages if shows_secret else self.html_saved).append(html)

    def _check(self, page: Page, width: str) -> None:
        """axe-core on the page as it is now, every rule; the findings go into AXE_RESULTS."""
        started = time.perf_counter()
        violations = _axe.run(page).response["violations"]
        COSTS["axe"] += time.perf_counter() - started
        counts = dict.fromkeys(IMPACTS, 0)
        rules: dict[str, list[str]] = {impact: [] for impact in IMPACTS}
        for violation in violations:
            impact = violation.get("impact") or "minor"
            counts[impact] += len(violation["nodes"])
            rules[impact].append(violation["id"])
        AXE_RESULTS.append(
            {
                "step": self.step,
                "width": width,
                "path": urlsplit(page.url).path,
                "counts": counts,
                "rules": rules,
                "details": [
                    f"{v['id']} ({v['impact']}, {width} px): {n['target']} "
                    f"{n.get('failureSummary', '')}"
                    for v in violations
                    if v.get("impact") in BLOCKING
                    for n in v["nodes"]
                ],
            }
        )

    def blocking_violations(self) -> list[str]:
        """Serious and critical axe findings on the pages of this journey."""
        mine = [r for r in AXE_RESULTS if r["step"].startswith(f"{self.name}-")]
        return [f"{r['step']} {r['path']}: {d}" for r in mine for d in r["details"]]

    def save_failure(self) -> list[str]:
        """The screenshot and HTML of the failing step, named after it."""
        if self.page is None or self.page.is_closed():
            return []
        where = ARTIFACTS / "failures"
        where.mkdir(parents=True, exist_ok=True)
        stem = f"{self.step}-FAILED"
        saved = []
        try:
            self.page.screenshot(path=where / f"{stem}.png", full_page=True)
            saved.append(str(where / f"{stem}.png"))
            (where / f"{stem}.html").write_text(self.page.content())
            saved.append(str(where / f"{stem}.html"))
        except Exception as exc:  # a report hook must not hide the real failure
            saved.append(f"(could not save: {exc})")
        return saved

    def record_cookies(self) -> None:
        """Keep the cookies every open context holds now (a logout replaces the session's)."""
        for context in self.contexts:
            self._record_cookies(context)

    def _record_cookies(self, context: BrowserContext) -> None:
        for cookie in context.cookies():
            if cookie not in self.cookies_seen:
                self.cookies_seen.append(dict(cookie))

    def close(self) -> None:
        for context in self.contexts:
            self._record_cookies(context)
            context.close()
        self.contexts.clear()


def tab_to(page: Page, target: Locator, *, limit: int = 80) -> None:
    """Press Tab (only Tab) until ``target`` has the keyboard focus, as a keyboard user would."""
    handle = target.element_handle()
    assert handle is not None
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("element => document.activeElement === element", handle):
            return
    raise AssertionError(f"{target} is not reachable with Tab within {limit} presses")


def assert_times_are_kst(page: Page) -> int:
    """Every ``<time>`` on the page reads as its UTC instant in KST (UTC+9); returns how many."""
    times = page.locator("time").all()
    for element in times:
        instant = element.get_attribute("datetime")
        assert instant, element
        utc = datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UTC)
        shown = element.inner_text().strip()
        expected = (utc + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M")
        assert re.fullmatch(rf"{re.escape(expected)}(:\d\d)? KST", shown), (shown, instant)
    return len(times)


def axe_table() -> str:
    """The axe-core results, one row per page visited, as Markdown."""
    lines = [
        "| step | page | width | critical | serious | moderate | minor | rules (moderate, minor) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in AXE_RESULTS:
        c = r["counts"]
        minor_rules = ", ".join(sorted({*r["rules"]["moderate"], *r["rules"]["minor"]})) or "—"
        blocking = ", ".join(sorted({*r["rules"]["critical"], *r["rules"]["serious"]}))
        rules = f"**{blocking}**; {minor_rules}" if blocking else minor_rules
        lines.append(
            f"| {r['step']} | `{r['path']}` | {r['width']} | {c['critical']} | {c['serious']} | "
            f"{c['moderate']} | {c['minor']} | {rules} |"
        )
    return "\n".join(lines) + "\n"
