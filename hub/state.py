"""The running hub's shared parts, handed to request handlers through tornado settings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hub.auth.registry import AuthSet
from hub.authcache import RequesterCache
from hub.branding import Branding
from hub.db.engine import Database
from hub.ops.context import HubContext
from hub.spawn import Orchestrator

if TYPE_CHECKING:
    from hub.culler import CullerTask
    from hub.metrics import LoopMonitor
    from hub.proxy.supervisor import ProxyLink
    from hub.services import ServiceSpec, ServiceSupervisor


@dataclass
class HubState:
    db: Database
    ctx: HubContext
    orchestrator: Orchestrator
    max_body_size: int = 1024 * 1024
    # password logins for POST /users/{name}/tokens are allowed for native accounts
    allow_password_token_requests: bool = True
    started_at: float = field(default_factory=time.time)
    requester_cache: RequesterCache = field(default_factory=RequesterCache)
    # the configured spawner's import path ('' when none), shown by /hub/api/info
    spawner_class: str = ""
    # the proxy's routes and process; None when c.Hub.proxy is 'none'
    proxy: ProxyLink | None = None
    # pages: how long a login lasts, who may frame them
    cookie_max_age_days: float = 14.0
    frame_ancestors: str = "'self'"
    # the class's or lab's title, logo, colours and announcement
    branding: Branding = field(default_factory=Branding)
    # /hub/ and a login without `next` lead to the server (True) or the home page
    redirect_to_server: bool = True
    # the authenticators on the login page, auth-state encryption, login throttling
    auth: AuthSet = field(default_factory=lambda: _default_auth())
    # idle culling (c.Culler); None when off. Started once the hub listens.
    culler: CullerTask | None = None
    # c.Hub.services, and the process of each managed one (started once the hub listens)
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    service_supervisor: ServiceSupervisor | None = None
    # the event loop's lag, for the metrics; started once the hub listens
    loop_monitor: LoopMonitor = field(default_factory=lambda: _loop_monitor())


def _loop_monitor() -> LoopMonitor:
    from hub.metrics import LoopMonitor

    return LoopMonitor()


def _default_auth() -> AuthSet:
    from hub.auth.native import NativeAuthenticator

    return AuthSet([NativeAuthenticator()])
