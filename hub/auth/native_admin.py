"""The admin panel's Sign-ups page, `/hub/admin/signups`, served with native accounts.

It lists the sign-up requests waiting for approval (oldest first, a page at a
time) with a button to approve and one to reject each, and has a form to reset
a user's two-step login (a lost phone). Buttons post back here (XSRF-checked)
and redirect with the outcome in the admin panel's flash (`hub.pages.admin_panel`).
The rules are those of the API (`hub.api.signups`): the same units of work, run
with the admin's own scopes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from hub.auth import signups, totp
from hub.errors import AtriumError, BadRequest
from hub.names import validate_username
from hub.pages.admin_panel import AdminPage, clamp_page, relative_time
from hub.timeutil import parse_timestamp, utcnow

if TYPE_CHECKING:
    from hub.auth.native import NativeAuthenticator

PER_PAGE = 50
ACTIONS = ("approve", "reject", "reset_totp")


class SignupsAdminPage(AdminPage):
    admin_tab = "signups"
    auth: NativeAuthenticator

    def initialize(self, auth: NativeAuthenticator) -> None:
        self.auth = auth

    @property
    def list_url(self) -> str:
        return f"{self.admin_url}/signups"

    async def get(self) -> None:
        req = self.require_admin()
        page = self.page_number()
        items, total = await self.db.run(
            signups.list_requests, req, (page - 1) * PER_PAGE, PER_PAGE
        )
        pager = clamp_page(page, PER_PAGE, total)
        if pager.page != page:
            items, total = await self.db.run(signups.list_requests, req, pager.offset, PER_PAGE)
        now = utcnow()
        rows = [
            {**item, "relative": relative_time(parse_timestamp(item["created"]), now)}
            for item in items
        ]
        self.admin_page(
            "admin_signups.html",
            title="Sign-ups",
            requests=rows,
            pager=pager,
            enabled=self.auth.enable_signup,
            approval=self.auth.signup_requires_approval,
            list_url=self.list_url,
        )

    async def post(self) -> None:
        req = self.require_admin()
        action = self.get_body_argument("action", "")
        back = self.list_url
        page = self.get_body_argument("page", "")
        if page.isascii() and page.isdigit() and int(page) > 1:
            back += "?" + urlencode({"page": page})
        try:
            raw = self.text_argument("name", 300)
            if action not in ACTIONS:
                raise BadRequest("Unknown action; use the buttons on this page.")
            if not raw:
                raise BadRequest("Give the username.")
            name = validate_username(raw)
            await self._do(action, req, name)
        except AtriumError as e:
            self.done(back, "error", e.message)
            return
        self.done(back, "ok", _DONE[action].format(name=name))

    async def _do(self, action: str, req: Any, name: str) -> None:
        if action == "approve":
            await self.db.run(signups.approve, req, name, self.auth.ident)
        elif action == "reject":
            await self.db.run(signups.reject, req, name)
        else:
            await self.db.run(totp.reset_by_admin, req, name)


_DONE = {
    "approve": "Approved {name}: the account is ready and they can log in.",
    "reject": "Rejected the sign-up of {name}.",
    "reset_totp": "Two-step login is off for {name}: their password alone logs them in "
    "until they turn it on again.",
}
