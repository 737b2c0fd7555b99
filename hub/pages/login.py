"""`/hub/login`, `/hub/logout` and `/hub/`: native accounts (the hub's own passwords).

A successful login sets the login cookie and goes to `next` when it is a path
on this site, else where `/hub/` leads: with `c.Hub.redirect_to_server` (the
default), straight to the person's running server, or to the page that starts
it in one click; otherwise to their home page. A failed login shows the same
message whether the account is unknown or the password wrong (and takes the
same time: see `hub.ops.passwords`). Logging out clears the cookie and revokes
every token issued through that login, so the servers opened with it (their
OAuth cookies) lose access too.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import User
from hub.errors import BadRequest
from hub.names import normalize_username
from hub.ops import credentials
from hub.ops import servers as server_ops
from hub.ops.passwords import check_password
from hub.pages.base import PageHandler, log, safe_next

MAX_FIELD = 1024


def _cookie_id(session: Session, name: str) -> str | None:
    return session.scalar(select(User.cookie_id).where(User.name == name, ~User.blocked))


class LandingPage(PageHandler):
    async def landing(self, name: str) -> str:
        """Where `/hub/` leads `name` (see the module docstring)."""
        if not self.hub.redirect_to_server:
            return f"{self.ctx.base_url}hub/home"
        ref = await self.db.run(server_ops.default_server, name)
        if ref is not None and ref.started and not ref.pending:
            return self.hub.orchestrator.landing_url(ref)
        return f"{self.ctx.base_url}hub/spawn/{quote(name, safe='@')}"


class LoginHandler(LandingPage):
    def _next(self) -> str:
        return self.get_query_argument("next", "")[:2000]

    async def get(self) -> None:
        if self.requester is not None:
            default = await self.landing(self.requester.name)
            self.redirect(safe_next(self._next(), self.ctx.base_url, default))
            return
        self.page(
            "login.html",
            title="Log in",
            next=self._next(),
            username="",
            error="",
            logged_out=self.get_query_argument("logged_out", "") == "1",
        )

    async def post(self) -> None:
        raw_name = self.get_body_argument("username", "")[:MAX_FIELD]
        password = self.get_body_argument("password", "")[:MAX_FIELD]
        try:
            name = normalize_username(raw_name)
        except BadRequest:
            name = ""
        if name and password and await check_password(self.db, name, password):
            cookie_id = await self.db.run(_cookie_id, name)
            if cookie_id is not None:
                self.set_login_cookie(cookie_id)
                log.info("%s logged in", name)
                default = await self.landing(name)
                self.redirect(safe_next(self._next(), self.ctx.base_url, default))
                return
        log.info("Failed login for %r", raw_name[:60])
        self.page(
            "login.html",
            403,
            title="Log in",
            next=self._next(),
            username=raw_name[:200],
            error="The username or password is not right.",
            logged_out=False,
        )


class LogoutHandler(PageHandler):
    async def post(self) -> None:
        self.clear_login_cookie()
        req = self.requester
        if req is not None:
            revoked = 0
            if req.session_id:
                # an open JupyterLab tab loses access with the hub session
                revoked = await self.db.run(credentials.end_session, req.id, req.session_id)
                self.hub.requester_cache.invalidate()
            log.info("%s logged out (%d session tokens revoked)", req.name, revoked)
        self.redirect(f"{self.ctx.base_url}hub/login?logged_out=1")

    async def get(self) -> None:
        # a link or bookmark to /hub/logout logs out too (JupyterHub's habit)
        await self.post()


class HubRootHandler(LandingPage):
    """`/hub/`: the login page, or where a login leads (`LandingPage.landing`)."""

    async def get(self) -> None:
        if self.requester is None:
            self.redirect(f"{self.ctx.base_url}hub/login")
        else:
            self.redirect(await self.landing(self.requester.name))


routes = [(r"/?", HubRootHandler), (r"/login", LoginHandler), (r"/logout", LogoutHandler)]
