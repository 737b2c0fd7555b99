"""The browser side: Debian's Chromium under Playwright, a logged-in context per
run, every request the page makes (from the DevTools protocol), and the moment
`watcher.js` sees a goal reached.

A timed step is: arm a goal, do something (navigate, type, click), wait for the
watcher's report, wait for the network to be quiet, then work out

- `ms`: from the start (navigation start for a page load, the last input event
  for an interaction) until the table was usable: the first frame in which the
  watcher's criterion held, moved later while a fetch/XHR the page had started
  before then was still running (in-page Resource Timing, the same clock);
- the requests that started in that span (count, bytes received over the
  network including headers, how many came from the cache).

Neighbours: `watcher.js` (the criterion), `pages.py` (selectors and actions),
`scenarios.py` (the steps of a run).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hubs import BenchError
from pages import AdminPage, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
# the flags tests/browser.py launches Chromium with
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1100, "height": 750}
WATCHER = Path(__file__).with_name("watcher.js")
GOAL_TIMEOUT = 60.0  # s a goal may take before the run fails (not a measurement bound)
QUIET = 0.3  # s without a request in flight that counts as a quiet network
QUIET_LIMIT = 15.0  # s to wait for quiet at most (live polling never stops)

Goal = dict[str, Any]


@dataclass
class Request:
    """One request the page made, as the DevTools protocol reported it."""

    url: str
    method: str
    type: str
    start: float  # epoch ms
    end: float | None = None  # epoch ms, when its last byte came (or it failed)
    bytes: int = 0  # received over the network, headers included
    status: int = 0
    from_cache: bool = False
    failed: str = ""

    def summary(self, origin: float) -> dict[str, Any]:
        parts = urlsplit(self.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return {
            "path": path[:160],
            "type": self.type,
            "status": self.status,
            "bytes": self.bytes,
            "from_cache": self.from_cache,
            "start_ms": round(self.start - origin, 1),
            "end_ms": None if self.end is None else round(self.end - origin, 1),
            **({"failed": self.failed} if self.failed else {}),
        }


@dataclass
class NetLog:
    """Every request of one page, kept from the DevTools protocol's Network events."""

    requests: list[Request] = field(default_factory=list)
    _open: dict[str, tuple[Request, float]] = field(default_factory=dict)  # id -> (req, offset)
    last_change: float = field(default_factory=time.monotonic)

    async def attach(self, context: Any, page: Page) -> None:
        cdp = await context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.requestServedFromCache", self._from_cache)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)
        await cdp.send("Network.enable")

    def _sent(self, p: dict[str, Any]) -> None:
        self.last_change = time.monotonic()
        url = p["request"]["url"]
        if url.startswith("data:"):
            return
        rid = p["requestId"]
        # wallTime is epoch seconds, the other events' timestamps are monotonic seconds
        offset = p["wallTime"] - p["timestamp"]
        if "redirectResponse" in p and rid in self._open:
            prev, prev_offset = self._open.pop(rid)
            prev.end = (p["timestamp"] + prev_offset) * 1000
            prev.status = int(p["redirectResponse"].get("status", 0))
            prev.bytes = int(p["redirectResponse"].get("encodedDataLength", 0))
        req = Request(url, p["request"]["method"], p.get("type", "Other"), p["wallTime"] * 1000)
        self.requests.append(req)
        self._open[rid] = (req, offset)

    def _response(self, p: dict[str, Any]) -> None:
        if p["requestId"] in self._open:
            req = self._open[p["requestId"]][0]
            resp = p["response"]
            req.status = int(resp.get("status", 0))
            req.from_cache = req.from_cache or bool(
                resp.get("fromDiskCache") or resp.get("fromPrefetchCache")
            )

    def _from_cache(self, p: dict[str, Any]) -> None:
        if p["requestId"] in self._open:
            self._open[p["requestId"]][0].from_cache = True

    def _finished(self, p: dict[str, Any]) -> None:
        self.last_change = time.monotonic()
        if p["requestId"] in self._open:
            req, offset = self._open.pop(p["requestId"])
            req.end = (p["timestamp"] + offset) * 1000
            req.bytes = int(p.get("encodedDataLength", 0))

    def _failed(self, p: dict[str, Any]) -> None:
        self.last_change = time.monotonic()
        if p["requestId"] in self._open:
            req, offset = self._open.pop(p["requestId"])
            req.end = (p["timestamp"] + offset) * 1000
            req.failed = str(p.get("errorText") or "failed")

    def in_flight(self) -> int:
        return len(self._open)

    async def quiet(self) -> bool:
        """Wait until no request has been in flight for QUIET s; False after QUIET_LIMIT."""
        deadline = time.monotonic() + QUIET_LIMIT
        while time.monotonic() < deadline:
            if not self._open and time.monotonic() - self.last_change >= QUIET:
                return True
            await asyncio.sleep(0.05)
        return False

    def started(self, after: float, until: float) -> list[Request]:
        return [r for r in self.requests if after <= r.start <= until]


