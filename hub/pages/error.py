"""`/hub/error/<code>?url=<path>`: the proxy's error target.

When a route's server does not answer, the proxy fetches this page for browsers
(configurable-http-proxy's convention, which `atrium proxy` follows) and shows
it in place of the server's answer. For a user's server it says the server is
not running and offers to start it; anything else gets a plain explanation.
Every piece of the URL that reaches the page is escaped.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado import web

from hub.db.models import Server, User
from hub.log import bounded
from hub.state import HubState

MAX_URL = 2000

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Atrium</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }}
main {{ max-width: 34rem; margin: 12vh auto; background: #fff; padding: 2rem 2.5rem;
        border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.4rem; margin-top: 0; }}
code {{ background: #eef0f4; padding: .1rem .3rem; border-radius: 4px; word-break: break-all; }}
.actions {{ display: flex; gap: 1rem; align-items: center; margin-top: 1.5rem; }}
button {{ font: inherit; padding: .55rem 1.2rem; border: 0; border-radius: 6px;
          background: #2f5fd0; color: #fff; cursor: pointer; }}
.status {{ color: #6b7280; font-size: .9rem; }}
</style>
</head>
<body>
<main>
<p class="status">{code} {reason}</p>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""


def _server_of(session: Session, name: str, rest: str) -> tuple[str, str]:
    """(user, server name) that `/user/<name>/<rest>` belongs to: a named server when the
    user has one called like the first segment of `rest`, else the default server. A
    user who does not exist gets the same page (the page tells no one who exists)."""
    user_id = session.execute(select(User.id).where(User.name == name)).scalar_one_or_none()
    if user_id is None:
        return name, ""
    first = unquote(rest.split("/", 1)[0]) if rest else ""
    if first:
        named = session.execute(
            select(Server.name).where(Server.user_id == user_id, Server.name == first)
        ).scalar_one_or_none()
        if named is not None:
            return name, first
    return name, ""


class ProxyErrorPage(web.RequestHandler):
    @property
    def hub(self) -> HubState:
        return self.settings["atrium"]  # type: ignore[no-any-return]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'self'",
        )

    async def get(self, code_text: str) -> None:
        code = int(code_text)
        if not 400 <= code <= 599:
            code = 400
            url = ""
        else:
            url = self.get_query_argument("url", "")[:MAX_URL]
        self.set_status(code)
        ctx = self.hub.ctx
        user_prefix = f"{ctx.base_url}user/"
        server = None
        if url.startswith(user_prefix):
            name_part, _, rest = url[len(user_prefix) :].partition("/")
            if name_part:
                server = await self.hub.db.run(_server_of, unquote(name_part), rest)
        reason = self._reason
        if server is not None and code in (502, 503, 504):
            self.finish(self._not_running(code, reason, url, *server))
            return
        shown = html.escape(bounded(url, 300)) if url else "this address"
        body = (
            f"<p>The page at <code>{shown}</code> could not be reached through the proxy.</p>"
            if url
            else "<p>Something went wrong between the proxy and the page you asked for.</p>"
        )
        body += self._actions(None)
        self.finish(
            PAGE.format(title="This page is not available", code=code, reason=reason, body=body)
        )

    def _not_running(self, code: int, reason: str, url: str, user: str, server: str) -> str:
        ctx = self.hub.ctx
        server_url = ctx.user_url(user, server)
        what = f"{html.escape(user)}'s server" + (f" {html.escape(server)!s}" if server else "")
        body = (
            f"<p>{what} at <code>{html.escape(server_url)}</code> is not running: it was "
            "stopped, or it stopped answering.</p>"
        )
        spawn = f"{ctx.base_url}hub/spawn/{quote(user, safe='@')}"
        if server:
            spawn += f"/{quote(server, safe='')}"
        body += self._actions((spawn, url or server_url))
        return PAGE.format(title="Your server is not running", code=code, reason=reason, body=body)

    def _actions(self, start: tuple[str, str] | None) -> str:
        home = html.escape(f"{self.hub.ctx.base_url}hub/")
        parts = ['<div class="actions">']
        if start is not None:
            action, next_url = start
            parts.append(
                f'<form method="get" action="{html.escape(action)}">'
                f'<input type="hidden" name="next" value="{html.escape(next_url)}">'
                '<button type="submit">Start my server</button></form>'
            )
        parts.append(f'<a href="{home}">Go to the hub</a></div>')
        return "".join(parts)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(
            PAGE.format(
                title="Something went wrong",
                code=status_code,
                reason=self._reason,
                body=f'<p><a href="{html.escape(self.hub.ctx.base_url)}hub/">Go to the hub</a></p>',
            )
        )


routes = [(r"/error/(\d{1,3})", ProxyErrorPage)]
