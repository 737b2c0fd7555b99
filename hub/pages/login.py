"""`/hub/logout` and `/hub/`, and where a login leads (`LandingPage`); the login page
itself is `hub.auth.login`.

A successful login goes to `next` when it is a path on this site, else where
`/hub/` leads: with `c.Hub.redirect_to_server` (the default), straight to the
person's running server, or to the page that starts it in one click; otherwise
to their home page. Logging out clears the cookie and revokes every token
issued through that login, so the servers opened with it (their OAuth cookies)
lose access too.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import User
from hub.ops import credentials
from hub.ops import servers as server_ops
from hub.pages.base import PageHandler, log

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


routes = [(r"/?", HubRootHandler), (r"/logout", LogoutHandler)]
