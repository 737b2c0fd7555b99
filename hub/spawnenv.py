"""The environment every single-user server gets (JupyterHub's contract).

`server_env` gives the JUPYTERHUB_* variables a server needs to find the hub,
prove who it is, run the OAuth login of its visitors and report activity.
Spawners add them on top of `c.Spawner.environment` (the hub's values win),
and add what only they know: JUPYTERHUB_SERVICE_URL (where the server listens)
and JUPYTERHUB_ROOT_DIR (the user's files).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson

from hub.ops.context import HubContext
from hub.ops.credentials import access_scope, client_id


def server_env(
    ctx: HubContext,
    hub_url: str,
    user_name: str,
    server_name: str,
    token: str,
    default_url: str = "",
    public_url: str = "",
) -> dict[str, str]:
    """`hub_url`: where the server reaches the hub (http://HOST:PORT, no path)."""
    api_url = f"{hub_url}{ctx.base_url}hub/api"
    prefix = ctx.user_url(user_name, server_name)
    scope = orjson.dumps([access_scope(user_name, server_name)]).decode()
    activity = f"{api_url}/users/{quote(user_name, safe='@')}/activity"
    env = {
        "JUPYTERHUB_API_TOKEN": token,
        "JPY_API_TOKEN": token,  # older single-user servers read this name
        "JUPYTERHUB_API_URL": api_url,
        "JUPYTERHUB_ACTIVITY_URL": activity,
        "JUPYTERHUB_CLIENT_ID": client_id(user_name, server_name),
        "JUPYTERHUB_USER": user_name,
        "JUPYTERHUB_SERVER_NAME": server_name,
        "JUPYTERHUB_BASE_URL": ctx.base_url,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": scope,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scope,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_PUBLIC_URL": public_url,
        "JUPYTERHUB_PUBLIC_HUB_URL": f"{public_url}{ctx.base_url}hub/" if public_url else "",
    }
    if ctx.kernel_cull_timeout:
        env["ATRIUM_KERNEL_CULL_TIMEOUT"] = str(ctx.kernel_cull_timeout)
    if default_url:
        env["JUPYTERHUB_DEFAULT_URL"] = default_url
    return env
