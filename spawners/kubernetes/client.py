"""The connection to the Kubernetes API, shared by every spawner of a hub.

`connect(api_url)` makes one kubernetes_asyncio `ApiClient` per API URL and
event loop: an explicit `k8s_api_url` (no credentials; tests and `kubectl
proxy`), else the pod's in-cluster service account when the hub runs in a
cluster, else the local kubeconfig. `call` runs one API operation with raw JSON
in and out (the typed models cost a lot with thousands of pods) and turns every
non-2xx answer into `KubeError`, carrying the status and the API's own message.
`spawners.kubernetes.informer` watches through the same client.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

Json = dict[str, Any]


class KubeError(Exception):
    """An API call that failed: `status` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.message = message
        self.reason = reason


def status_error(status: int, body: bytes) -> KubeError:
    """KubeError from an error answer (a Status object, usually)."""
    message, reason = body[:300].decode("utf-8", "replace"), ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or message)[:500]
        reason = str(parsed.get("reason") or "")
    return KubeError(status, message, reason)


async def call(operation: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Json:
    """Run `operation` (a CoreV1Api method), returning the answer's JSON."""
    try:
        response = await operation(*args, _preload_content=False, **kwargs)
    except k8s.ApiException as e:  # raised before any answer (bad arguments)
        raise KubeError(int(e.status or 0), str(e.reason)) from None
    except (TimeoutError, OSError) as e:
        raise KubeError(0, f"the Kubernetes API did not answer: {e}") from None
    except Exception as e:  # aiohttp's client errors
        if type(e).__module__.startswith("aiohttp"):
            raise KubeError(0, f"the Kubernetes API did not answer: {e}") from None
        raise
    try:
        body = await response.read()
    except (OSError, TimeoutError, aiohttp.ClientError) as e:
        raise KubeError(0, f"the Kubernetes API's answer broke off: {e}") from None
    finally:
        response.release()
    if not 200 <= response.status < 300:
        raise status_error(response.status, body)
    data = orjson.loads(body) if body else {}
    return data if isinstance(data, dict) else {"items": data}


class Connection:
    """One API client and its CoreV1Api."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)

    async def close(self) -> None:
        await self.api_client.close()


_connections: dict[tuple[int, str], tuple[asyncio.AbstractEventLoop, Connection]] = {}


async def _configuration(api_url: str) -> Any:
    configuration = k8s.Configuration()
    if api_url:
        configuration.host = api_url.rstrip("/")
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        await k8s_config.load_kube_config(client_configuration=configuration)
    return configuration


async def connect(api_url: str = "") -> Connection:
    """The shared connection for `api_url` ('' : in-cluster or kubeconfig)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), api_url)
    found = _connections.get(key)
    if found is not None and found[0] is loop:
        return found[1]
    configuration = await _configuration(api_url)
    found = _connections.get(key)  # made by another start meanwhile
    if found is not None and found[0] is loop:
        return found[1]
    connection = Connection(k8s.ApiClient(configuration))
    _connections[key] = (loop, connection)
    return connection


async def close_all() -> None:
    """Close the connections made on the running loop (hub shutdown, tests)."""
    loop = asyncio.get_running_loop()
    for key, (owner, connection) in list(_connections.items()):
        if owner is loop:
            del _connections[key]
            await connection.close()
