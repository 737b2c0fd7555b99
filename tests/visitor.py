"""A browser's HTTP side without a browser: cookies, redirects and forms, for the login
tests that go through an identity provider and back many times (the flow in Chromium
is tests/test_e2e_login_oauth.py).

Cookies are kept by name and path for the one host the tests use (127.0.0.1, as a
browser does, whatever the port); redirects are followed one by one so a test can
stop at any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


@dataclass
class Page:
    url: str
    status: int
    body: bytes
    headers: Any
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        where = self.headers.get("Location", "")
        return urljoin(self.url, where) if where else ""

    def forms(self) -> list[tuple[str, dict[str, str]]]:
        """(absolute action, {name: value} of its inputs) of each form on the page."""
        found = []
        for match in re.finditer(r"<form\b([^>]*)>(.*?)</form>", self.text, re.S | re.I):
            attrs, inner = match.groups()
            action = re.search(r'action="([^"]*)"', attrs)
            fields = {}
            for tag in re.finditer(r"<input\b([^>]*)>", inner, re.I):
                name = re.search(r'name="([^"]*)"', tag.group(1))
                value = re.search(r'value="([^"]*)"', tag.group(1))
                if name:
                    fields[unescape(name.group(1))] = unescape(value.group(1)) if value else ""
            target = unescape(action.group(1)) if action else self.url
            found.append((urljoin(self.url, target), fields))
        return found


class Visitor:
    """One person's browser, minus the rendering."""

    def __init__(self) -> None:
        self.jar: dict[tuple[str, str], str] = {}
        self.client = AsyncHTTPClient()

    def cookie(self, name: str) -> str | None:
        for (n, _path), value in self.jar.items():
            if n == name:
                return value
        return None

    def _cookie_header(self, url: str) -> str:
        path = urlsplit(url).path or "/"
        pairs = [
            f"{name}={value}"
            for (name, cpath), value in self.jar.items()
            if path == cpath or path.startswith(cpath.rstrip("/") + "/") or cpath == "/"
        ]
        return "; ".join(pairs)

    def _keep(self, url: str, headers: Any) -> list[str]:
        raw = headers.get_list("Set-Cookie")
        for line in raw:
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(line)
            for name, morsel in parsed.items():
                path = morsel["path"] or "/"
                gone = morsel["max-age"] == "0" or "1970" in (morsel["expires"] or "")
                if gone or morsel.value == "":
                    self.jar.pop((name, path), None)
                else:
                    self.jar[(name, path)] = morsel.value
        return list(raw)

    async def fetch(
        self, url: str, method: str = "GET", form: dict[str, str] | None = None
    ) -> Page:
        headers = {"Cookie": self._cookie_header(url)}
        body = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(form)
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=body,
            follow_redirects=False,
            request_timeout=60,
        )
        r = await self.client.fetch(request, raise_error=False)
        set_cookies = self._keep(url, r.headers)
        return Page(url, r.code, r.body or b"", r.headers, set_cookies)

    async def follow(self, url: str, stop: str = "", limit: int = 15) -> Page:
        """GET `url` and follow redirects; stops before a URL starting with `stop`
        (returning the redirecting page)."""
        page = await self.fetch(url)
        for _ in range(limit):
            if page.status not in (301, 302, 303, 307) or not page.location:
                return page
            if stop and page.location.startswith(stop):
                return page
            page = await self.fetch(page.location)
        raise AssertionError(f"more than {limit} redirects from {url}")

    async def submit(
        self, page: Page, fields: dict[str, str], stop: str = "", action_has: str = ""
    ) -> Page:
        """Post the page's first form (whose action contains `action_has`) with `fields`
        added, and follow the redirects."""
        forms = [f for f in page.forms() if action_has in f[0]]
        assert forms, f"no form on {page.url}: {page.text[:300]}"
        action, values = forms[0]
        values.update(fields)
        answer = await self.fetch(action, "POST", values)
        if answer.status in (302, 303) and answer.location:
            if stop and answer.location.startswith(stop):
                return answer
            return await self.follow(answer.location, stop)
        return answer


def refused(page: Page, visitor: Visitor, status: int, fragment: str) -> None:
    """A login refused: this status and message on the login page, no login cookie, no
    traceback."""
    from hub.pages.base import LOGIN_COOKIE
    from tests.test_auth_login import _error

    assert page.status == status, (page.status, page.text[:500])
    assert fragment in _error(page.body), _error(page.body)
    assert visitor.cookie(LOGIN_COOKIE) is None
    assert not any(c.startswith(LOGIN_COOKIE) for c in page.set_cookies)
    assert "Traceback" not in page.text
