"""What a person does on each hub's admin users page, and where the parts are.

Each hub's page as it ships, with its defaults:

- JupyterHub 6: `/hub/admin` is a React app (`admin-react.js`) that fetches
  `/hub/api/users?include_stopped_servers&offset&limit&name_filter&sort&state`
  after the page loads and renders 50 rows (`c.JupyterHub.api_page_limit`).
  Search filters as you type (a 300 ms debounce in its code), the sort icon by
  "User" cycles name ascending / descending, "Next" fetches the next page.
- Atrium: `/hub/admin` is rendered by the hub with the rows in the HTML, and
  `admin-users.js` takes over the row actions and polls the listed users' state.
  Search filters as you type too (a 300 ms debounce; it fetches the same GET the
  search form makes and swaps the list in); sort and pages are links (a new
  document each).

The selectors feed `watcher.js`'s criterion of a usable table. The actions are
what a person does; each interaction is timed from its last input event. A
search is typed and left to work (no Enter), on both hubs, so both wait their
300 ms debounce.
Neighbours: `browse.py` (drives the browser), `scenarios.py` (the sequence).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Page = Any  # playwright.async_api.Page (imported lazily: Playwright is optional elsewhere)
Action = Callable[[Page], Awaitable[None]]


@dataclass(frozen=True)
class Selectors:
    search: str  # the name filter's input
    rows: str  # one element per user row of the table
    name: str  # inside a row: the element whose text is the user's name
    actions: str  # inside a row: its action buttons
    next: str  # the next-page control

    def js(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("search", "rows", "name", "actions", "next")}


@dataclass(frozen=True)
class AdminPage:
    """One hub's login form and admin users page."""

    hub: str
    path: str
    user_field: str
    password_field: str
    submit_button: str
    selectors: Selectors
    search: Callable[[Page, str], Awaitable[None]]
    next_page: Action
    # brings the table to name order, ascending (untimed); then `sort_descending`
    # (timed) turns it to descending
    sort_ascending: Action
    sort_descending: Action


# --- JupyterHub 6 -------------------------------------------------------------------


async def _jh_search(page: Page, text: str) -> None:
    await page.fill("input[name=user_search]", text)


async def _jh_next(page: Page) -> None:
    await page.click("[data-testid=paginate-next]")


async def _jh_sort_ascending(page: Page) -> None:
    # from the default order (by id) one click sorts by name; the URL says so
    await page.click("[data-testid=user-sort]")
    await page.wait_for_url("**sort=name*")


async def _jh_sort_descending(page: Page) -> None:
    await page.click("[data-testid=user-sort]")


JUPYTERHUB = AdminPage(
    hub="jupyterhub",
    path="/hub/admin",
    user_field="#username_input",
    password_field="#password_input",
    submit_button="#login_submit",
    selectors=Selectors(
        search="input[name=user_search]",
        rows="tr.user-row",
        name="[data-testid^=user-name-div-]",
        actions="button",
        next="[data-testid=paginate-next]",
    ),
    search=_jh_search,
    next_page=_jh_next,
    sort_ascending=_jh_sort_ascending,
    sort_descending=_jh_sort_descending,
)


# --- Atrium ---------------------------------------------------------------------------

_ATRIUM_NAME_HEADER = "#users thead th:has(a):nth-child(2)"


async def _atrium_search(page: Page, text: str) -> None:
    await page.fill("#q", text)


async def _atrium_next(page: Page) -> None:
    await page.click("a[rel=next]")


async def _atrium_sort_ascending(page: Page) -> None:
    header = page.locator(_ATRIUM_NAME_HEADER)
    if await header.get_attribute("aria-sort") != "ascending":
        await header.locator("a").click()
        await page.wait_for_selector(f"{_ATRIUM_NAME_HEADER}[aria-sort=ascending]")


async def _atrium_sort_descending(page: Page) -> None:
    await page.locator(_ATRIUM_NAME_HEADER).locator("a").click()


ATRIUM = AdminPage(
    hub="atrium",
    path="/hub/admin",
    user_field="#username",
    password_field="#password",
    submit_button="main form button[type=submit]",
    selectors=Selectors(
        search="#q",
        rows="#users tbody tr[data-user]",
        name=".name",
        actions="button",
        next="a[rel=next]",
    ),
    search=_atrium_search,
    next_page=_atrium_next,
    sort_ascending=_atrium_sort_ascending,
    sort_descending=_atrium_sort_descending,
)

PAGES = {"atrium": ATRIUM, "jupyterhub": JUPYTERHUB}
