"""`/hub/admin`: the admin panel's users page.

One page of users at a time, searched, sorted and paged by plain GET arguments
(`?q=&sort=&order=&page=&per_page=`), so it all works without JavaScript; a
page costs the same few queries however many users there are
(`hub.pages.admin_users_view`). Every action on the page is a form that posts to
`hub.pages.admin_user_actions` (XSRF-checked, then back here with the outcome).
With JavaScript, `hub/static/admin-users.js` does the same through the REST API
without leaving the page, and keeps server states, failures and activity current.
"""

from __future__ import annotations

from urllib.parse import quote

from hub.pages import admin_user_actions
from hub.pages.admin_panel import AdminPage
from hub.pages.admin_users_view import (
    PageAbilities,
    load_users_page,
    parse_listing,
    per_page_choices,
    shown,
)

# how often the page's script reads its users again (faster while a server changes)
POLL_SECONDS = 5


class AdminUsersPage(AdminPage):
    admin_tab = "users"

    async def get(self) -> None:
        req = self.require_admin()
        listing = parse_listing(self.get_query_argument, self.ctx.page_max_limit)
        page = self.page_number()
        can = PageAbilities.of(req)
        view = None
        if can.list:
            view = await self.db.run(load_users_page, self.ctx, req, listing, page)
        self.admin_page(
            "admin_users.html",
            title="Users",
            listing=listing,
            view=view,
            can=can,
            admin_url=self.admin_url,
            back=self.request.uri or self.admin_url,
            per_page_choices=per_page_choices(self.ctx.page_max_limit),
            named_servers=self.ctx.allow_named_servers,
            poll_seconds=POLL_SECONDS,
            seg=lambda name: quote(name, safe="@"),
            qs=lambda value: quote(value, safe=""),
            shown=shown,
            nonce=self.script_nonce(),
        )


routes = [(r"/admin/?", AdminUsersPage), *admin_user_actions.routes]
