"""OAuth2 authorization-code grant with PKCE, on oauthlib, backed by the hub database.

Clients are the servers' (registered at each start by `hub.ops.credentials`,
secret = the server's API token) and, later, services'. The rules:

- `redirect_uri` must equal the client's registered one exactly;
- PKCE with S256 is required (plain is refused);
- codes are stored hashed, live `CODE_LIFETIME` seconds and work once;
- the client authenticates with its secret at the token endpoint;
- scopes are limited to what the client may grant, and the token issued is a
  hub API token (hashed, with the login session it came from), whose scopes
  are intersected with what its owner holds whenever it is used.

oauthlib is synchronous: each call runs in the database thread
(`Database.run`) with a validator bound to that thread's session.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from oauthlib.common import Request
from oauthlib.oauth2 import RequestValidator, WebApplicationServer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.db.models import APIToken, OAuthClient, OAuthCode, User
from hub.secrets_hash import hash_token, token_matches, token_prefix
from hub.timeutil import utcnow

CODE_LIFETIME = 120  # seconds
# oauthlib insists on https URIs; TLS ends at the proxy, so the hub sees plain HTTP.
# URIs handed to oauthlib only carry parameters, so they get this fixed https origin.
ORIGIN = "https://hub.internal"


def registered(redirect_uri: str | None) -> str | None:
    """A redirect URI as clients register it (a path stays a path)."""
    if redirect_uri and redirect_uri.startswith(ORIGIN + "/"):
        return redirect_uri[len(ORIGIN) :]
    return redirect_uri


TOKEN_LIFETIME = 14 * 24 * 3600  # seconds an access token lasts


@dataclass(frozen=True)
class Client:
    """What oauthlib keeps of a client on the request."""

    client_id: str


class Validator(RequestValidator):  # type: ignore[misc]
    """oauthlib's questions, answered from the database (one session per call)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _client(self, client_id: str) -> OAuthClient | None:
        return self.session.scalar(select(OAuthClient).where(OAuthClient.identifier == client_id))

    # --- clients ----------------------------------------------------------------------

    def validate_client_id(self, client_id: str, request: Request, *a: Any, **k: Any) -> bool:
        client = self._client(client_id)
        if client is None:
            return False
        request.client = Client(client.identifier)
        return True

    def client_authentication_required(self, request: Request, *a: Any, **k: Any) -> bool:
        return True

    def authenticate_client(self, request: Request, *a: Any, **k: Any) -> bool:
        client_id = request.client_id
        secret = request.client_secret
        if not client_id or not secret:
            return False
        client = self._client(client_id)
        if client is None or not token_matches(secret, client.secret_hash):
            return False
        request.client = Client(client.identifier)
        return True

    def authenticate_client_id(self, client_id: str, request: Request, *a: Any, **k: Any) -> bool:
        return False  # no public clients

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: Request, *a: Any, **k: Any
    ) -> bool:
        client = self._client(client_id)
        return client is not None and registered(redirect_uri) == client.redirect_uri

    def get_default_redirect_uri(self, client_id: str, request: Request, *a: Any, **k: Any) -> Any:
        client = self._client(client_id)
        if client is None:
            return None
        uri = client.redirect_uri
        return ORIGIN + uri if uri.startswith("/") else uri

    def validate_response_type(
        self, client_id: str, response_type: str, client: Any, request: Request, *a: Any, **k: Any
    ) -> bool:
        return response_type == "code"

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Request, *a: Any, **k: Any
    ) -> bool:
        return grant_type == "authorization_code"

    # --- scopes -----------------------------------------------------------------------

    def get_default_scopes(self, client_id: str, request: Request, *a: Any, **k: Any) -> Any:
        client = self._client(client_id)
        return list(client.allowed_scopes) if client is not None else []

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Request, *a: Any, **k: Any
    ) -> bool:
        found = self._client(client_id)
        if found is None:
            return False
        allowed = set(found.allowed_scopes) | {"identify"}
        return set(scopes or []) <= allowed

    # --- PKCE and codes ---------------------------------------------------------------

    def is_pkce_required(self, client_id: str, request: Request) -> bool:
        return True

    def save_authorization_code(
        self, client_id: str, code: dict[str, Any], request: Request, *a: Any, **k: Any
    ) -> None:
        if request.code_challenge_method != "S256":
            raise ValueError("PKCE S256 is required")  # checked before; never stored
        self.session.add(
            OAuthCode(
                client_id=client_id,
                user_id=request.user_id,
                code_hash=hash_token(code["code"], salt=""),
                expires_at=utcnow() + datetime.timedelta(seconds=CODE_LIFETIME),
                redirect_uri=registered(request.redirect_uri),
                session_id=request.session_id,
                scopes=list(request.scopes or []),
                code_challenge=request.code_challenge,
                code_challenge_method=request.code_challenge_method,
            )
        )
        self.session.flush()

    def _code(self, client_id: str, code: str) -> OAuthCode | None:
        row = self.session.scalar(
            select(OAuthCode).where(
                OAuthCode.code_hash == hash_token(code, salt=""),
                OAuthCode.client_id == client_id,
            )
        )
        if row is None or row.expires_at < utcnow():
            return None
        return row

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Request, *a: Any, **k: Any
    ) -> bool:
        row = self._code(client_id, code)
        if row is None:
            return False
        request.user = row.user_id
        request.scopes = list(row.scopes)
        request.session_id = row.session_id
        return True

    def get_code_challenge(self, code: str, request: Request) -> Any:
        row = self._code(request.client_id, code)
        return row.code_challenge if row is not None else None

    def get_code_challenge_method(self, code: str, request: Request) -> Any:
        row = self._code(request.client_id, code)
        return row.code_challenge_method if row is not None else None

    def confirm_redirect_uri(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        client: Any,
        request: Request,
        *a: Any,
        **k: Any,
    ) -> bool:
        row = self._code(client_id, code)
        return row is not None and registered(redirect_uri) == row.redirect_uri

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Request, *a: Any, **k: Any
    ) -> None:
        self.session.execute(
            delete(OAuthCode).where(OAuthCode.code_hash == hash_token(code, salt=""))
        )

    # --- tokens -----------------------------------------------------------------------

    def save_bearer_token(self, token: dict[str, Any], request: Request, *a: Any, **k: Any) -> None:
        user = self.session.get(User, request.user)
        if user is None or user.blocked:
            raise ValueError("the user is gone")
        access = token["access_token"]
        self.session.add(
            APIToken(
                user_id=user.id,
                prefix=token_prefix(access),
                hashed=hash_token(access),
                scopes=sorted(request.scopes or []),
                note=f"OAuth token for {request.client_id}",
                client_id=request.client_id,
                session_id=request.session_id,
                expires_at=utcnow() + datetime.timedelta(seconds=int(token["expires_in"])),
            )
        )
        self.session.flush()


def server_for(session: Session) -> WebApplicationServer:
    from hub.secrets_hash import new_token

    return WebApplicationServer(
        Validator(session),
        token_generator=lambda request: new_token(),
        token_expires_in=TOKEN_LIFETIME,
    )
