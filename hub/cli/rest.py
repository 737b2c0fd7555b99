"""The REST backend: the hub's API over HTTP, standard library only.

Any URL of the hub works: the hub URL (`http://host:8000/hub/`), the API URL
(`.../hub/api`, as in `JUPYTERHUB_API_URL`) or the base URL (`http://host:8000/`).
Redirects are never followed, so the token is only ever sent to the URL given.
Errors become one-line `HubError`s carrying the hub's own message and status.

Every list is walked page by page with JupyterHub's opt-in pagination. Server
starts and stops build on `request` and `events` (`hub.cli.control`).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from hub import __version__
from hub.cli.backend import PAGE_SIZE, AuditQuery, Model, UserListQuery, token_body
from hub.cli.errors import CLIError, UsageError

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_EVENT_LINE = 64 * 1024
BAD_CREDENTIALS = "Missing or invalid credentials"


class HubError(CLIError):
    """The hub answered with an error: its message, HTTP status and Retry-After."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


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


def _group_path(name: str) -> str:
    return "/groups/" + quote(name, safe="")


def server_path(user: str, server: str) -> str:
    """`/users/ann/server` for the default server, `/users/ann/servers/lab` for a named one."""
    if server:
        return f"{_user_path(user)}/servers/{quote(server, safe='')}"
    return f"{_user_path(user)}/server"


