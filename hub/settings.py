"""The hub's user-facing settings (`c.Hub.*` in a config file).

Every setting has help text; `atrium generate-config` writes them all out
commented, and `tests/test_config.py` fails if one is missing there.
"""

from __future__ import annotations

from typing import Any

from traitlets import (
    Bool,
    Dict,
    Enum,
    Float,
    Integer,
    List,
    TraitError,
    Unicode,
    validate,
)
from traitlets.config import Configurable

from hub.ops.context import HubContext
from hub.rbac.roles import RoleTable


def load_spawner_class(path: str) -> type:
    """Import a spawner class by dotted path; TraitError naming the problem."""
    from traitlets.utils.importstring import import_item

    from spawners.base import Spawner

    try:
        cls = import_item(path)
    except Exception as e:
        raise TraitError(f"spawner_class: cannot import {path!r}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Spawner)):
        raise TraitError(f"spawner_class: {path!r} is not a Spawner subclass")
    return cls


class Hub(Configurable):
    """Where the hub listens, its database, secrets, limits and first admin."""

    ip = Unicode(
        "127.0.0.1",
        help="Address the hub listens on. Keep 127.0.0.1 unless a proxy on another host "
        "must reach it.",
    ).tag(config=True)
    port = Integer(8000, help="Port the hub listens on.").tag(config=True)
    base_url = Unicode(
        "/", help="URL prefix under which everything is served, e.g. /jupyter/."
    ).tag(config=True)
    db_url = Unicode(
        "sqlite:///atrium.sqlite",
        help="Database URL: sqlite:///path/to/file.sqlite (the default, in the working "
        "directory) or postgresql+psycopg://user@host/dbname. A password may come from the "
        "ATRIUM_DB_URL environment variable instead of the config file.",
    ).tag(config=True)
    db_pool_size = Integer(
        4, help="Database connections (and worker threads) for PostgreSQL; SQLite uses one."
    ).tag(config=True)
    log_format = Enum(
        ["text", "json"],
        "text",
        help="Log line format: 'text' for people, 'json' (one object per line) for collectors.",
    ).tag(config=True)
    cookie_secret_file = Unicode(
        "atrium_cookie_secret",
        help="File holding the cookie-signing secret (hex), created with mode 0600 on first "
        "start. ATRIUM_COOKIE_SECRET overrides it.",
    ).tag(config=True)
    proxy_auth_token_file = Unicode(
        "atrium_proxy_token",
        help="File holding the token the hub and proxy share, created with mode 0600 on first "
        "start. CONFIGPROXY_AUTH_TOKEN overrides it.",
    ).tag(config=True)
    initial_admin_name = Unicode(
        "admin", help="Name of the admin account created on first start (empty database)."
    ).tag(config=True)
    initial_admin_password = Unicode(
        "",
        help="Password for the first admin; empty means generate one and print it once. "
        "ATRIUM_ADMIN_PASSWORD overrides it.",
    ).tag(config=True)
    load_roles = List(
        Dict(),
        help="Extra roles: [{'name': ..., 'description': ..., 'scopes': [...]}] using "
        "JupyterHub's scope names.",
    ).tag(config=True)
    api_page_default_limit = Integer(
        200, help="Page size of paginated API lists when the client gives no limit."
    ).tag(config=True)
    api_page_max_limit = Integer(200, help="Largest page size a client may ask for.").tag(
        config=True
    )
    token_expires_in_max_seconds = Integer(
        0, help="Longest lifetime of a token made through the API, in seconds; 0 = no limit."
    ).tag(config=True)
    allow_named_servers = Bool(
        False, help="Let users run several named servers besides their default one."
    ).tag(config=True)
    named_server_limit_per_user = Integer(
        0, help="Most named servers a user may have; 0 = no limit."
    ).tag(config=True)
    spawner_class = Unicode(
        "",
        help="Import path of the spawner class that runs user servers, e.g. "
        "'mypackage.MySpawner'. Until one is set, starting a server answers 503.",
    ).tag(config=True)

    @validate("spawner_class")
    def _importable_spawner(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value:
            load_spawner_class(value)
        return value

    slow_spawn_timeout = Float(
        10.0,
        help="Seconds a start request waits for the server before answering 202 (the start "
        "goes on in the background).",
    ).tag(config=True)
    slow_stop_timeout = Float(10.0, help="Seconds a stop request waits before answering 202.").tag(
        config=True
    )
    cleanup_servers = Bool(
        False,
        help="Stop all user servers when the hub shuts down. Off by default, so restarting "
        "the hub never interrupts anyone's work.",
    ).tag(config=True)
    auth_cache_ttl = Float(
        5.0,
        help="Seconds a resolved API token is remembered, to save two queries per request. "
        "Changes made through the hub take effect at once; changes made directly on the "
        "database (hub-admin --db) within this time. 0 turns the cache off.",
    ).tag(config=True)
    max_body_size = Integer(
        1024 * 1024, help="Largest request body the API accepts, in bytes."
    ).tag(config=True)
    allow_password_token_requests = Bool(
        True,
        help="Allow POST /hub/api/users/NAME/tokens with {auth: {username, password}} for "
        "native accounts, so people can get a first token from a script.",
    ).tag(config=True)

    def hub_context(self, roles: RoleTable) -> HubContext:
        """What units of work need to know of these settings."""
        return HubContext(
            base_url=self.base_url,
            roles=roles,
            page_default_limit=min(self.api_page_default_limit, self.api_page_max_limit),
            page_max_limit=self.api_page_max_limit,
            token_expires_in_max=self.token_expires_in_max_seconds,
            allow_named_servers=self.allow_named_servers,
            named_server_limit_per_user=self.named_server_limit_per_user,
        )

    @validate("base_url")
    def _valid_base_url(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not value.startswith("/"):
            raise TraitError(f"base_url must start with '/', not {value!r}")
        if any(c in value for c in "?#\\ ") or "//" in value:
            raise TraitError(f"base_url must be a plain path, not {value!r}")
        return value if value.endswith("/") else value + "/"

    @validate("port")
    def _valid_port(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= 65535:
            raise TraitError(f"port must be between 0 and 65535, not {value}")
        return value

    @validate(
        "db_pool_size",
        "api_page_default_limit",
        "api_page_max_limit",
        "max_body_size",
    )
    def _positive(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1, not {value}")
        return value

    @validate("token_expires_in_max_seconds", "named_server_limit_per_user", "auth_cache_ttl")
    def _not_negative(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value < 0:
            raise TraitError(f"{proposal['trait'].name} must not be negative, not {value}")
        return value

    @validate("slow_spawn_timeout", "slow_stop_timeout")
    def _positive_float(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError(f"{proposal['trait'].name} must be positive, not {value}")
        return value
