"""The environment contract a single-user server is started with, read and checked.

The hub (or any JupyterHub-compatible spawner) gives a server everything it
needs in JUPYTERHUB_* variables (DESIGN.md, "Compatibility contract"). `read()`
turns them into one `HubEnv`, or raises `ContractError` naming what is missing
or malformed, so a misconfigured spawner fails at once with a clear message
instead of serving a server nobody can log in to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


class ContractError(Exception):
    """The environment does not describe a usable server."""


@dataclass(frozen=True)
class HubEnv:
    api_token: str
    api_url: str  # http://hub:8081/hub/api (no trailing slash)
    user: str
    server_name: str
    client_id: str
    prefix: str  # /user/ann/ (leading and trailing slash)
    base_url: str  # the hub's base URL, /
    oauth_callback: str  # /user/ann/oauth_callback
    access_scopes: frozenset[str]  # holding any of these lets a person in
    activity_url: str
    activity_interval: float  # seconds between activity reports
    ip: str
    port: int
    public_hub_url: str  # "" when the hub is reached through the same origin
    root_dir: str
    default_url: str
    disable_user_config: bool
    kernel_transport: str  # "tcp" or "ipc"
    kernel_cull_timeout: int = 0  # seconds an idle kernel lives; 0: kernels are not culled

    @property
    def cookie_name(self) -> str:
        return self.client_id

    @property
    def hub_page_url(self) -> str:
        """The hub's pages as browsers reach them: through the proxy (a path) unless the
        hub has its own public URL."""
        if self.public_hub_url:
            return self.public_hub_url.rstrip("/") + "/"
        return f"{self.base_url}hub/"

    @property
    def authorize_url(self) -> str:
        return f"{self.hub_page_url}api/oauth2/authorize"

    @property
    def hub_logout_url(self) -> str:
        return f"{self.hub_page_url}logout"


def _need(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ContractError(f"{name} is not set; this server must be started by a hub")
    return value


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ContractError(f"{name} must be an http(s) URL, not {value[:80]!r}")
    return value.rstrip("/")


def _path(name: str, value: str) -> str:
    if not value.startswith("/"):
        raise ContractError(f"{name} must be a path starting with /, not {value[:80]!r}")
    return value if value.endswith("/") else value + "/"


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def read(env: Mapping[str, str] | None = None) -> HubEnv:
    env = os.environ if env is None else env
    token = env.get("JUPYTERHUB_API_TOKEN") or env.get("JPY_API_TOKEN") or ""
    if not token:
        raise ContractError("JUPYTERHUB_API_TOKEN is not set; this server must be started by a hub")
    api_url = _url("JUPYTERHUB_API_URL", _need(env, "JUPYTERHUB_API_URL"))
    user = _need(env, "JUPYTERHUB_USER")
    server_name = env.get("JUPYTERHUB_SERVER_NAME", "")
    prefix = _path("JUPYTERHUB_SERVICE_PREFIX", _need(env, "JUPYTERHUB_SERVICE_PREFIX"))
    base_url = _path("JUPYTERHUB_BASE_URL", env.get("JUPYTERHUB_BASE_URL") or "/")
    service_url = env.get("JUPYTERHUB_SERVICE_URL", "")
    ip, port = "127.0.0.1", 8888
    if service_url:
        parts = urlsplit(_url("JUPYTERHUB_SERVICE_URL", service_url))
        ip = parts.hostname or ip
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ContractError(
                f"JUPYTERHUB_SERVICE_URL has a bad port: {service_url[:80]!r}"
            ) from None
    scopes_raw = env.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES") or env.get("JUPYTERHUB_OAUTH_SCOPES")
    if scopes_raw:
        try:
            scopes = json.loads(scopes_raw)
        except ValueError:
            raise ContractError("JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list") from None
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ContractError("JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list of strings")
    else:
        scopes = [f"access:servers!server={user}/{server_name}"]
    # whoever may use every server of this user may use this one too
    access = frozenset([*scopes, f"access:servers!user={user}", "access:servers"])
    interval_raw = env.get("JUPYTERHUB_ACTIVITY_INTERVAL", "60")
    try:
        interval = float(interval_raw)
    except ValueError:
        interval = -1.0
    if not 0 < interval <= 86400:
        raise ContractError(
            f"JUPYTERHUB_ACTIVITY_INTERVAL must be seconds in (0, 86400], not {interval_raw[:20]!r}"
        )
    transport = env.get("ATRIUM_KERNEL_TRANSPORT", "tcp") or "tcp"
    if transport not in ("tcp", "ipc"):
        raise ContractError(f"ATRIUM_KERNEL_TRANSPORT must be tcp or ipc, not {transport[:20]!r}")
    cull_raw = env.get("ATRIUM_KERNEL_CULL_TIMEOUT", "0") or "0"
    try:
        kernel_cull = int(cull_raw)
    except ValueError:
        kernel_cull = -1
    if kernel_cull < 0:
        raise ContractError(
            f"ATRIUM_KERNEL_CULL_TIMEOUT must be whole seconds (0: off), not {cull_raw[:20]!r}"
        )
    public_hub = env.get("JUPYTERHUB_PUBLIC_HUB_URL", "")
    return HubEnv(
        api_token=token,
        api_url=api_url,
        user=user,
        server_name=server_name,
        client_id=env.get("JUPYTERHUB_CLIENT_ID") or f"jupyterhub-user-{user}",
        prefix=prefix,
        base_url=base_url,
        oauth_callback=env.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or f"{prefix}oauth_callback",
        access_scopes=access,
        activity_url=_url("JUPYTERHUB_ACTIVITY_URL", env["JUPYTERHUB_ACTIVITY_URL"])
        if env.get("JUPYTERHUB_ACTIVITY_URL")
        else "",
        activity_interval=interval,
        ip=ip,
        port=port,
        public_hub_url=_url("JUPYTERHUB_PUBLIC_HUB_URL", public_hub) if public_hub else "",
        root_dir=env.get("JUPYTERHUB_ROOT_DIR") or env.get("HOME") or os.getcwd(),
        default_url=env.get("JUPYTERHUB_DEFAULT_URL") or "/lab",
        disable_user_config=_truthy(env.get("JUPYTERHUB_DISABLE_USER_CONFIG", "")),
        kernel_transport=transport,
        kernel_cull_timeout=kernel_cull,
    )
