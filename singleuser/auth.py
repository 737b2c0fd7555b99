"""Who may use this server: the hub decides, the server asks and remembers briefly.

Two ways in, both ending in the same question to the hub (`GET /hub/api/user`
with the presented token, as JupyterHub's single-user servers ask it):

- API clients send a hub token (`Authorization: token ...`, `?token=`);
- browsers log in through the hub's OAuth2 authorize endpoint (PKCE S256). The
  access token the hub gives lands in a signed, httponly cookie scoped to this
  server's prefix, named after the OAuth client (`jupyterhub-user-<name>`).

A token gets in only if the hub says its holder has one of the scopes that open
this server (`JUPYTERHUB_OAUTH_ACCESS_SCOPES`, or `access:servers` on this
user). Answers are cached for `CACHE_SECONDS` (refusals for less), so a token
the hub revokes (logging out of the hub revokes the session's tokens) stops
working here within that time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, TraitError, validate

if TYPE_CHECKING:
    from singleuser.hubenv import HubEnv

CACHE_SECONDS = 30.0  # how long a yes from the hub is trusted
REFUSAL_CACHE_SECONDS = 5.0  # how long a no is remembered (spares the hub a flood)
CACHE_SIZE = 2000
STATE_COOKIE_SECONDS = 600  # a login must come back from the hub within this time
HUB_TIMEOUT = 10.0


class HubUnavailable(Exception):
    """The hub could not be asked (down, timing out, answering 5xx)."""


class HubClient:
    """Asks the hub who holds a token; remembers the answers for a short while."""

    def __init__(self, hub: HubEnv, cache_seconds: float = CACHE_SECONDS) -> None:
        self.hub = hub
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()

    @property
    def http(self) -> AsyncHTTPClient:
        return AsyncHTTPClient()  # one per event loop, made on first use

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def forget(self, token: str) -> None:
        self._cache.pop(self._key(token), None)

    async def identify(self, token: str) -> dict[str, Any] | None:
        """The hub's model of the token's owner (with `scopes`), or None if the hub
        does not know the token."""
        key = self._key(token)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        request = HTTPRequest(
            f"{self.hub.api_url}/user",
            headers={"Authorization": f"token {token}"},
            request_timeout=HUB_TIMEOUT,
            connect_timeout=HUB_TIMEOUT,
        )
        try:
            response = await self.http.fetch(request, raise_error=False)
        except OSError as e:
            raise HubUnavailable(f"the hub cannot be reached: {e}") from None
        if response.code in (401, 403, 404):
            model = None
            ttl = min(REFUSAL_CACHE_SECONDS, self.cache_seconds)
        elif response.code == 200:
            try:
                model = json.loads(response.body)
            except ValueError:
                raise HubUnavailable("the hub answered with something that is not JSON") from None
            ttl = self.cache_seconds
        else:
            raise HubUnavailable(f"the hub answered {response.code}")
        self._cache[key] = (now + ttl, model)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return model

    async def exchange_code(self, code: str, verifier: str) -> str:
        """Trade an authorization code for an access token at the hub's token endpoint."""
        body = urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.hub.oauth_callback,
                "client_id": self.hub.client_id,
                "client_secret": self.hub.api_token,
                "code_verifier": verifier,
            }
        )
        request = HTTPRequest(
            f"{self.hub.api_url}/oauth2/token",
            method="POST",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            request_timeout=HUB_TIMEOUT,
            connect_timeout=HUB_TIMEOUT,
        )
        try:
            response = await self.http.fetch(request)
        except HTTPClientError as e:
            raise web.HTTPError(403, f"The hub refused the login ({e.code})") from None
        except OSError as e:
            raise HubUnavailable(f"the hub cannot be reached: {e}") from None
        token = json.loads(response.body).get("access_token")
        if not isinstance(token, str) or not token:
            raise web.HTTPError(403, "The hub did not issue an access token")
        return token


def may_use(model: dict[str, Any], access_scopes: frozenset[str]) -> bool:
    return any(scope in access_scopes for scope in model.get("scopes") or ())


def _user(model: dict[str, Any]) -> User:
    name = str(model.get("name") or "")
    return User(username=name, name=name, display_name=name, initials=name[:1].upper() or None)