class RestBackend:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.base = api_url(url)
        self.shown = _displayed(self.base)
        self.token = _check_token(token)
        self.timeout = timeout
        # redirects are refused: the token must not follow them to another place
        self._opener = urllib.request.build_opener(_NoRedirect())

    def _walk(
        self, path: str, params: dict[str, str], offset: int = 0, limit: int | None = None
    ) -> list[Model]:
        """Every item of a paginated list from `offset` on, at most `limit` of them."""
        items: list[Model] = []
        while True:
            want = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(items))
            if want <= 0:
                break
            page = self._call(
                "GET",
                path,
                query={**params, "offset": str(offset), "limit": str(want)},
                paginate=True,
            )
            if isinstance(page, list):  # a hub without pagination answers the whole list
                got = _list_of_models(page)
                return got if limit is None else got[:limit]
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

    # --- users -------------------------------------------------------------

    def list_users(self, query: UserListQuery) -> list[Model]:
        params: dict[str, str] = {"sort": query.sort}
        if query.state:
            params["state"] = query.state
        if query.name_filter:
            params["name_filter"] = query.name_filter
        if query.include_stopped:
            params["include_stopped_servers"] = "1"
        return self._walk("/users", params, query.offset, query.limit)

    def get_user(self, name: str) -> Model:
        return _model(self._call("GET", _user_path(name), query={"include_stopped_servers": "1"}))

    def create_users(self, names: Sequence[str], admin: bool) -> list[Model]:
        body = {"usernames": list(names), "admin": admin}
        return _list_of_models(self._call("POST", "/users", body=body))

    def update_user(self, name: str, patch: Model) -> Model:
        return _model(self._call("PATCH", _user_path(name), body=patch))

    def delete_user(self, name: str) -> None:
        self._call("DELETE", _user_path(name))

    def import_roster(self, text: str, apply: bool, skip_errors: bool) -> Model:
        query = {"apply": str(apply).lower(), "skip_errors": str(skip_errors).lower()}
        raw = text.encode()
        return _model(self._call("POST", "/roster", raw=raw, content_type="text/csv", query=query))

    # --- groups ------------------------------------------------------------

    def list_groups(self) -> list[Model]:
        return self._walk("/groups", {})

    def get_group(self, name: str) -> Model:
        return _model(self._call("GET", _group_path(name)))

    def create_group(self, name: str, users: Sequence[str]) -> Model:
        body = {"users": list(users)} if users else {}
        return _model(self._call("POST", _group_path(name), body=body))

    def delete_group(self, name: str) -> None:
        self._call("DELETE", _group_path(name))

    def change_members(self, group: str, users: Sequence[str], add: bool) -> Model:
        method = "POST" if add else "DELETE"
        body = {"users": list(users)}
        return _model(self._call(method, _group_path(group) + "/users", body=body))

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

    # --- audit log ---------------------------------------------------------

    def list_audit(self, query: AuditQuery) -> list[Model]:
        params = {
            key: value
            for key, value in (
                ("actor", query.actor),
                ("action", query.action),
                ("target", query.target),
                ("since", query.since),
            )
            if value
        }
        return self._walk("/audit", params, 0, query.limit)

    def close(self) -> None:
        return None

    # --- HTTP --------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> tuple[int, Any]:
        """One API call: (HTTP status, parsed JSON or None); HubError for an error.
        `timeout` (seconds) replaces the backend's own for this call."""
        return self._send(method, path, body=body, timeout=timeout)

    def events(self, path: str, deadline: float) -> Iterator[Model]:
        """The `data:` events of a server-sent event stream (the hub's progress API),
        until the stream ends or `deadline` (time.monotonic()) passes, when it stops
        quietly. The hub sends a comment every few seconds, so a quiet stream is
        noticed at each read's timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        request = self._request("GET", path, None, "text/event-stream", None)
        try:
            response = self._opener.open(request, timeout=min(self.timeout, remaining))
        except urllib.error.HTTPError as e:
            raise self._error_from(e) from None
        except urllib.error.URLError as e:
            raise self._unreachable(e.reason) from None
        except (TimeoutError, OSError) as e:
            raise self._unreachable(e) from None
        with response:
            while time.monotonic() < deadline:
                try:
                    line = response.readline(MAX_EVENT_LINE)
                except (TimeoutError, OSError, http.client.HTTPException):
                    return
                if not line:
                    return
                text = line.decode("utf-8", "replace").strip()
                if not text.startswith("data:"):
                    continue
                try:
                    event = json.loads(text[len("data:") :])
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
        paginate: bool = False,
    ) -> Any:
        _status, data = self._send(
            method,
            path,
            body=body,
            raw=raw,
            content_type=content_type,
            query=query,
            paginate=paginate,
        )
        return data

    def _request(
        self,
        method: str,
        path: str,
        data: bytes | None,
        accept: str,
        content_type: str | None,
        query: dict[str, str] | None = None,
    ) -> urllib.request.Request:
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        headers = {
            "Authorization": f"token {self.token}",
            "Accept": accept,
            "User-Agent": f"hub-admin/{__version__}",
        }
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            # the scheme was checked in api_url: only http and https get here
            return urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        except ValueError:
            raise UsageError("the hub URL or a name in it cannot be sent over HTTP") from None

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
        paginate: bool = False,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            content_type = "application/json"
        accept = PAGINATION_MEDIA_TYPE if paginate else "application/json"
        request = self._request(method, path, data, accept, content_type, query)
        try:
            wait = self.timeout if timeout is None else timeout
            with self._opener.open(request, timeout=wait) as response:
                raw_answer = response.read(MAX_RESPONSE_BYTES)
                status = response.status
        except urllib.error.HTTPError as e:
            raise self._error_from(e) from None
        except urllib.error.URLError as e:
            raise self._unreachable(e.reason) from None
        except (TimeoutError, OSError) as e:
            raise self._unreachable(e) from None
        except http.client.HTTPException:
            raise CLIError(f"the server at {self.shown} did not answer HTTP properly") from None
        except ValueError:  # http.client refuses a URL or header it cannot send
            raise UsageError("the hub URL or a name in it cannot be sent over HTTP") from None
        if status == 204 or not raw_answer:
            return status, None
        try:
            return status, json.loads(raw_answer)
        except ValueError:
            raise self._not_an_api() from None

    def _error_from(self, e: urllib.error.HTTPError) -> CLIError:
        try:
            raw = e.read(64 * 1024)
        except (OSError, http.client.HTTPException, AttributeError):
            raw = b""
        finally:
            e.close()
        return self._http_error(e.code, e.reason, e.headers, raw)

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
            text = f"HTTP {status} {reason or ''} from {self.shown}".replace("  ", " ")
            return HubError(text, status)
        if status == 403 and message == BAD_CREDENTIALS:
            message += "; check the API token (--token or ATRIUM_TOKEN)"
        retry_after = None
        if headers is not None:
            value = str(headers.get("Retry-After", "")).strip()
            if value.isdigit():
                retry_after = float(value)
        return HubError(f"{message} (HTTP {status})", status, retry_after)

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
