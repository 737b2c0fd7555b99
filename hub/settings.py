"""The hub's user-facing settings (`c.Hub.*` in a config file).

Every setting has help text; `atrium generate-config` writes them all out
commented, and `tests/test_config.py` fails if one is missing there.
"""

from __future__ import annotations

from collections.abc import Callable
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
    Union,
    validate,
)
from traitlets.config import Configurable

from hub import branding
from hub.errors import ConfigError
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


def _logo_path(value: str) -> str:
    branding.read_logo(value)
    return value


# each branding setting's check: the value to keep, or BrandingError naming the setting
_BRANDING_CHECKS: dict[str, Callable[[str], str]] = {
    "title": branding.check_title,
    "logo_file": _logo_path,
    "brand_colour": branding.check_brand_colour,
    "accent_colour": lambda value: branding.parse_colour("accent_colour", value),
    "announcement": branding.check_announcement,
    "announcement_url": branding.check_announcement_url,
}


class Hub(Configurable):
    """Where the hub listens, its database, secrets, limits and first admin."""

    ip = Unicode(
        "127.0.0.1",
        help="Public address: where the proxy listens when c.Hub.proxy is set, else where the "
        "hub itself listens. '' means every interface.",
    ).tag(config=True)
    port = Integer(
        8000,
        help="Public port: the proxy's when c.Hub.proxy is set, else the hub's own.",
    ).tag(config=True)
    hub_ip = Unicode(
        "127.0.0.1",
        help="Address the hub listens on behind a proxy (c.Hub.proxy set); the proxy must "
        "reach it there. Unused when c.Hub.proxy is 'none'.",
    ).tag(config=True)
    hub_port = Integer(8081, help="Port the hub listens on behind a proxy (c.Hub.proxy set).").tag(
        config=True
    )
    hub_connect_url = Unicode(
        "",
        help="How users' servers reach the hub's API, e.g. 'http://hub:8081' on Kubernetes "
        "(the hub's Service). '' derives it from where the hub listens (hub_ip and "
        "hub_port, or ip and port without a proxy; 0.0.0.0 becomes 127.0.0.1), which is "
        "right when servers run on the hub's machine.",
    ).tag(config=True)

    @validate("hub_connect_url")
    def _valid_connect_url(self, proposal: Any) -> str:
        from urllib.parse import urlsplit

        value = str(proposal["value"]).rstrip("/")
        if value == "":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise TraitError(
                f"hub_connect_url must be an http:// or https:// URL without a path, not {value!r}"
            )
        return value

    proxy = Enum(
        ["none", "atrium", "chp"],
        "atrium",
        help="The proxy in front of the hub and users' servers: 'none' (the hub serves on "
        "c.Hub.ip:port itself and no user routes are made), 'atrium' (the built-in proxy, "
        "`atrium proxy`) or 'chp' (configurable-http-proxy). With a proxy, it takes "
        "c.Hub.ip:port, the hub moves to c.Hub.hub_ip:hub_port, and the hub adds a route "
        "/user/NAME/ for every running server.",
    ).tag(config=True)
    proxy_should_start = Bool(
        True,
        help="Start the proxy as a subprocess (and restart it if it exits). False: the "
        "proxy is run separately and the hub only talks to its API at c.Hub.proxy_api_url.",
    ).tag(config=True)
    proxy_cmd = List(
        Unicode(),
        help="Command that runs the proxy, before the flags the hub adds (--ip --port "
        "--api-ip --api-port --default-target --error-target). Empty: `atrium proxy` for "
        "c.Hub.proxy = 'atrium', `configurable-http-proxy` (from PATH) for 'chp'. Extra "
        "flags may follow, e.g. ['configurable-http-proxy', '--log-level=warn'].",
    ).tag(config=True)
    concurrent_spawn_limit = Integer(
        100,
        help="Servers that may be starting at once; more start requests get 429 with "
        "Retry-After (a class arriving together waits its turn instead of overloading "
        "the machine). 0: no limit.",
    ).tag(config=True)
    active_server_limit = Integer(
        0,
        help="Servers that may be running (or starting or stopping) at once; more start "
        "requests get 429 with Retry-After. 0: no limit.",
    ).tag(config=True)
    proxy_workers = Integer(
        0,
        help="Processes the built-in proxy (c.Hub.proxy = 'atrium') serves traffic with, "
        "sharing the public port; 0: one per CPU, at most 4.",
    ).tag(config=True)
    proxy_api_url = Unicode(
        "http://127.0.0.1:8001",
        help="URL of the proxy's routes API (configurable-http-proxy's). A proxy the hub "
        "starts gets this host and port as --api-ip and --api-port. '' (with "
        "c.Hub.proxy_should_start = False): drive no API; proxy replicas follow the hub's "
        "table at /hub/api/proxy/watch (`atrium proxy --routes-from`).",
    ).tag(config=True)
    proxy_check_interval = Float(
        30.0,
        help="Seconds between checks of the proxy's routes against the running servers "
        "(missing routes are added, the hub's stale ones removed; others are left alone).",
    ).tag(config=True)
    proxy_start_timeout = Float(
        10.0, help="Seconds the hub waits for a proxy it starts to answer on its API."
    ).tag(config=True)
    proxy_api_timeout = Float(
        10.0, help="Seconds one call to the proxy's routes API may take."
    ).tag(config=True)
    proxy_stop_on_exit = Bool(
        False,
        help="Stop the proxy the hub started when the hub shuts down. Off by default: the "
        "proxy keeps serving users while the hub restarts, and the next hub adopts it.",
    ).tag(config=True)
    proxy_pid_file = Unicode(
        "atrium_proxy.pid",
        help="File where the hub notes the PID of the proxy it started, so that the next hub "
        "can watch the proxy it adopts; '' for none (then the API is watched instead).",
    ).tag(config=True)
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
    cookie_max_age_days = Float(
        14.0,
        help="Days a login lasts in the browser (the signed hub cookie).",
    ).tag(config=True)
    csp_frame_ancestors = Unicode(
        "'self'",
        help="Who may frame the hub's pages: the Content-Security-Policy frame-ancestors "
        "sources, e.g. \"'self' https://lms.example.edu\".",
    ).tag(config=True)
    title = Unicode(
        "Atrium",
        help="The hub's name for this class or lab, shown in the header of every page and "
        "in the browser's title bar, e.g. 'Physics 101 Jupyter'.",
    ).tag(config=True)
    logo_file = Unicode(
        "",
        help="A logo shown in the header of every page: the path of a PNG, SVG, JPEG or WebP "
        "file of at most 1 MiB, read once at start-up and served at /hub/logo. '' for none.",
    ).tag(config=True)
    brand_colour = Unicode(
        "#2f5fd0",
        help="The colour of the header and buttons, as #rgb or #rrggbb. White text on it must "
        "reach a contrast of 4.5:1 (WCAG AA), so the hub refuses colours that are too light.",
    ).tag(config=True)
    accent_colour = Unicode(
        "#f2b705",
        help="The colour of the announcement banner and the line under the header, as #rgb "
        "or #rrggbb; text on it is black or white, whichever reads better.",
    ).tag(config=True)
    announcement = Unicode(
        "",
        help="A message shown in a banner on every page (plain text, one line), e.g. "
        "'The hub restarts on Friday at 18:00'. '' for none.",
    ).tag(config=True)
    announcement_url = Unicode(
        "",
        help="Where the banner's 'More' link leads: an http:// or https:// URL, or a path on "
        "this site starting with '/'. '' for no link.",
    ).tag(config=True)
    redirect_to_server = Bool(
        True,
        help="Where /hub/ and a login without `next` lead: True, straight to the person's "
        "running server, or to the page that starts it in one click (JupyterHub's default); "
        "False, to their home page (/hub/home), to choose among named servers first.",
    ).tag(config=True)

    @validate(
        "title", "logo_file", "brand_colour", "accent_colour", "announcement", "announcement_url"
    )
    def _branding(self, proposal: Any) -> str:
        check = _BRANDING_CHECKS[proposal["trait"].name]
        try:
            return check(str(proposal["value"]))
        except branding.BrandingError as e:
            raise TraitError(str(e)) from None

    def make_branding(self) -> branding.Branding:
        """The branding pages show; the logo file is read here (and checked again: it may
        have changed since the settings were loaded)."""
        try:
            logo = branding.read_logo(self.logo_file)
        except branding.BrandingError as e:
            raise ConfigError(str(e)) from None
        return branding.Branding(
            title=self.title,
            brand_colour=self.brand_colour,
            accent_colour=self.accent_colour,
            announcement=self.announcement,
            announcement_url=self.announcement_url,
            logo=logo,
        )

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
    services = List(
        Dict(),
        help="Services (JupyterHub's shape): [{'name': ..., 'url': ..., 'command': [...], "
        "'api_token': ..., 'environment': {...}, 'cwd': ..., 'oauth_no_confirm': ..., "
        "'oauth_client_allowed_scopes': [...], 'oauth_redirect_uri': ..., 'info': {...}, "
        "'display': ...}]. With a command the hub runs it and restarts it if it exits; with "
        "a url it is proxied at /services/<name>/ and people log in to it through the hub. "
        "Give a service roles with load_roles' 'services' key.",
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
        "spawners.local.LocalProcessSpawner",
        help="Import path of the spawner class that runs user servers: the local process "
        "spawner (configure it as c.LocalProcessSpawner), "
        "or your own Spawner subclass. "
        "'' runs no servers (starting one answers 503).",
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
    spawn_page_wait = Float(
        1.0,
        help="Seconds the spawn page's Start button waits for the server before showing "
        "the live progress page instead (0: always show the progress page).",
    ).tag(config=True)

    @validate("spawn_page_wait")
    def _page_wait_in_range(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not 0 <= value <= 3600:
            raise TraitError(f"{proposal['trait'].name} must be seconds in [0, 3600], not {value}")
        return value

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
    authenticator_class = Union(
        [Unicode(), List(Unicode())],
        default_value="native",
        help="How people log in: 'native' (accounts in the hub's database, the default), "
        "'pam' (the machine's Unix accounts), 'oidc' (any OpenID Connect provider: "
        "Keycloak, Authentik...), 'github', 'gitlab', 'google', 'entra' (Microsoft Entra "
        "ID), 'shared' (a workshop's shared password), 'dummy' (tests and demos only), or "
        "an import path. A list offers several on one login page, e.g. ['oidc', 'native'] "
        "for students with the university's login and guest instructors with hub "
        "accounts. Each is configured as its class: c.GenericOIDCAuthenticator.client_id, "
        "and c.Authenticator.* for what they share (allowed_users, admin_users...).",
    ).tag(config=True)

    @validate("authenticator_class")
    def _authenticators(self, proposal: Any) -> Any:
        value = proposal["value"]
        specs = [value] if isinstance(value, str) else list(value)
        if not specs or not all(isinstance(s, str) and s for s in specs):
            raise TraitError("authenticator_class must name at least one authenticator")
        return value

    def authenticator_specs(self) -> list[str]:
        value = self.authenticator_class
        return [value] if isinstance(value, str) else list(value)

    trusted_downstream_ips = List(
        Unicode(),
        help="Addresses of load balancers or ingress controllers in front of the proxy, "
        "whose X-Forwarded-For entries are skipped to find the client's own address (for "
        "login throttling and logs), e.g. ['10.0.0.7']. Empty: the client is whoever "
        "connected to the proxy.",
    ).tag(config=True)

    @validate("trusted_downstream_ips")
    def _ip_list(self, proposal: Any) -> list[str]:
        import ipaddress

        for value in proposal["value"]:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise TraitError(
                    f"trusted_downstream_ips must hold IP addresses, not {value!r}"
                ) from None
        return list(proposal["value"])

    login_failures_free = Integer(
        5,
        help="Failed logins to one account (from browsers that never logged in to it) "
        "before each further try must wait; the wait doubles with every failure, up to "
        "c.Hub.login_delay_max. A browser that logged in to the account before counts "
        "apart (with twice as many), so guessing at someone's account never locks them out.",
    ).tag(config=True)
    login_address_failures_free = Integer(
        100,
        help="Failed logins from one client address (IPv6: one /64) before it must wait. "
        "High, because a whole class may share one address behind a NAT.",
    ).tag(config=True)
    login_delay_max = Float(
        900.0, help="The longest wait, in seconds, after repeated failed logins."
    ).tag(config=True)
    login_failures_forget = Float(
        3600.0,
        help="Seconds after which failed logins are forgotten (counted from the last one).",
    ).tag(config=True)

    def throttle_rules(self) -> Any:
        from hub.auth.throttle import ThrottleRules

        return ThrottleRules(
            account_free=self.login_failures_free,
            device_free=self.login_failures_free * 2,
            address_free=self.login_address_failures_free,
            max_delay=self.login_delay_max,
            forget_after=self.login_failures_forget,
        )

    allow_password_token_requests = Bool(
        True,
        help="Allow POST /hub/api/users/NAME/tokens with {auth: {username, password}} for "
        "native accounts, so people can get a first token from a script.",
    ).tag(config=True)

    @validate("proxy_api_url")
    def _valid_api_url(self, proposal: Any) -> str:
        from urllib.parse import urlsplit

        value = str(proposal["value"])
        if value == "":
            return value  # proxies follow /hub/api/proxy/watch instead
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TraitError(f"proxy_api_url must be an http:// URL or '', not {value!r}")
        return value

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

    @validate("port", "hub_port")
    def _valid_port(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= 65535:
            raise TraitError(f"{proposal['trait'].name} must be between 0 and 65535, not {value}")
        return value

    @validate(
        "db_pool_size",
        "api_page_default_limit",
        "api_page_max_limit",
        "max_body_size",
        "login_failures_free",
        "login_address_failures_free",
    )
    def _positive(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1, not {value}")
        return value

    def check_combinations(self) -> None:
        """Settings that are valid alone but not together (raised before anything is made)."""
        if self.proxy != "none" and not self.proxy_api_url and self.proxy_should_start:
            raise ConfigError(
                "c.Hub.proxy_api_url is empty, so the hub cannot drive a proxy it starts; "
                "set it, or c.Hub.proxy_should_start = False for proxies that follow "
                "/hub/api/proxy/watch (atrium proxy --routes-from)"
            )

    @validate("csp_frame_ancestors")
    def _frame_ancestors(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if not value or any(c in value for c in ';,\r\n"') or not value.isprintable():
            raise TraitError(
                "csp_frame_ancestors must be space-separated CSP sources such as "
                f"\"'self' https://lms.example.edu\", not {value!r}"
            )
        return value

    @validate("proxy_workers")
    def _workers(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= 64:
            raise TraitError(f"proxy_workers must be between 0 (one per CPU) and 64, not {value}")
        return value

    @validate(
        "token_expires_in_max_seconds",
        "named_server_limit_per_user",
        "auth_cache_ttl",
        "concurrent_spawn_limit",
        "active_server_limit",
    )
    def _not_negative(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value < 0:
            raise TraitError(f"{proposal['trait'].name} must not be negative, not {value}")
        return value

    @validate(
        "slow_spawn_timeout",
        "slow_stop_timeout",
        "proxy_check_interval",
        "cookie_max_age_days",
        "proxy_start_timeout",
        "proxy_api_timeout",
        "login_delay_max",
        "login_failures_forget",
    )
    def _positive_float(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError(f"{proposal['trait'].name} must be positive, not {value}")
        return value