def _path(url: str) -> str:
    """The part of `url` after its host: path, query and fragment."""
    parts = urlsplit(url)
    return parts._replace(scheme="", netloc="").geturl()


def tally(reqs: list[Request], origin: float) -> dict[str, Any]:
    """Count, bytes and kinds of `reqs`, and each one's summary (times from `origin`)."""
    by_type: dict[str, int] = {}
    for r in reqs:
        by_type[r.type] = by_type.get(r.type, 0) + 1
    return {
        "requests": len(reqs),
        "network_requests": sum(1 for r in reqs if not r.from_cache),
        "from_cache": sum(1 for r in reqs if r.from_cache),
        "bytes": sum(r.bytes for r in reqs),
        "by_type": by_type,
        "list": [r.summary(origin) for r in reqs],
    }


@dataclass
class Report:
    """What watcher.js sent when a goal held."""

    id: str
    at: float  # epoch ms
    rel: float  # ms since the reporting document's time origin (its navigation start)
    inputAt: float | None
    url: str
    rows: int
    first: str | None


# the fetch/XHR requests of the current document, from Resource Timing: (start, end) in ms
_FETCHES_JS = """() => performance.getEntriesByType("resource")
  .filter((e) => e.initiatorType === "fetch" || e.initiatorType === "xmlhttprequest")
  .map((e) => [e.startTime, e.responseEnd])"""


