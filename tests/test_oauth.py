"""The hub as OAuth2 provider for a server: authorization code + PKCE (S256).

The flow a single-user server runs for a visitor: authorize (as the logged-in
visitor) -> code on the server's callback -> token exchange with the server's
secret (its API token) and the PKCE verifier -> a hub token that identifies
the visitor and lets them into that server only. And what must fail.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.conftest import HubFactory, RunningHub
from tests.spawner import started_pids
from tests.test_pages import PASSWORD, Browser
from tests.test_server_env import environ

SPAWNER = "tests.spawner.ProcessSpawner"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


class Server:
    """What a started server knows: its client id, secret and callback."""

    def __init__(self, env: dict[str, str]) -> None:
        self.client_id = env["JUPYTERHUB_CLIENT_ID"]
        self.secret = env["JUPYTERHUB_API_TOKEN"]
        self.callback = env["JUPYTERHUB_OAUTH_CALLBACK_URL"]
        self.scopes = orjson.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"])


async def setup(hub_factory: HubFactory) -> tuple[RunningHub, Server]:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bo", password=PASSWORD)
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    return hub, Server(environ(started_pids[-1]))


def authorize_path(server: Server, challenge: str, **override: str) -> str:
    params = {
        "client_id": server.client_id,
        "redirect_uri": server.callback,
        "response_type": "code",
        "state": "s-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **override,
    }
    return "/hub/api/oauth2/authorize?" + urlencode({k: v for k, v in params.items() if v})


async def exchange(hub: RunningHub, server: Server, the_code: str, verifier: str, **kw: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": the_code,
        "redirect_uri": server.callback,
        "client_id": server.client_id,
        "client_secret": server.secret,
        "code_verifier": verifier,
        **kw,
    }
    r: HTTPResponse = await AsyncHTTPClient().fetch(
        hub.url + "api/oauth2/token",
        method="POST",
        body=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        raise_error=False,
    )
    return r.code, orjson.loads(r.body)


async def code_for(browser: Browser, server: Server, challenge: str) -> str:
    r = await browser.request("GET", authorize_path(server, challenge))
    assert r.code == 302, r.body[:300]
    location = urlsplit(r.headers["Location"])
    assert location.path == server.callback  # back to the server, as registered
    query = parse_qs(location.query)
    assert query["state"] == ["s-123"]
    return query["code"][0]


async def test_a_visitor_logs_in_to_their_server(hub_factory: HubFactory) -> None:
    hub, server = await setup(hub_factory)
    browser = Browser(hub)
    verifier, challenge = pkce()
    # not logged in to the hub: to the login page first, and back
    r = await browser.request("GET", authorize_path(server, challenge))
    assert r.code == 302
    assert r.headers["Location"].startswith("/hub/login?next=")
    await browser.login("ann")
    code = await code_for(browser, server, challenge)
    status, token = await exchange(hub, server, code, verifier)
    assert status == 200, token
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] > 0
    me = await hub.api("GET", "/user", token=token["access_token"])
    assert me.status == 200
    model = me.json()
    assert model["name"] == "ann"
    assert "access:servers!server=ann/" in model["scopes"]
    # the token is for that server and nothing else
    assert (await hub.api("GET", "/users", token=token["access_token"])).status == 403
    # a code works once
    status, again = await exchange(hub, server, code, verifier)
    assert status == 400
    assert again["error"] == "invalid_grant"
    # stopping the server revokes what was issued through its client
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    assert (await hub.api("GET", "/user", token=token["access_token"])).status == 403


async def test_revoking_an_oauth_token_keeps_the_servers_own_token(
    hub_factory: HubFactory,
) -> None:
    hub, server = await setup(hub_factory)
    browser = Browser(hub)
    await browser.login("ann")
    issued = []
    for _ in range(2):
        verifier, challenge = pkce()
        status, token = await exchange(
            hub, server, await code_for(browser, server, challenge), verifier
        )
        assert status == 200, token
        issued.append(token["access_token"])
    listed = (await hub.api("GET", "/users/ann/tokens")).json()["api_tokens"]
    oauth = [t for t in listed if t["oauth_client"] == server.client_id and t["expires_at"]]
    assert len(oauth) == 2
    r = await hub.api("DELETE", f"/users/ann/tokens/{oauth[0]['id']}")
    assert r.status == 204
    # every token issued to that client goes ...
    for access in issued:
        assert (await hub.api("GET", "/user", token=access)).status == 403
    # ... but the server can still speak to the hub with its own token
    me = await hub.api("GET", "/user", token=server.secret)
    assert me.status == 200, me.body
    assert me.json()["name"] == "ann"


async def test_bad_exchanges_are_refused(hub_factory: HubFactory) -> None:
    hub, server = await setup(hub_factory)
    browser = Browser(hub)
    await browser.login("ann")
    verifier, challenge = pkce()
    code = await code_for(browser, server, challenge)
    cases: list[tuple[dict[str, str], int, str]] = [
        ({"code_verifier": pkce()[0]}, 400, "invalid_grant"),  # another verifier
        ({"code_verifier": ""}, 400, "invalid_grant"),
        ({"client_secret": "not-the-secret"}, 401, "invalid_client"),
        ({"redirect_uri": "/user/ann/elsewhere"}, 400, "invalid_request"),
        ({"code": "made-up-code"}, 400, "invalid_grant"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ]
    for override, status, error in cases:
        got_status, body = await exchange(hub, server, code, verifier, **override)
        assert (got_status, body.get("error")) == (status, error), override
        assert server.secret not in orjson.dumps(body).decode()
    # after all that, the real exchange still works (nothing above used the code up)
    status, token = await exchange(hub, server, code, verifier)
    assert status == 200, token


async def test_bad_authorize_requests(hub_factory: HubFactory) -> None:
    hub, server = await setup(hub_factory)
    browser = Browser(hub)
    await browser.login("ann")
    _, challenge = pkce()
    # wrong client or redirect URI: a 400 page, never a redirect
    for override in (
        {"client_id": "jupyterhub-user-nobody"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": "/user/ann/other_callback"},
    ):
        r = await browser.request("GET", authorize_path(server, challenge, **override))
        assert r.code == 400, override
        assert "Location" not in r.headers
        assert "This sign-in link is not valid" in r.body.decode()
    # a valid client and redirect but a bad request: the error goes back to the client
    for override, error in (
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "admin:users"}, "invalid_scope"),
    ):
        r = await browser.request("GET", authorize_path(server, challenge, **override))
        assert r.code == 302, (override, r.body[:200])
        location = urlsplit(r.headers["Location"])
        assert location.path == server.callback
        assert parse_qs(location.query)["error"] == [error]


async def test_someone_else_cannot_log_in_to_anns_server(hub_factory: HubFactory) -> None:
    hub, server = await setup(hub_factory)
    browser = Browser(hub)
    await browser.login("bo")
    _, challenge = pkce()
    r = await browser.request("GET", authorize_path(server, challenge))
    assert r.code == 403
    assert "Location" not in r.headers
    assert "not your server" in r.body.decode()
    # an admin may (admins hold access:servers for every server), once they confirm
    admin = Browser(hub)
    await hub.api("PATCH", "/users/bo", {"admin": True})
    await admin.login("bo")
    await confirm_and_get_code(admin, server, challenge, "ann")


async def confirm_and_get_code(browser: Browser, server: Server, challenge: str, owner: str) -> str:
    """Someone else's server: a confirmation page first, and a code only after the
    form (with its XSRF token) is sent."""
    path = authorize_path(server, challenge)
    r = await browser.request("GET", path)
    assert r.code == 200, r.body[:300]
    page = r.body.decode()
    assert "Authorize access" in page
    assert f"<strong>{owner}</strong>'s server" in page
    assert "Location" not in r.headers
    # without the XSRF token the confirmation is refused and no code is issued
    r = await browser.request("POST", path, {})
    assert r.code == 403
    r = await browser.request("POST", path, {"_xsrf": await browser.xsrf()})
    assert r.code == 302, r.body[:300]
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    return query["code"][0]


async def test_a_shared_server_asks_before_letting_someone_in(hub_factory: HubFactory) -> None:
    first, server = await setup(hub_factory)
    # ann's server is shared with bo through a role (roles come from the config: a
    # second hub on the same database loads it)
    share = {"name": "ann-share", "scopes": ["access:servers!server=ann/"], "users": ["bo"]}
    hub = await hub_factory(spawner_class=SPAWNER, load_roles=[share])
    browser = Browser(hub)
    await browser.login("bo")
    verifier, challenge = pkce()
    code = await confirm_and_get_code(browser, server, challenge, "ann")
    status, token = await exchange(hub, server, code, verifier)
    assert status == 200, token
    me = (await hub.api("GET", "/user", token=token["access_token"])).json()
    assert me["name"] == "bo"
    assert "access:servers!server=ann/" in me["scopes"]
    # her own server: no page, a code at once
    owner = Browser(hub)
    await owner.login("ann")
    assert await code_for(owner, server, challenge)
    # stopped by the hub that started it (and holds its process)
    assert (await first.api("DELETE", "/users/ann/server")).status == 204


async def test_logging_out_of_the_hub_revokes_that_sessions_tokens(
    hub_factory: HubFactory,
) -> None:
    hub, server = await setup(hub_factory)
    laptop, phone = Browser(hub), Browser(hub)
    tokens = []
    for browser in (laptop, phone):
        await browser.login("ann")
        verifier, challenge = pkce()
        status, token = await exchange(
            hub, server, await code_for(browser, server, challenge), verifier
        )
        assert status == 200
        tokens.append(token["access_token"])
    for token in tokens:
        assert (await hub.api("GET", "/user", token=token)).status == 200
    # the laptop logs out: its JupyterLab tab loses access, the phone's keeps it
    r = await laptop.request("POST", "/hub/logout", {"_xsrf": await laptop.xsrf()})
    assert r.code == 302
    assert (await hub.api("GET", "/user", token=tokens[0])).status == 403
    assert (await hub.api("GET", "/user", token=tokens[1])).status == 200
    # and the server's own token is untouched
    assert (await hub.api("GET", "/user", token=server.secret)).status == 200


async def test_the_token_endpoint_refuses_odd_requests(hub_factory: HubFactory) -> None:
    hub, _server = await setup(hub_factory)
    client = AsyncHTTPClient()
    url = hub.url + "api/oauth2/token"
    for body, content_type, status in (
        ("x=" + "y" * 20_000, "application/x-www-form-urlencoded", 413),
        ('{"grant_type": "authorization_code"}', "application/json", 400),
        ("", "application/x-www-form-urlencoded", 400),
        # no client credentials: the client is refused before the code is looked at
        ("grant_type=authorization_code&code=%ff%fe", "application/x-www-form-urlencoded", 401),
    ):
        r = await client.fetch(
            url,
            method="POST",
            body=body,
            headers={"Content-Type": content_type},
            raise_error=False,
        )
        assert r.code == status, (body[:40], r.body[:200])
        assert "error" in orjson.loads(r.body)
    r = await client.fetch(url, raise_error=False)  # GET: not a token request
    assert r.code == 405
