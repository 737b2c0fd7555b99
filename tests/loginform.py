"""Logging in through the login page's forms over HTTP, for the authenticator tests.

`FormClient` is the tests' cookie-keeping client (`tests.test_pages.Browser`)
posting a form authenticator's fields as the login page does: its id as
`authenticator`, with the username and password.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from tornado.httpclient import HTTPResponse

from tests.conftest import RunningHub
from tests.test_pages import Browser

_ERROR = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)


@dataclass
class Answer:
    status: int
    location: str  # where a successful login redirects
    error: str  # the message the login page shows ('' if none)
    retry_after: str
    response: HTTPResponse


def error_of(body: bytes) -> str:
    found = _ERROR.search(body.decode(errors="replace"))
    return html.unescape(found.group(1)) if found else ""


class FormClient(Browser):
    def __init__(self, hub: RunningHub) -> None:
        super().__init__(hub)
        self.hub = hub

    async def log_in(self, authenticator: str, name: str, password: str) -> Answer:
        token = await self.xsrf()
        r = await self.request(
            "POST",
            "/hub/login",
            {
                "_xsrf": token,
                "authenticator": authenticator,
                "username": name,
                "password": password,
            },
        )
        return Answer(
            r.code,
            r.headers.get("Location", ""),
            error_of(r.body or b""),
            r.headers.get("Retry-After", ""),
            r,
        )

    async def whoami(self) -> str | None:
        """The name the hub's login cookie stands for (None: not logged in)."""
        r = await self.request("GET", "/hub/api/user")
        if r.code != 200:
            return None
        import orjson

        return str(orjson.loads(r.body)["name"])
