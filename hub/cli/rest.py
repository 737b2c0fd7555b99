"""The REST backend: the hub's API over HTTP, standard library only.

Any URL of the hub works: the hub URL (`http://host:8000/hub/`), the API URL
(`.../hub/api`, as in `JUPYTERHUB_API_URL`) or the base URL (`http://host:8000/`).
Redirects are never followed, so the token is only ever sent to the URL given.
Errors become one-line `CLIError`s carrying the hub's own message.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from hub import __version__
from hub.cli.backend import PAGE_SIZE, Model, UserListQuery, token_body
from hub.cli.errors import CLIError, UsageError

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
BAD_CREDENTIALS = "Missing or invalid credentials"


def api_url(url: str) -> str:
    """The API root (`.../hub/api`, no trailing slash) for any URL of the hub."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise UsageError("the hub URL is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageError(
            "the hub URL must start with http:// or https://, e.g. http://127.0.0.1:8000/hub/"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/hub"):
        path += "/api"
    elif not path.endswith("/hub/api"):
        path += "/hub/api"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _displayed(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_token(token: str) -> str:
    token = token.strip()
    if not token:
        raise UsageError("the API token is empty")
    if not (token.isascii() and token.isprintable()) or " " in token or len(token) > 4096:
        raise UsageError("the API token contains characters that cannot be sent in a header")
    return token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _user_path(name: str) -> str:
    return "/users/" + quote(name, safe="")


class RestBackend:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.base = api_url(url)
        self.shown = _displayed(self.base)
        self.token = _check_token(token)
        self.timeout = timeout
        # redirects are refused: the token must not follow them to another place
        self._opener = urllib.request.build_opener(_NoRedirect())

    # --- users -------------------------------------------------------------

    def list_users(self, query: UserListQuery) -> list[Model]:
        params: dict[str, str] = {"sort": query.sort}
        if query.state:
            params["state"] = query.state
        if query.name_filter:
            params["name_filter"] = query.name_filter
        items: list[Model] = []
        offset = query.offset
        while True:
            want = PAGE_SIZE if query.limit is None else min(PAGE_SIZE, query.limit - len(items))
            if want <= 0:
                break
            page = self._call(
                "GET",
                "/users",
                query={**params, "offset": str(offset), "limit": str(want)},
                paginate=True,
            )
            if isinstance(page, list):  # a hub without pagination answers the whole list
                return page if query.limit is None else page[: query.limit]
            got = _list_of_models(page.get("items") if isinstance(page, dict) else None)
            items.extend(got[:want])
            following = (page.get("_pagination") or {}).get("next")
            if not got or not isinstance(following, dict):
                break
            next_offset = following.get("offset")
            if not isinstance(next_offset, int) or next_offset <= offset:
                break
            offset = next_offset
        return items

    def get_user(self, name: str) -> Model:
        return _model(self._call("GET", _user_path(name), query={"include_stopped_servers": "1"}))

    def create_users(self, names: Sequence[str], admin: bool) -> list[Model]:
        body = {"usernames": list(names), "admin": admin}
        return _list_of_models(self._call("POST", "/users", body=body))

    def update_user(self, name: str, patch: Model) -> Model:
        return _model(self._call("PATCH", _user_path(name), body=patch))

    def delete_user(self, name: str) -> None:
        self._call("DELETE", _user_path(name))

    # --- tokens ------------------------------------------------------------

    def create_token(
        self, user: str, note: str | None, expires_in: int | None, scopes: Sequence[str] | None
    ) -> Model:
        body = token_body(note, expires_in, scopes)
        return _model(self._call("POST", _user_path(user) + "/tokens", body=body))

    def list_tokens(self, user: str) -> list[Model]:
        data = self._call("GET", _user_path(user) + "/tokens")
        if not isinstance(data, dict):
            raise self._not_an_api()
        return _list_of_models(data.get("api_tokens", []))

    def revoke_token(self, user: str, token_id: str) -> None:
        self._call("DELETE", f"{_user_path(user)}/tokens/{quote(token_id, safe='')}")

    def close(self) -> None:
        return None

    # --- HTTP --------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        paginate: bool = False,
    ) -> Any:
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        headers = {
            "Authorization": f"token {self.token}",
            "Accept": PAGINATION_MEDIA_TYPE if paginate else "application/json",
            "User-Agent": f"hub-admin/{__version__}",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        # the scheme was checked in api_url: only http and https get here
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read(MAX_RESPONSE_BYTES)
                status = response.status
        except urllib.error.HTTPError as e:
            try:
                raw = e.read(64 * 1024)
            except (OSError, http.client.HTTPException, AttributeError):
                raw = b""
            finally:
                e.close()
            raise self._http_error(e.code, e.reason, e.headers, raw) from None
        except urllib.error.URLError as e:
            raise self._unreachable(e.reason) from None
        except (TimeoutError, OSError) as e:
            raise self._unreachable(e) from None
        except http.client.HTTPException:
            raise CLIError(f"the server at {self.shown} did not answer HTTP properly") from None
        except ValueError:  # http.client refuses a URL or header it cannot send
            raise UsageError("the hub URL or a name in it cannot be sent over HTTP") from None
        if status == 204 or not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise self._not_an_api() from None

    def _not_an_api(self) -> CLIError:
        return CLIError(
            f"the server at {self.shown} did not answer like a hub API; check the hub URL"
        )

    def _http_error(self, status: int, reason: str, headers: Any, raw: bytes) -> CLIError:
        if 300 <= status < 400:
            where = headers.get("Location", "") if headers is not None else ""
            return CLIError(
                f"the server at {self.shown} redirected to {where[:200] or 'another URL'}; "
                "check the hub URL"
            )
        message = None
        try:
            data = json.loads(raw)
            if isinstance(data, dict) and isinstance(data.get("message"), str):
                message = data["message"]
        except ValueError:
            pass
        if message is None:
            return CLIError(f"HTTP {status} {reason or ''} from {self.shown}".replace("  ", " "))
        if status == 403 and message == BAD_CREDENTIALS:
            message += "; check the API token (--token or ATRIUM_TOKEN)"
        return CLIError(f"{message} (HTTP {status})")

    def _unreachable(self, reason: object) -> CLIError:
        where = f"cannot reach the hub at {self.shown}"
        if isinstance(reason, ConnectionRefusedError):
            return CLIError(f"{where}: connection refused (is the hub running?)")
        if isinstance(reason, socket.gaierror):
            return CLIError(f"{where}: unknown host")
        if isinstance(reason, TimeoutError):
            return CLIError(f"{where}: no answer within {self.timeout:g} seconds")
        if isinstance(reason, ssl.SSLError):
            return CLIError(f"{where}: TLS error ({getattr(reason, 'reason', None) or reason})")
        if isinstance(reason, OSError) and reason.strerror:
            return CLIError(f"{where}: {reason.strerror}")
        return CLIError(f"{where}: {reason}")


def _model(data: Any) -> Model:
    if not isinstance(data, dict):
        raise CLIError("the hub answered with something other than a JSON object")
    return data


def _list_of_models(data: Any) -> list[Model]:
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise CLIError("the hub answered with something other than a list of objects")
    return data
