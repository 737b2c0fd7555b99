"""A client for configurable-http-proxy's routes API (spoken by `atrium proxy` too).

`GET /api/routes` answers the whole table as `{prefix: {target, last_activity,
...data}}`; `POST /api/routes/<prefix>` with `{target, ...data}` answers 201;
`DELETE /api/routes/<prefix>` answers 204 (404 if there was no such route);
every call needs `Authorization: token <CONFIGPROXY_AUTH_TOKEN>` or gets 403.
The proxy stores a prefix URL-decoded, with a leading slash and without a
trailing one (`/user/ann`, but `/` stays `/`), and matches requests on their
decoded path; `normalize_prefix` gives that form, and this client quotes it
once for the API URL so the proxy decodes it back to exactly that.

Failures raise `ProxyError` subclasses whose text names the proxy's API URL
and what went wrong, never the token. `hub.proxy.supervisor` builds on this.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from hub.log import bounded


class ProxyError(Exception):
    """A routes API call failed. `reason` is short and safe to show to a user."""

    reason = "the proxy failed"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ProxyUnavailable(ProxyError):
    """Nothing answered at the API URL (connection refused, timeout)."""

    reason = "the proxy is not answering"


class ProxyAuthError(ProxyError):
    """The proxy answered 403: the hub's token is missing or not the proxy's."""

    reason = "the proxy refused the hub's token"


class ProxyAPIError(ProxyError):
    """The proxy answered with an unexpected status or body."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, f"the proxy answered HTTP {status}")
        self.status = status


def normalize_prefix(prefix: str) -> str:
    """A route prefix in the form the proxy stores it: `/a/b`, or `/` for the root."""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    if len(prefix) > 1 and prefix.endswith("/"):
        prefix = prefix[:-1]
    return prefix


class ProxyClient:
    """Reads and changes a proxy's routing table over its routes API."""

    def __init__(self, api_url: str, token: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"ProxyClient({self.api_url!r})"

    def _url(self, prefix: str = "") -> str:
        url = self.api_url + "/api/routes"
        if prefix:
            # the proxy URL-decodes this path once, giving back `prefix` exactly
            url += quote(normalize_prefix(prefix), safe="/")
        return url

    async def _call(
        self, method: str, url: str, body: bytes | None = None, limit: float | None = None
    ) -> tuple[int, bytes]:
        request = HTTPRequest(
            url,
            method=method,
            headers={"Authorization": f"token {self._token}", "Accept": "application/json"},
            body=body,
            request_timeout=limit or self.timeout,
            connect_timeout=limit or self.timeout,
            follow_redirects=False,
        )
        what = f"{method} {self.api_url}/api/routes"
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except HTTPClientError as e:  # tornado's 599: timeout, connection closed
            raise ProxyUnavailable(f"{what}: the proxy did not answer ({e.message})") from None
        except OSError as e:
            raise ProxyUnavailable(
                f"{what}: the proxy did not answer ({e.strerror or e})"
            ) from None
        if response.code == 599:
            raise ProxyUnavailable(f"{what}: the proxy did not answer ({response.error})")
        if response.code == 403:
            raise ProxyAuthError(f"{what}: 403, the proxy does not accept the hub's token")
        return response.code, response.body or b""

    def _unexpected(self, method: str, status: int, body: bytes) -> ProxyAPIError:
        text = bounded(body.decode("utf-8", "replace"), 200) if body else "no body"
        return ProxyAPIError(
            f"{method} {self.api_url}/api/routes: unexpected HTTP {status} ({text})", status
        )

    async def get_routes(self, limit: float | None = None) -> dict[str, dict[str, Any]]:
        """The whole table: prefix -> {target, last_activity, ...data}.

        `limit`: seconds this call may take, instead of the client's timeout."""
        status, body = await self._call("GET", self._url(), limit=limit)
        if status != 200:
            raise self._unexpected("GET", status, body)
        try:
            routes = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self._unexpected("GET", status, body) from None
        if not isinstance(routes, dict) or not all(isinstance(v, dict) for v in routes.values()):
            raise self._unexpected("GET", status, body)
        return routes

    async def add_route(self, prefix: str, target: str, data: dict[str, Any] | None = None) -> None:
        """Route `prefix` (and everything below it) to `target`, replacing any route there."""
        payload = {**(data or {}), "target": target}
        status, body = await self._call("POST", self._url(prefix), orjson.dumps(payload))
        if status not in (200, 201):
            raise self._unexpected("POST", status, body)

    async def delete_route(self, prefix: str) -> bool:
        """Remove the route at `prefix`; False if there was none (not an error)."""
        status, body = await self._call("DELETE", self._url(prefix))
        if status == 404:
            return False
        if status not in (200, 204):
            raise self._unexpected("DELETE", status, body)
        return True
