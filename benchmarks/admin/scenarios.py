"""The steps of one run on one hub, in a fresh browser context each time:

1. cold view: navigate to the admin users page with nothing cached (a new
   context holding only the login cookies) until the table is usable; the
   screenshot of the first run is taken at that moment;
2. idle: the 10 s after that, untouched (live status polling);
3. warm view: the same navigation again, the cache now filled by the first;
4. search: type a name filter (the middle user's name without its last
   digit, `user0500` with 10,000 users: 10 matches) until only the matching
   rows show;
5. next page: from a fresh load, go to page 2 until its rows show;
6. sort: from a fresh load sorted by name ascending, sort by name descending
   until the first row is the last user by name.

Also the warm-up view before the runs (`warm_up`): it learns the page's size
and checks that the rows are the expected users, so a login page or an error
page cannot pass for the table. Neighbours: `browse.py`, `pages.py`, `bench.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import browse
from browse import Goal, Session
from hubs import BenchError
from hubsetup import ADMIN, BrowserHub
from pages import PAGES, AdminPage


@dataclass
class Target:
    """A hub as the browser measures it: where, which page, whose cookies, what to expect."""

    hub: BrowserHub
    spec: AdminPage
    state: Any  # Playwright storage state after logging in
    names: list[str]  # every user, in name order
    page_size: int = 0  # rows on the first page, learned by warm_up
    failed_logins: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.hub.name

    @property
    def search(self) -> str:
        """A name filter that matches ten users: the middle one's name but its last digit."""
        users = [n for n in self.names if n != ADMIN]
        return users[len(users) // 2][:-1]

    def search_count(self) -> int:
        return sum(1 for n in self.names if self.search in n)


async def prepare(browser: Any, hub: BrowserHub, names: list[str]) -> Target:
    spec = PAGES[hub.name]
    state, failed_logins = await browse.login(browser, hub.base, spec, ADMIN, hub.hub.password)
    for failure in failed_logins:
        print(f"  ! {hub.label}: a login failed and was tried again: {failure}", flush=True)
    return Target(hub, spec, state, sorted([ADMIN, *names]), failed_logins=failed_logins)


def _full_page(t: Target) -> Goal:
    return {"count": t.page_size, "next": True}


async def _open(s: Session) -> None:
    """Navigate to the admin page; a page that answers an error fails the run at once."""
    response = await s.page.goto(s.admin_url, wait_until="commit")
    if response is None or response.status >= 400:
        status = "no response" if response is None else response.status
        raise BenchError(f"{s.spec.hub}: {s.admin_url} answered {status}")


async def _load(s: Session, goal: Goal) -> dict[str, Any]:
    return await s.step(
        goal, lambda: s.page.goto(s.admin_url, wait_until="commit"), navigation=True
    )


async def warm_up(browser: Any, t: Target, screenshot: Path) -> dict[str, Any]:
    """Load the page once (untimed): its rows per page, and the rows are the first users."""
    goal = {"id": "warm-up", "from": "navigation", "next": True}
    s = await browse.open_session(browser, t.hub.base, t.spec, t.state, goal)
    try:
        await _open(s)
        seen = await s.finish(goal)
        await s.screenshot(screenshot)
        shown = await s.page.eval_on_selector_all(
            t.spec.selectors.rows,
            "(rows, sel) => rows.map((r) => (r.querySelector(sel) || {}).textContent || '')",
            t.spec.selectors.name,
        )
        shown = [n.strip() for n in shown]
        if not shown or shown != t.names[: len(shown)]:
            raise BenchError(
                f"{t.name}: the admin page shows {shown[:5]}..., not the first users "
                f"{t.names[:5]}... (screenshot {screenshot})"
            )
        t.page_size = len(shown)
        return {
            "rows": len(shown),
            "ms": seen["ms"],
            "console_errors": s.console_errors,
            "failed_logins": t.failed_logins,
        }
    finally:
        await s.close()


async def run_once(
    browser: Any, t: Target, idle_seconds: float, screenshot: Path | None
) -> dict[str, Any]:
    """One run's steps on one hub, in a new context; each step's figures."""
    full = _full_page(t)
    cold_goal = {"id": "cold", "from": "navigation", **full}
    s = await browse.open_session(browser, t.hub.base, t.spec, t.state, cold_goal)
    out: dict[str, Any] = {}
    try:
        await _open(s)
        cold = await s.finish(cold_goal)
        if screenshot is not None:
            await s.screenshot(screenshot)
        out["cold"] = browse.describe(cold)
        out["idle"] = await s.idle(cold["usable_at"], idle_seconds)

        warm = await _load(s, {"id": "warm", "from": "navigation", **full})
        out["warm"] = browse.describe(warm)

        goal = {"id": "search", "filter": t.search, "count": t.search_count()}
        search = await s.step(goal, lambda: t.spec.search(s.page, t.search), navigation=False)
        out["search"] = browse.describe(search)

        await _load(s, {"id": "reset-next", "from": "navigation", **full})
        goal = {"id": "next", "first": t.names[t.page_size], **full}
        nxt = await s.step(goal, lambda: t.spec.next_page(s.page), navigation=False)
        out["next_page"] = browse.describe(nxt)

        await _load(s, {"id": "reset-sort", "from": "navigation", **full})
        await t.spec.sort_ascending(s.page)
        await s.net.quiet()
        goal = {"id": "sort", "first": t.names[-1], **full}
        srt = await s.step(goal, lambda: t.spec.sort_descending(s.page), navigation=False)
        out["sort"] = browse.describe(srt)
    finally:
        out["console_errors"] = s.console_errors
        await s.close()
    return out