class HubIdentityProvider(IdentityProvider):
    """jupyter_server's identity hook, answered by the hub."""

    cache_max_age = Float(
        CACHE_SECONDS,
        help="Seconds the hub's answer about a token is trusted before it is asked again: "
        "the longest a token the hub revoked (e.g. by logging out) still opens this server.",
    ).tag(config=True)

    @validate("cache_max_age")
    def _cache_in_range(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not 0 <= value <= 3600:
            raise TraitError(f"cache_max_age must be seconds in [0, 3600], not {value}")
        return value

    @property
    def hub(self) -> HubEnv:
        return cast("HubEnv", cast(Any, self.parent).hub_env)

    @property
    def client(self) -> HubClient:
        app = cast(Any, self.parent)
        if getattr(app, "hub_client", None) is None:
            app.hub_client = HubClient(self.hub, self.cache_max_age)
        return cast(HubClient, app.hub_client)

    # no token of jupyter_server's own: every identity comes from the hub
    def _token_default(self) -> str:
        return ""

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def get_cookie_name(self, handler: web.RequestHandler) -> str:
        return self.hub.cookie_name

    def get_handlers(self) -> list[tuple[str, object]]:
        return [
            (r"/login", HubLoginHandler),
            (r"/logout", HubLogoutHandler),
            (r"/oauth_callback", OAuthCallbackHandler),
        ]

    async def _identity(self, token: str, handler: web.RequestHandler) -> User | None:
        """The user holding `token` if they may use this server, else None (jupyter_server
        then answers 403 to API requests and sends pages to log in, where the hub
        tells a person who may not use this server so)."""
        try:
            model = await self.client.identify(token)
        except HubUnavailable as e:
            self.log.error("Cannot check a token, so refusing it: %s", e)
            return None
        if model is None:
            return None
        if not may_use(model, self.hub.access_scopes):
            name = str(model.get("name") or "?")[:100]
            self.log.warning("%s may not use this server (%s)", name, handler.request.path[:200])
            return None
        return _user(model)

    async def _get_user(self, handler: web.RequestHandler) -> User | None:
        cached = getattr(handler, "_jupyter_current_user", None)
        if cached:
            return cached  # type: ignore[no-any-return]
        token = self.get_token(handler)
        if token:
            user = await self._identity(token, handler)
            if user is not None:
                handler._token_authenticated = True  # type: ignore[attr-defined]
                return user
            return None
        raw = handler.get_secure_cookie(self.hub.cookie_name, max_age_days=14)
        if not raw:
            return None
        user = await self._identity(raw.decode(), handler)
        if user is None:
            # the hub revoked it (logged out, expired): forget it here too
            self.clear_login_cookie(handler)
        return user

    def set_token_cookie(self, handler: web.RequestHandler, token: str) -> None:
        handler.set_secure_cookie(
            self.hub.cookie_name,
            token,
            expires_days=14,
            path=self.hub.prefix,
            httponly=True,
            samesite="Lax",
            secure=handler.request.protocol == "https",
        )

    def clear_login_cookie(self, handler: web.RequestHandler) -> None:
        handler.clear_cookie(self.hub.cookie_name, path=self.hub.prefix)


def _safe_next(hub: HubEnv, target: str | None) -> str:
    """Only ever send a browser back into this server."""
    if target and target.startswith(hub.prefix) and "//" not in target and "\\" not in target:
        return target
    return hub.prefix


def _state_cookie(hub: HubEnv, state: str) -> str:
    return f"{hub.cookie_name}-oauth-{state[:12]}"


class HubPageHandler(JupyterHandler):
    """This server's own login pages, which need its contract."""

    @property
    def hub(self) -> HubEnv:
        return self.settings["serverapp"].hub_env  # type: ignore[no-any-return]


class HubLoginHandler(HubPageHandler):
    """Send the browser to the hub to log in (authorization code + PKCE)."""

    @allow_unauthenticated
    def get(self) -> None:
        hub = self.hub
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        # one cookie per login under way, so two tabs logging in at once both work
        self.set_secure_cookie(
            _state_cookie(hub, state),
            json.dumps(
                {"state": state, "verifier": verifier, "next": self.get_argument("next", "")}
            ),
            expires_days=STATE_COOKIE_SECONDS / 86400,
            path=hub.prefix,
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
        )
        query = urlencode(
            {
                "client_id": hub.client_id,
                "redirect_uri": hub.oauth_callback,
                "response_type": "code",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        self.redirect(f"{hub.authorize_url}?{query}")


class OAuthCallbackHandler(HubPageHandler):
    """The hub sends the browser back here with a code; trade it for a token."""

    @allow_unauthenticated
    async def get(self) -> None:
        hub = self.hub
        error = self.get_argument("error", "")
        if error:
            raise web.HTTPError(403, f"The hub refused the login: {error[:100]}")
        code = self.get_argument("code", "")
        state = self.get_argument("state", "")
        if not code or not state:
            raise web.HTTPError(400, "This login link is incomplete (no code or state)")
        name = _state_cookie(hub, state)
        raw = self.get_secure_cookie(name, max_age_days=STATE_COOKIE_SECONDS / 86400)
        self.clear_cookie(name, path=hub.prefix)
        try:
            saved = json.loads(raw) if raw else None
        except ValueError:
            saved = None
        if not isinstance(saved, dict) or not secrets.compare_digest(
            str(saved.get("state", "")), state
        ):
            raise web.HTTPError(
                400, "This login link does not belong to this browser, or is too old"
            )
        identity: HubIdentityProvider = self.settings["serverapp"].identity_provider
        try:
            token = await identity.client.exchange_code(code, str(saved["verifier"]))
        except HubUnavailable as e:
            self.log.error("Login failed: %s", e)
            raise web.HTTPError(503, "The hub cannot be reached to finish the login") from None
        user = await identity._identity(token, self)
        if user is None:
            raise web.HTTPError(403, "The hub did not accept the token it issued")
        identity.set_token_cookie(self, token)
        self.log.info("%s logged in", user.name)
        self.redirect(_safe_next(hub, str(saved.get("next") or "")))


class HubLogoutHandler(HubPageHandler):
    """Forget the login here and log out of the hub too."""

    @allow_unauthenticated
    def get(self) -> None:
        self.settings["serverapp"].identity_provider.clear_login_cookie(self)
        self.redirect(self.hub.hub_logout_url)
