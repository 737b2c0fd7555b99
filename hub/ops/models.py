"""JSON models in JupyterHub's shapes, trimmed to what the requester may read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.db.models import APIToken
from hub.ops.context import HubContext
from hub.rbac.access import Requester
from hub.rbac.scopes import ALL
from hub.timeutil import isoformat

# which keys of a user model each scope reveals
USER_KEYS: dict[str, frozenset[str]] = {
    "read:users": frozenset(
        {
            "kind",
            "name",
            "admin",
            "roles",
            "groups",
            "server",
            "pending",
            "created",
            "last_activity",
            "user_info",
            "blocked",
        }
    ),
    "read:users:name": frozenset({"kind", "name", "admin", "user_info"}),
    "read:users:groups": frozenset({"kind", "name", "groups"}),
    "read:users:activity": frozenset({"kind", "name", "last_activity"}),
    "read:servers": frozenset({"kind", "name", "servers"}),
    "read:roles:users": frozenset({"kind", "name", "roles", "admin"}),
    "admin:auth_state": frozenset({"kind", "name", "auth_state"}),
}
USER_READ_SCOPES = tuple(USER_KEYS)

GROUP_KEYS: dict[str, frozenset[str]] = {
    "read:groups": frozenset({"kind", "name", "properties", "users"}),
    "read:groups:name": frozenset({"kind", "name"}),
    "read:roles:groups": frozenset({"kind", "name", "roles"}),
}
GROUP_READ_SCOPES = tuple(GROUP_KEYS)


@dataclass(frozen=True)
class VisibleKeys:
    """Which user-model keys a requester may read: those granted for every user, and
    the filtered scopes that must be checked per user."""

    everywhere: frozenset[str]
    filtered: tuple[tuple[str, frozenset[str]], ...]
    all_server_state: bool

    @classmethod
    def of(cls, req: Requester) -> VisibleKeys:
        everywhere: set[str] = set()
        filtered = []
        for scope, keys in USER_KEYS.items():
            entry = req.parsed.get(scope)
            if entry == ALL:
                everywhere |= keys
            elif entry is not None:
                filtered.append((scope, keys))
        return cls(
            frozenset(everywhere),
            tuple(filtered),
            req.parsed.get("admin:server_state") == ALL,
        )

    def for_user(self, req: Requester, name: str, groups: Iterable[str]) -> frozenset[str]:
        allowed = self.everywhere
        for scope, keys in self.filtered:
            if not keys <= allowed and req.allows(scope, user=name, user_groups=groups):
                allowed = allowed | keys
        return allowed


def is_active(server: Any) -> bool:
    return server.started is not None or server.pending is not None


def server_model(
    ctx: HubContext,
    req: Requester,
    user_name: str,
    server: Any,
    user_groups: Iterable[str],
    plan: VisibleKeys | None = None,
) -> dict[str, Any]:
    """`server` is a Server row or object (same attribute names)."""
    ready = server.started is not None and server.pending is None
    model: dict[str, Any] = {
        "name": server.name,
        # JupyterHub's default for a server created without one
        "display_name": server.name,
        "full_name": f"{user_name}/{server.name}",
        "last_activity": isoformat(server.last_activity),
        "started": isoformat(server.started),
        "pending": server.pending,
        "ready": ready,
        "stopped": not is_active(server),
        "url": ctx.user_url(user_name, server.name),
        "user_options": server.user_options,
        "progress_url": ctx.progress_url(user_name, server.name),
        "full_url": None,
        "full_progress_url": None,
        # Atrium's own: why its last start failed or it stopped unexpectedly (None after
        # a clean stop), so pages and tools can say it without replaying the progress
        "failure": getattr(server, "failure", None),
    }
    if (plan is not None and plan.all_server_state) or req.allows(
        "admin:server_state", server=f"{user_name}/{server.name}", user_groups=user_groups
    ):
        model["state"] = server.state
    return model


def user_model(
    ctx: HubContext,
    req: Requester,
    *,
    name: str,
    admin: bool,
    created: Any,
    last_activity: Any,
    groups: list[str],
    blocked: bool = False,
    full_name: str = "",
    email: str = "",
    assigned_roles: Iterable[str],
    servers: Iterable[Any],
    include_stopped: bool = False,
    plan: VisibleKeys | None = None,
) -> dict[str, Any]:
    """A user model with only the keys `req` may read (empty if none)."""
    allowed = (plan or VisibleKeys.of(req)).for_user(req, name, groups)
    if not allowed:
        return {}
    servers = list(servers)
    default = next((s for s in servers if s.name == ""), None)
    running = default is not None and default.started is not None and default.pending is None
    full: dict[str, Any] = {
        "kind": "user",
        "name": name,
        "admin": admin,
        "roles": ctx.roles.user_roles(admin, assigned_roles),
        "groups": groups,
        "server": ctx.user_url(name) if running else None,
        "pending": default.pending if default is not None else None,
        "created": isoformat(created),
        "last_activity": isoformat(last_activity),
        "auth_state": None,
        "blocked": blocked,
        # JupyterHub 6 passes on what the authenticator knows; ours: a roster's name and email
        "user_info": {"full_name": full_name, "email": email} if full_name or email else None,
    }
    model = {k: v for k, v in full.items() if k in allowed}
    visible = {}
    for server in servers:
        if (is_active(server) or include_stopped) and req.allows(
            "read:servers", server=f"{name}/{server.name}", user_groups=groups
        ):
            visible[server.name] = server_model(ctx, req, name, server, groups, plan)
    if "servers" in allowed or visible:
        model["servers"] = visible
    return model


def token_model(token: APIToken, owner_kind: str, owner_name: str) -> dict[str, Any]:
    return {
        owner_kind: owner_name,
        "id": f"a{token.id}",
        "kind": "api_token",
        "roles": [],
        "scopes": sorted(token.scopes),
        "created": isoformat(token.created),
        "last_activity": isoformat(token.last_activity),
        "expires_at": isoformat(token.expires_at),
        "note": token.note,
        "session_id": token.session_id,
        "oauth_client": token.client_id,
    }
