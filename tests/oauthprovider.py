"""A stand-in identity provider for the OAuth preset tests: a tornado server on
127.0.0.1 that answers as GitHub's, GitLab's, Google's and Entra's OAuth2 / OpenID
Connect endpoints and APIs do (the parts the hub uses), since none of them can be
reached from here.

Like the real ones it checks the client's credentials, the redirect URI, the
single use of each code and the PKCE verifier (S256); it signs ID tokens (RS256)
with its own key, published at its JWKS. `login_as` is who the next authorization
logs in (the person is taken to be logged in at the provider already, and to
consent). For the attack tests, `id_token_changes` alters the next ID token's
claims, `sign_with` signs it with another key (under the provider's kid or an unknown one),
`alg: none` or HS256, and
`token_answer` replaces the token endpoint's answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

CLIENT_ID = "hub-client-123"
CLIENT_SECRET = "fake-provider-secret-abcdefghijklmnopqrstuvwxyz"  # 48 characters
TENANT = "11111111-2222-3333-4444-555555555555"
OTHER_TENANT = "99999999-2222-3333-4444-555555555555"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Grant:
    login: str
    scope: list[str]
    nonce: str
    challenge: str
    redirect_uri: str
    prefix: str


@dataclass
class FakeProvider:
    url: str = ""
    # login -> what the provider knows: OIDC claims, or GitHub's / GitLab's user object
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    login_as: str = ""
    # GitHub: login -> {"org": "active" | "pending"}, {"org:team": "active"}
    memberships: dict[str, dict[str, str]] = field(default_factory=dict)
    emails: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # GitLab: login -> group full paths
    groups: dict[str, list[str]] = field(default_factory=dict)
    # tampering and failures
    id_token_changes: dict[str, Any] = field(default_factory=dict)
    sign_with: str = "key"  # key | other-key | none | hs256
    token_answer: tuple[int, bytes] | None = None
    token_delay: float = 0.0
    authorize_error: str = ""
    # what happened
    codes: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> login, prefix
    refresh: dict[str, tuple[str, str]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: int = 0
    jwks_requests: int = 0

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})

    def issuer(self, prefix: str) -> str:
        return self.url + prefix

    def rotate(self) -> None:
        """New signing keys (a new kid), as providers rotate them."""
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-2", "use": "sig"})

    # --- tokens ------------------------------------------------------------------------

    def id_token(self, grant: Grant, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer(grant.prefix),
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 600,
            **self.users[grant.login],
        }
        claims.setdefault("sub", f"sub-{grant.login}")
        if nonce:
            claims["nonce"] = nonce
        for key, value in self.id_token_changes.items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        header = {"alg": "RS256", "kid": self.key.kid or ""}
        if self.sign_with == "none":
            head = b64url(orjson.dumps({"alg": "none", "kid": "fake-1"}))
            return f"{head}.{b64url(orjson.dumps(claims))}."
        if self.sign_with == "hs256":
            key = OctKey.import_key(CLIENT_SECRET.encode())
            return jwt.encode({"alg": "HS256", "kid": "fake-1"}, claims, key)
        if self.sign_with == "unknown-kid":
            return jwt.encode({"alg": "RS256", "kid": "never-published"}, claims, self.other_key)
        key = self.other_key if self.sign_with == "other-key" else self.key
        return jwt.encode(header, claims, key)

    def issue(self, grant: Grant, nonce: str | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = (grant.login, grant.prefix)
        self.refresh[refresh] = (grant.login, grant.prefix)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": refresh,
            "scope": " ".join(grant.scope),
        }
        if "openid" in grant.scope:
            answer["id_token"] = self.id_token(grant, nonce)
        return answer


class Base(web.RequestHandler):
    @property
    def fake(self) -> FakeProvider:
        return self.settings["fake"]  # type: ignore[no-any-return]

    def json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(value))

    def bearer(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() not in ("bearer", "token") or token not in self.fake.access:
            self.json({"message": "Bad credentials"}, 401)
            return None
        return self.fake.access[token][0]

    def check_xsrf_cookie(self) -> None:
        pass


class Authorize(Base):
    def get(self, prefix: str = "") -> None:
        fake = self.fake
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        fake.authorize_requests.append(args)
        redirect_uri = args.get("redirect_uri", "")
        if args.get("client_id") != CLIENT_ID or not redirect_uri:
            self.json({"error": "invalid_client"}, 400)
            return
        sep = "&" if "?" in redirect_uri else "?"
        if fake.authorize_error:
            back = {"error": fake.authorize_error, "state": args.get("state", "")}
            self.redirect(redirect_uri + sep + urlencode(back))
            return
        if args.get("response_type") != "code" or args.get("code_challenge_method") != "S256":
            self.json({"error": "invalid_request"}, 400)
            return
        code = secrets.token_urlsafe(24)
        fake.codes[code] = Grant(
            fake.login_as,
            args.get("scope", "").split(),
            args.get("nonce", ""),
            args.get("code_challenge", ""),
            redirect_uri,
            prefix,
        )
        self.redirect(
            redirect_uri + sep + urlencode({"code": code, "state": args.get("state", "")})
        )


class Token(Base):
    def _client(self) -> bool:
        header = self.request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            pair = base64.b64decode(header[6:]).decode()
            client, _, secret = pair.partition(":")
        else:
            client = self.get_body_argument("client_id", "")
            secret = self.get_body_argument("client_secret", "")
        return client == CLIENT_ID and secrets.compare_digest(secret, CLIENT_SECRET)

    async def post(self, prefix: str = "") -> None:
        fake = self.fake
        fake.token_requests += 1
        if fake.token_delay:
            await asyncio.sleep(fake.token_delay)
        if fake.token_answer is not None:
            status, body = fake.token_answer
            self.set_status(status)
            self.finish(body)
            return
        if not self._client():
            self.json({"error": "invalid_client"}, 401)
            return
        kind = self.get_body_argument("grant_type", "")
        if kind == "refresh_token":
            found = fake.refresh.pop(self.get_body_argument("refresh_token", ""), None)
            if found is None:
                self.json({"error": "invalid_grant"}, 400)
                return
            grant = Grant(found[0], ["openid"] if found[1] else [], "", "", "", found[1])
            self.json(fake.issue(grant, None))
            return
        grant = fake.codes.pop(self.get_body_argument("code", ""), None)
        verifier = self.get_body_argument("code_verifier", "")
        expected = b64url(hashlib.sha256(verifier.encode()).digest())
        if (
            grant is None
            or grant.redirect_uri != self.get_body_argument("redirect_uri", "")
            or not secrets.compare_digest(expected, grant.challenge)
        ):
            self.json({"error": "invalid_grant"}, 400)
            return
        self.json(fake.issue(grant, grant.nonce))


class Discovery(Base):
    def get(self, prefix: str) -> None:
        issuer = self.fake.issuer(prefix)
        self.json(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "userinfo_endpoint": issuer + "/userinfo",
                "jwks_uri": issuer + "/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }
        )


class Jwks(Base):
    def get(self, prefix: str) -> None:
        self.fake.jwks_requests += 1
        self.json({"keys": [self.fake.key.as_dict(private=False)]})


class UserInfo(Base):
    def get(self, prefix: str) -> None:
        login = self.bearer()
        if login is not None:
            claims = {k: v for k, v in self.fake.users[login].items() if k not in ("hd", "tid")}
            claims.setdefault("sub", f"sub-{login}")
            self.json(claims)


# --- GitHub's API -----------------------------------------------------------------------


class GitHubUser(Base):
    def get(self) -> None:
        login = self.bearer()
        if login is not None:
            self.json({"login": login, **self.fake.users[login]})


class GitHubEmails(Base):
    def get(self) -> None:
        login = self.bearer()
        if login is not None:
            self.json(self.fake.emails.get(login, []))


class GitHubOrgMembership(Base):
    def get(self, org: str) -> None:
        login = self.bearer()
        if login is None:
            return
        state = self.fake.memberships.get(login, {}).get(org)
        if state is None:
            self.json({"message": "Not Found"}, 404)
        else:
            self.json({"state": state, "role": "member", "organization": {"login": org}})


class GitHubTeamMembership(Base):
    def get(self, org: str, team: str, user: str) -> None:
        login = self.bearer()
        if login is None:
            return
        state = self.fake.memberships.get(user, {}).get(f"{org}:{team}")
        if state is None:
            self.json({"message": "Not Found"}, 404)
        else:
            self.json({"state": state, "role": "member"})


class GitHubTeams(Base):
    def get(self) -> None:
        login = self.bearer()
        if login is None:
            return
        teams = []
        for entry, state in self.fake.memberships.get(login, {}).items():
            org, _, team = entry.partition(":")
            if team and state == "active":
                teams.append({"slug": team, "organization": {"login": org}})
        self.json(teams)


# --- GitLab's API -----------------------------------------------------------------------


class GitLabUser(Base):
    def get(self) -> None:
        login = self.bearer()
        if login is not None:
            self.json({"username": login, "state": "active", **self.fake.users[login]})


class GitLabGroups(Base):
    def get(self) -> None:
        login = self.bearer()
        if login is not None:
            paths = self.fake.groups.get(login, [])
            self.json([{"full_path": p, "name": p.rsplit("/", 1)[-1]} for p in paths])


def _app(fake: FakeProvider) -> web.Application:
    oidc = r"(/google|/entra/[0-9a-f-]+/v2\.0|/oidc)"
    return web.Application(
        [
            (oidc + r"/\.well-known/openid-configuration", Discovery),
            (oidc + r"/authorize", Authorize),
            (oidc + r"/token", Token),
            (oidc + r"/userinfo", UserInfo),
            (oidc + r"/jwks", Jwks),
            (r"/login/oauth/authorize", Authorize),
            (r"/login/oauth/access_token", Token),
            (r"/api/v3/user", GitHubUser),
            (r"/api/v3/user/emails", GitHubEmails),
            (r"/api/v3/user/teams", GitHubTeams),
            (r"/api/v3/user/memberships/orgs/([^/]+)", GitHubOrgMembership),
            (r"/api/v3/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", GitHubTeamMembership),
            (r"/oauth/authorize", Authorize),
            (r"/oauth/token", Token),
            (r"/api/v4/user", GitLabUser),
            (r"/api/v4/groups", GitLabGroups),
        ],
        fake=fake,
    )


@asynccontextmanager
async def fake_provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    server = HTTPServer(_app(fake))
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    fake.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    try:
        yield fake
    finally:
        server.stop()
        await server.close_all_connections()
