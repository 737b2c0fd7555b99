"""`/hub/api/oauth2/authorize` and `/hub/api/oauth2/token`.

Authorize (a browser, logged in to the hub): the request is checked (client,
exact redirect URI, PKCE S256, scopes); a person who may use what the client
asks for (for a server: `access:servers` on it) is sent back to the client
with a code: at once for their own server, after confirming on a page for
anything else (a server someone shared with them); anyone else gets a 403
page. A request whose client or redirect URI is wrong is never redirected
anywhere: it gets a 400 page.

Token (the client, server to server): the code, the PKCE verifier, the exact
redirect URI and the client's secret give a hub API token, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import orjson
from oauthlib.oauth2 import FatalClientError, InvalidRequestError, OAuth2Error
from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado import web

from hub.db.models import OAuthClient
from hub.errors import BadRequest, Forbidden
from hub.oauth.provider import ORIGIN, server_for
from hub.ops.identity import groups_lookup
from hub.pages.base import PageHandler, log
from hub.rbac import scopes as rbac_scopes
from hub.rbac.access import Requester
from hub.state import HubState


def absolute_redirects(query: str) -> str:
    """Servers register and send their callback as a path (`/user/ann/oauth_callback`),
    as with JupyterHub; oauthlib accepts only absolute URIs, so paths get `ORIGIN`."""
    pairs = [
        (k, ORIGIN + v if k == "redirect_uri" and v.startswith("/") else v)
        for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return urlencode(pairs)


def _may_use(session: Session, req: Requester, wanted: list[str]) -> bool:
    """Does the person hold every scope the client asks for?"""
    groups_of = groups_lookup(session)
    return all(
        scope == "identify" or rbac_scopes.covered(req.parsed, scope, groups_of) for scope in wanted
    )


@dataclass(frozen=True)
class Consent:
    """The person must confirm before the client gets a code."""

    client: str
    description: str
    owner: str  # whose server the client is ("" for other clients)


def _server_owner(scopes: list[str]) -> str:
    """The user whose server a client opens (its access:servers!server=<user>/<name>)."""
    for scope in scopes:
        if scope.startswith("access:servers!server="):
            return scope.partition("=")[2].partition("/")[0]
    return ""


def _authorize(
    session: Session,
    uri: str,
    headers: dict[str, str],
    req: Requester,
    confirmed: bool,
    trusted: frozenset[str] = frozenset(),
) -> tuple[int, dict[str, str], str] | Consent:
    """`trusted`: clients that need no confirmation (services with oauth_no_confirm)."""
    server = server_for(session)
    wanted, credentials = server.validate_authorization_request(uri, "GET", None, headers)
    request = credentials.get("request")
    if request is not None and request.code_challenge_method != "S256":
        # oauthlib would take plain PKCE too; only S256 protects a stolen code
        raise InvalidRequestError(
            description="PKCE with code_challenge_method=S256 is required", request=request
        )
    if not _may_use(session, req, list(wanted)):
        client_id = str(credentials["client_id"])
        if client_id.startswith("service-"):
            reason = "(using this service takes a role an admin gives: access:services)"
        else:
            reason = "(it is not your server, and it was not shared with you)"
        raise Forbidden(f"{req.name} may not use {client_id[:100]} {reason}")
    client = session.scalar(
        select(OAuthClient).where(OAuthClient.identifier == credentials["client_id"])
    )
    owner = _server_owner(list(client.allowed_scopes)) if client is not None else ""
    if not confirmed and owner != req.name and credentials["client_id"] not in trusted:
        # someone else's server (shared with this person), or another application
        description = client.description if client is not None else credentials["client_id"]
        return Consent(str(credentials["client_id"]), description, owner)
    credentials = {
        **credentials,
        "user_id": req.id,
        "session_id": req.session_id,
    }
    credentials.pop("request", None)
    out_headers, body, status = server.create_authorization_response(
        uri, "GET", None, headers, list(wanted), credentials
    )
    return status, out_headers, body or ""


class AuthorizeHandler(PageHandler):
    """GET: a code at once for your own server; a confirmation page for anything else.
    POST (that page's form, with the XSRF token): the person confirmed."""

    async def get(self) -> None:
        await self._authorize(confirmed=False)

    async def post(self) -> None:
        await self._authorize(confirmed=True)

    async def _authorize(self, confirmed: bool) -> None:
        req = self.require_login()
        path, _, query = (self.request.uri or "").partition("?")
        uri = f"{ORIGIN}{path}?{absolute_redirects(query)}"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            trusted = frozenset(
                s.client_id for s in self.hub.services.values() if s.oauth_no_confirm
            )
            outcome = await self.db.run(_authorize, uri, headers, req, confirmed, trusted)
        except FatalClientError as e:
            # wrong client or redirect URI: never send the browser there
            log.info("OAuth authorize refused: %s", e.description)
            raise BadRequest(f"This sign-in link is not valid: {e.description}") from None
        except OAuth2Error as e:
            if e.redirect_uri:
                # client and redirect URI were valid: the error goes back to the client
                self.redirect(_as_sent(e.in_uri(e.redirect_uri)))
                return
            raise BadRequest(f"This sign-in link is not valid: {e.description}") from None
        if isinstance(outcome, Consent):
            self.page(
                "oauth_consent.html",
                action=self.request.uri,
                client=outcome.client,
                description=outcome.description,
                owner=outcome.owner,
            )
            return
        status, out_headers, _body = outcome
        location = _as_sent(out_headers.get("Location", ""))
        if status == 302 and location:
            log.info("OAuth code for %s issued to %s", req.name, _client_of(uri))
            self.redirect(location)
            return
        raise BadRequest("This sign-in link is not valid")


def _as_sent(location: str) -> str:
    """A redirect back to a client, with the path it registered (not `ORIGIN`)."""
    return location[len(ORIGIN) :] if location.startswith(ORIGIN + "/") else location


def _client_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query).get("client_id", ["?"])[0][:100]


class TokenHandler(web.RequestHandler):
    """Client to hub, form-encoded; answers JSON as RFC 6749 says."""

    def check_xsrf_cookie(self) -> None:
        return  # clients authenticate with their secret, not a cookie

    @property
    def hub(self) -> HubState:
        return self.settings["atrium"]  # type: ignore[no-any-return]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def post(self) -> None:
        if len(self.request.body) > 16 * 1024:
            self._answer(413, {"error": "invalid_request", "error_description": "too large"})
            return
        headers = {
            "Content-Type": self.request.headers.get("Content-Type", ""),
        }
        if "Authorization" in self.request.headers:
            headers["Authorization"] = self.request.headers["Authorization"]
        body = absolute_redirects(self.request.body.decode("utf-8", "replace"))

        def run(session: Session) -> tuple[dict[str, str], str, int]:
            result: tuple[dict[str, str], str, int] = server_for(session).create_token_response(
                ORIGIN + "/hub/api/oauth2/token", "POST", body, headers
            )
            return result

        try:
            _headers, out_body, status = await self.hub.db.run(run)
        except Exception:
            log.exception("OAuth token exchange failed")
            self._answer(500, {"error": "server_error"})
            return
        self._answer(status, orjson.loads(out_body) if out_body else {})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(payload))


routes = [
    (r"/api/oauth2/authorize", AuthorizeHandler),
    (r"/api/oauth2/token", TokenHandler),
]