# the reporting document's own milestones (Navigation and Paint Timing), ms from its start
_DOCUMENT_JS = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  return n ? {
    response_end: n.responseEnd, dom_interactive: n.domInteractive,
    dom_content_loaded: n.domContentLoadedEventEnd, load_event: n.loadEventEnd,
    first_contentful_paint: paint ? paint.startTime : null,
    html_bytes: document.documentElement.outerHTML.length,
    elements: document.getElementsByTagName("*").length,
  } : null;
}"""


def extend_over_fetches(rel: float, fetches: list[list[float]]) -> float:
    """The first time at or after `rel` when no fetch started by then is still running."""
    t = rel
    moved = True
    while moved:
        moved = False
        for start, end in fetches:
            if start <= t < end:
                t, moved = end, True
    return t


@dataclass
class Session:
    """One fresh browser context (cookies of a logged-in admin, empty cache) and its page."""

    spec: AdminPage
    base: str
    context: Any
    page: Page
    net: NetLog
    reports: asyncio.Queue[Report]
    console_errors: list[str]

    @property
    def admin_url(self) -> str:
        return self.base + self.spec.path

    async def arm(self, goal: Goal) -> None:
        """A goal the current document may reach in place (or the next one, if the
        action navigates)."""
        await self.page.evaluate("g => window.__benchArm(g)", goal)

    async def arm_next_document(self, goal: Goal) -> None:
        """A goal for the document the next navigation loads only."""
        await self.page.evaluate(
            "g => { sessionStorage.setItem('__benchGoal', JSON.stringify(g));"
            " sessionStorage.removeItem('__benchInputAt'); }",
            goal,
        )

    async def wait_report(self, goal_id: str) -> Report:
        deadline = time.monotonic() + GOAL_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(
                    f"{self.spec.hub}: goal {goal_id!r} not reached in {GOAL_TIMEOUT:.0f}s "
                    f"(page {self.page.url}); console errors: {self.console_errors[-5:]}"
                )
            try:
                report = await asyncio.wait_for(self.reports.get(), left)
            except TimeoutError:
                continue
            if report.id == goal_id:
                return report

    async def step(
        self, goal: Goal, action: Callable[[], Awaitable[None]], *, navigation: bool
    ) -> dict[str, Any]:
        """Arm `goal`, run `action`, and measure until the table is usable again."""
        if navigation:
            await self.arm_next_document(goal)
        else:
            await self.arm(goal)
        await action()
        return await self.finish(goal)

    async def finish(self, goal: Goal) -> dict[str, Any]:
        report = await self.wait_report(goal["id"])
        quiet = await self.net.quiet()
        fetches = await self.page.evaluate(_FETCHES_JS)
        usable_rel = extend_over_fetches(report.rel, fetches)
        origin = report.at - report.rel  # the reporting document's navigation start
        # a page load counts from its navigation start, an interaction from its last input
        start = origin if goal.get("from") == "navigation" else report.inputAt
        if start is None:
            raise BenchError(f"{self.spec.hub}: goal {goal['id']!r} saw no input event")
        usable_at = origin + usable_rel
        document = None
        if origin >= start - 1:  # a new document: its timings are this step's
            timings = await self.page.evaluate(_DOCUMENT_JS)
            document = {k: v if v is None else round(v, 1) for k, v in (timings or {}).items()}
        return {
            "ms": round(usable_at - start, 1),
            "criterion_ms": round(report.at - start, 1),
            "usable_at": usable_at,
            "start": start,
            "rows": report.rows,
            "first_row": report.first,
            "url": _path(report.url),
            "network_quiet": quiet,
            "document": document,
            # requests that started from the start until the table was usable
            **tally(self.net.started(start - 1, usable_at), start),
        }

    async def idle(self, since: float, seconds: float) -> dict[str, Any]:
        """The requests that start in the `seconds` after `since` (epoch ms) while
        nobody touches the page (live status polling)."""
        wait = since / 1000 + seconds - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        await self.net.quiet()
        out = tally(self.net.started(since + 0.001, since + seconds * 1000), since)
        return {"seconds": seconds, **out}

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path), type="png")

    async def close(self) -> None:
        await self.context.close()


async def launch(playwright: Any) -> Any:
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )


LOGIN_ATTEMPTS = 3


async def login(
    browser: Any, base: str, spec: AdminPage, user: str, password: str
) -> tuple[Any, list[str]]:
    """Log in through the hub's login page, in a context of its own: the cookies
    (Playwright storage state), and what each failed attempt answered (at most
    LOGIN_ATTEMPTS; logging in is not measured)."""
    failures: list[str] = []
    for _ in range(LOGIN_ATTEMPTS):
        context = await browser.new_context(viewport=VIEWPORT)
        try:
            page = await context.new_page()
            await page.goto(f"{base}/hub/login")
            await page.fill(spec.user_field, user)
            await page.fill(spec.password_field, password)
            async with page.expect_response(lambda r: r.request.method == "POST") as posted:
                await page.click(spec.submit_button)
            answer = await posted.value
            try:
                await page.wait_for_url(lambda url: "/hub/login" not in url, timeout=15_000)
            except PlaywrightTimeout:
                text = " ".join((await page.inner_text("main"))[:200].split())
                failures.append(f"POST /hub/login answered {answer.status}: {text}")
                continue
            state = await context.storage_state()
        finally:
            await context.close()
        if not state.get("cookies"):
            raise BenchError(f"{spec.hub}: no cookie after logging in")
        return state, failures
    raise BenchError(f"{spec.hub}: logging in as {user} failed: {failures}")


async def open_session(
    browser: Any, base: str, spec: AdminPage, state: Any, initial_goal: Goal | None
) -> Session:
    """A new context with the login cookies only (nothing cached), the watcher in every
    document, and the DevTools protocol's network events recorded."""
    context = await browser.new_context(viewport=VIEWPORT, storage_state=state)
    reports: asyncio.Queue[Report] = asyncio.Queue()
    errors: list[str] = []

    def on_report(_source: Any, payload: dict[str, Any]) -> None:
        reports.put_nowait(Report(**payload))

    await context.expose_binding("__benchReport", on_report)
    config = {"selectors": spec.selectors.js(), "initialGoal": initial_goal}
    script = WATCHER.read_text().replace("__CONFIG__", json.dumps(config))
    await context.add_init_script(script=script)
    page = await context.new_page()
    page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)[:300]))
    net = NetLog()
    await net.attach(context, page)
    return Session(spec, base, context, page, net, reports, errors)


def describe(step: dict[str, Any]) -> dict[str, Any]:
    """A step's result for the JSON file (epoch times left out)."""
    return {k: v for k, v in step.items() if k not in ("usable_at", "start")}
