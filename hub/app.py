"""The `atrium` command: wiring only.

Start-up is a pipeline of small steps, each in its own module:
config (`hub.settings`) -> logging (`hub.log`) -> secrets (`hub.secretfiles`) ->
database (`hub.db`) -> roles and first admin (`hub.bootstrap`) -> proxy link
(`hub.proxy.supervisor`) -> spawners (`hub.spawn`) -> routes (`hub.web`) ->
adopt the servers a previous hub left (`Orchestrator.adopt`) -> listen -> start
or adopt the proxy (whose routes then follow the adopted servers). Config
loading is `hub.command`; the subcommands `upgrade-db` and `generate-config`
are `hub.subcommands`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from traitlets import TraitError

import hub
from hub import bootstrap, secretfiles
from hub.auth.refresh import before_start_hook
from hub.auth.registry import load_authenticators
from hub.authcache import RequesterCache
from hub.command import HubCommand
from hub.culler import Culler, CullerTask
from hub.db import migrate
from hub.db.engine import Database
from hub.errors import ConfigError
from hub.proxy.client import normalize_prefix
from hub.proxy.supervisor import connect_host, proxy_from_settings
from hub.rbac.roles import RoleTable
from hub.services import ServiceSupervisor, parse_services, sync_services
from hub.spawn import Orchestrator, SpawnLimits, SpawnTimeouts, spawner_factory
from hub.state import HubState
from hub.subcommands import GenerateConfig, UpgradeDB
from hub.welcome import print_welcome

log = logging.getLogger("atrium")


class AtriumApp(HubCommand):
    name = "atrium"
    version = hub.__version__
    description = "Atrium: a multi-user Jupyter hub. Runs the hub."
    subcommands = {
        "upgrade-db": (UpgradeDB, UpgradeDB.description),
        "generate-config": (GenerateConfig, GenerateConfig.description),
    }

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.subapp is None:
            # checked with the other settings, before anything starts
            self.culling = Culler(config=self.config)

    def build(self) -> tuple[HubState, Any, bootstrap.InitialAdmin]:
        """Every start-up step before listening; returns the state, the app and the admin."""
        from hub.web import make_app

        s = self.settings
        branding = s.make_branding()
        secrets = secretfiles.load_secrets(
            Path(s.cookie_secret_file), Path(s.proxy_auth_token_file)
        )
        roles = RoleTable.from_config(s.load_roles)
        auth = load_authenticators(
            s.authenticator_specs(), self.config, s.ip, secrets.cookie_secret
        )
        auth.throttle = s.throttle_rules()
        # checked before the database is opened: a bad spawner setting stops the hub here
        factory = spawner_factory(s.spawner_class, self.config)
        services = parse_services(s.services)
        db = Database(s.db_url, pool_size=s.db_pool_size)
        try:
            migrate.check_current(db.engine)
            with db.session() as session:
                # the first admin exists before config roles may name it; it is a native
                # account, made only when native accounts are a way in
                admin = bootstrap.InitialAdmin(s.initial_admin_name, None, False)
                if auth.first("NativeAuthenticator") is not None:
                    admin = bootstrap.ensure_initial_admin(
                        session, s.initial_admin_name, s.initial_admin_password
                    )
                elif not bootstrap.has_admin(session) and not any(
                    a.admin_users for a in auth.authenticators
                ):
                    log.warning(
                        "No admin yet, and no c.Authenticator.admin_users: nobody can use "
                        "the admin panel until one is named there"
                    )
                service_tokens = sync_services(session, services, s.base_url)
                bootstrap.sync_roles(session, s.load_roles)
        except BaseException:
            db.close()
            raise
        culling = self.culling
        ctx = dataclasses.replace(s.hub_context(roles), kernel_cull_timeout=culling.kernel_timeout)
        if any(a.manage_groups for a in auth.authenticators):
            ctx = dataclasses.replace(ctx, groups_managed=True)
        proxy = proxy_from_settings(s, secrets.proxy_token, db, ctx)
        orchestrator = Orchestrator(
            db,
            ctx,
            factory,
            SpawnTimeouts(s.slow_spawn_timeout, s.slow_stop_timeout, s.spawn_page_wait),
            routes=proxy,
            limits=SpawnLimits(s.concurrent_spawn_limit, s.active_server_limit),
        )
        state = HubState(
            db=db,
            ctx=ctx,
            orchestrator=orchestrator,
            max_body_size=s.max_body_size,
            cookie_max_age_days=s.cookie_max_age_days,
            frame_ancestors=s.csp_frame_ancestors,
            branding=branding,
            redirect_to_server=s.redirect_to_server,
            allow_password_token_requests=s.allow_password_token_requests,
            requester_cache=RequesterCache(ttl=s.auth_cache_ttl),
            spawner_class=s.spawner_class,
            proxy=proxy,
            auth=auth,
        )
        state.services = {spec.name: spec for spec in services}
        if any(spec.managed for spec in services):
            state.service_supervisor = ServiceSupervisor(services, service_tokens, s.base_url)
        if proxy is not None:
            proxy.service_routes = {
                normalize_prefix(spec.prefix(s.base_url)): spec.url for spec in services if spec.url
            }
        policy = culling.policy()
        if policy is not None:
            state.culler = CullerTask(state, policy)
        orchestrator.credentials_revoked = state.requester_cache.invalidate
        orchestrator.before_start = before_start_hook(state)
        return state, make_app(state, s.base_url, secrets.cookie_secret), admin

    def start(self) -> None:
        if self.subapp is not None:
            self.subapp.start()
            return
        asyncio.run(self.serve())

    async def serve(self) -> None:
        from hub.web import listen

        state, app, admin = self.build()
        s = self.settings
        # from the moment anything listens: a SIGTERM while the proxy starts is a clean stop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            # settled before anyone can ask about them, and before the proxy's routes
            # are reconciled with the database
            await state.orchestrator.adopt()
        except BaseException:
            state.db.close()
            raise
        if state.proxy is None:
            server, port = listen(app, s.ip, s.port, s.max_body_size, behind_proxy=False)
            state.orchestrator.hub_url = hub_connect_url(s, port)
        else:
            # the proxy takes the public address; the hub listens behind it
            server, hub_port = listen(
                app,
                s.hub_ip,
                s.hub_port,
                s.max_body_size,
                trusted_downstream=s.trusted_downstream_ips,
            )
            state.orchestrator.hub_url = hub_connect_url(s, hub_port)
            try:
                await state.proxy.start(f"http://{connect_host(s.hub_ip)}:{hub_port}")
            except BaseException:
                server.stop()
                await state.proxy.shutdown()
                state.db.close()
                raise
            port = s.port
        url = f"http://{connect_host(s.ip)}:{port}{s.base_url}hub/"
        log.info("Atrium %s is running at %s", hub.__version__, url)
        log.info("Ways to log in: %s", ", ".join(a.label for a in state.auth.authenticators))
        start_background(state)
        print_welcome(url, admin)
        # authenticators get ready in the background (an OIDC provider's discovery
        # document): a provider that is slow or down must not hold the hub's start
        auth_start = asyncio.ensure_future(start_authenticators(state))
        await stop.wait()
        log.info("Shutting down")
        auth_start.cancel()
        await asyncio.gather(auth_start, return_exceptions=True)
        await shut_down(server, state, stop_servers=s.cleanup_servers)
        log.info("Stopped")


def hub_connect_url(s: Any, port: int) -> str:
    """How users' servers reach the hub: c.Hub.hub_connect_url, else where the hub
    listens (`port`: the port it got), on hub_ip behind a proxy or ip without one."""
    if s.hub_connect_url:
        return str(s.hub_connect_url)
    ip = s.ip if s.proxy == "none" else s.hub_ip
    return f"http://{connect_host(ip)}:{port}"


def start_background(state: HubState) -> None:
    """Once the hub listens (and the proxy routes to it): the event-loop monitor, the
    culler, the managed services."""
    state.loop_monitor.start()
    if state.culler is not None:
        state.culler.start()
    if state.service_supervisor is not None:
        state.service_supervisor.start(state.orchestrator.hub_url)


async def start_authenticators(state: HubState) -> None:
    """Each authenticator's `start`; a failure is logged, never fatal (it is tried again
    at the first login)."""
    auths = state.auth.authenticators
    results = await asyncio.gather(*(a.start(state) for a in auths), return_exceptions=True)
    for auth, result in zip(auths, results, strict=True):
        if isinstance(result, Exception):
            log.warning("Authenticator %s could not get ready: %s", auth.ident, result)


async def shut_down(server: Any, state: HubState, stop_servers: bool) -> None:
    """Stop listening, settle in-flight work, let go of the proxy and the database.

    User servers keep running unless `stop_servers`; a proxy the hub started keeps
    running unless configured to stop with the hub.
    """
    server.stop()
    await state.loop_monitor.stop()
    if state.culler is not None:
        await state.culler.stop()
    if state.service_supervisor is not None:
        await state.service_supervisor.stop()
    if stop_servers:
        await state.orchestrator.stop_all()
    await state.orchestrator.shutdown()
    if state.proxy is not None:
        await state.proxy.shutdown()
    await server.close_all_connections()
    state.db.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["proxy"]:
        # the proxy is its own lean process: no hub imports, no traitlets
        from hub.proxy.server.main import main as proxy_main

        proxy_main(args[1:])
        return
    try:
        app = AtriumApp.instance()
        app.initialize(argv)
        app.start()
    except (ConfigError, TraitError) as e:
        print(f"atrium: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
