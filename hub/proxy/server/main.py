"""`atrium proxy`: parse configurable-http-proxy's flags and run the proxy.

The public listener (HTTP or, given a key and certificate, HTTPS) forwards
traffic; the API listener (loopback by default) serves the routes API. The
token comes from the CONFIGPROXY_AUTH_TOKEN environment variable; without one
the proxy refuses to start unless `--insecure-no-auth` asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable

from hub.log import setup_logging
from hub.proxy.server.api import RoutesAPI
from hub.proxy.server.forward import Limits, ProxyServer, ProxySettings, RedirectToHTTPS
from hub.proxy.server.hubfeed import HubFeed
from hub.proxy.server.routes import RouteTable
from hub.proxy.server.workers import LISTEN_FD_FLAG, WORKER_FD_FLAG, PrimaryLink, WorkerPool

log = logging.getLogger("atrium.proxy")

TOKEN_ENV = "CONFIGPROXY_AUTH_TOKEN"  # noqa: S105 (a variable name)
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="atrium proxy",
        description="Atrium's HTTP and WebSocket proxy (configurable-http-proxy compatible).",
    )
    p.add_argument("--ip", default="", help="public address to listen on (default: all)")
    p.add_argument("--port", type=int, default=8000, help="public port (default 8000)")
    p.add_argument("--api-ip", default="127.0.0.1", help="routes API address")
    p.add_argument("--api-port", type=int, default=None, help="routes API port (default port+1)")
    p.add_argument("--default-target", help="where requests without a route go (the hub)")
    p.add_argument("--error-target", help="where error pages come from: TARGET/CODE?url=...")
    p.add_argument("--ssl-key", help="TLS private key file (with --ssl-cert: serve HTTPS)")
    p.add_argument("--ssl-cert", help="TLS certificate chain file")
    p.add_argument("--host-routing", action="store_true", help="routes start with a host name")
    p.add_argument(
        "--redirect-port", type=int, help="also listen here and redirect plain HTTP to HTTPS"
    )
    p.add_argument(
        "--redirect-to", type=int, help="the HTTPS port redirects point to (default --port)"
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="on SIGTERM, seconds requests in flight may take to finish",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving traffic, sharing the port (default 1; one per core is best)",
    )
    p.add_argument(
        "--routes-from",
        metavar="URL",
        help="follow the hub's route table at URL (the hub's /hub/api/proxy/watch): "
        "for proxy replicas; the routes API still answers",
    )
    p.add_argument(
        "--routes-wait",
        type=float,
        default=10.0,
        help="with --routes-from, seconds to wait for the table before serving anyway",
    )
    p.add_argument(WORKER_FD_FLAG, type=int, help=argparse.SUPPRESS)
    p.add_argument(LISTEN_FD_FLAG, type=int, action="append", help=argparse.SUPPRESS)
    p.add_argument("--log-level", default="info", type=str.lower, choices=sorted(LOG_LEVELS))
    p.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="text lines, or one JSON object per line (as the hub's --log-format)",
    )
    p.add_argument("--timeout", type=float, default=None, help="(accepted for compatibility)")
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="run the routes API without a token (local tests only)",
    )
    args = p.parse_args(argv)
    if bool(args.ssl_key) != bool(args.ssl_cert):
        p.error("--ssl-key and --ssl-cert go together")
    if args.redirect_port is not None and not args.ssl_key:
        p.error("--redirect-port redirects to HTTPS: it needs --ssl-key and --ssl-cert")
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be between 0 and 65535, not {args.port}")
    if not 1 <= args.workers <= 64:
        p.error(f"--workers must be between 1 and 64, not {args.workers}")
    if not 0 <= args.routes_wait <= 3600:
        p.error(f"--routes-wait must be between 0 and 3600 seconds, not {args.routes_wait:g}")
    if args.routes_from and not args.routes_from.startswith(("http://", "https://")):
        p.error(f"--routes-from must be an http(s):// URL, not {args.routes_from!r}")
    if args.api_port is None:
        args.api_port = args.port + 1 if args.port else 0
    return args


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Modern server defaults: TLS 1.2 or newer, no compression, server cipher order."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def worker_argv(argv: list[str]) -> list[str]:
    """The primary's flags as a worker gets them: without --workers."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


class Proxy:
    """One proxy process: the public listener(s) and, in the primary, the API."""

    def __init__(self, args: argparse.Namespace, tls: ssl.SSLContext | None) -> None:
        self.args = args
        self.tls = tls
        self.table = RouteTable()
        self.server = ProxyServer(
            self.table,
            ProxySettings(
                default_target=args.default_target,
                error_target=args.error_target,
                host_routing=args.host_routing,
                tls=tls is not None,
                limits=Limits(),
            ),
        )
        self.listener: asyncio.Server | None = None  # the primary's own
        self.listeners: list[asyncio.Server] = []
        self.stop = asyncio.Event()

    async def listen(self) -> int:
        """Bind the public port, or in a worker, serve on the sockets of its slot.

        SO_REUSEPORT: each worker slot has its own socket on the port and the kernel
        spreads new connections evenly over them; a new proxy may also bind beside
        this one while it drains.
        """
        loop = asyncio.get_running_loop()
        if self.args.listen_fd:
            for fd in self.args.listen_fd:
                server = await loop.create_server(
                    self.server.protocol, sock=socket.socket(fileno=fd), ssl=self.tls
                )
                self.listeners.append(server)
            return int(self.listeners[0].sockets[0].getsockname()[1])
        self.listener = await loop.create_server(
            self.server.protocol,
            self.args.ip or None,
            self.args.port,
            ssl=self.tls,
            reuse_address=True,
            reuse_port=True,
            backlog=1024,
        )
        self.listeners.append(self.listener)
        return int(self.listener.sockets[0].getsockname()[1])

    def on_signals(self, reload: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        if reload is not None:
            loop.add_signal_handler(signal.SIGHUP, reload)
        else:
            loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the primary reloads us

    async def drain(self) -> None:
        log.info("Shutting down: finishing requests in flight")
        for listener in self.listeners:
            listener.close()
        await self.server.drain(self.args.drain_timeout)


async def serve_worker(args: argparse.Namespace, tls: ssl.SSLContext | None) -> None:
    """A worker: take the primary's table, then serve until told to stop or orphaned."""
    proxy = Proxy(args, tls)
    proxy.on_signals()
    link = PrimaryLink(args.worker_fd, proxy.table, proxy.server.metrics)
    await link.connect()
    await proxy.listen()
    proxy.server.start_sweeper()
    link.ready()
    following = asyncio.ensure_future(link.run(proxy.stop.set))
    await proxy.stop.wait()
    await proxy.drain()
    link.report()
    following.cancel()
    await proxy.server.stop()


async def serve(
    args: argparse.Namespace, token: str | None, tls: ssl.SSLContext | None, argv: list[str]
) -> None:
    proxy = Proxy(args, tls)
    loop = asyncio.get_running_loop()
    pool: WorkerPool | None = None
    started = asyncio.Event()
    reloading: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        await started.wait()  # a SIGHUP during start-up reloads once it is done
        if proxy.tls is not None:
            try:
                tls_context(args.ssl_cert, args.ssl_key)  # both files readable and a pair?
                # the live context takes the new pair: new handshakes use it
                proxy.tls.load_cert_chain(args.ssl_cert, args.ssl_key)
            except (OSError, ssl.SSLError) as e:
                log.error("Reload: cannot load the TLS key and certificate (kept the old): %s", e)
                return  # new workers would not start with them either
            log.info("Reload: TLS certificate loaded again")
        if pool is not None:
            await pool.reload(args.drain_timeout)

    def start_reload() -> None:
        task = asyncio.ensure_future(reload())
        reloading.add(task)
        task.add_done_callback(reloading.discard)

    # first of all, so that no signal finds the default action (SIGHUP would kill us)
    proxy.on_signals(start_reload)
    hub_feed = None
    if args.routes_from:
        hub_feed = HubFeed(args.routes_from, token, proxy.table)
        await hub_feed.start(args.routes_wait)
    port = await proxy.listen()
    redirect = None
    if args.redirect_port is not None:
        https_port = args.redirect_to or port
        redirect = await loop.create_server(
            lambda: RedirectToHTTPS(https_port),
            args.ip or None,
            args.redirect_port,
            reuse_address=True,
        )
    proxy.server.start_sweeper()
    routes_api = RoutesAPI(proxy.table, token, proxy.server.metrics)
    api = await loop.create_server(
        routes_api.protocol, args.api_ip, args.api_port, reuse_address=True
    )
    if args.workers > 1:
        assert proxy.listener is not None
        pool = WorkerPool(
            proxy.table,
            proxy.server.metrics,
            worker_argv(argv),
            args.workers - 1,
            list(proxy.listener.sockets),
        )
        proxy.server.metrics.gauges["processes"] = (
            "Processes serving traffic (this one and its ready workers)",
            pool.serving,
        )
        await pool.start()
    started.set()
    log.info(
        "Proxying %s://%s:%s with %d process(es) (routes API on %s:%s)",
        "https" if tls else "http",
        args.ip or "*",
        port,
        args.workers,
        args.api_ip,
        args.api_port,
    )
    await proxy.stop.wait()
    if redirect is not None:
        redirect.close()
    stopping = [proxy.drain()]
    if pool is not None:
        stopping.append(pool.stop(args.drain_timeout))
    await asyncio.gather(*stopping)
    if hub_feed is not None:
        await hub_feed.stop()
    api.close()
    await proxy.server.stop()
    log.info("Stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(LOG_LEVELS[args.log_level], args.log_format)
    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not args.insecure_no_auth:
        print(
            f"atrium proxy: set {TOKEN_ENV} (the routes API needs a token); "
            "--insecure-no-auth runs without one, for local tests only",
            file=sys.stderr,
        )
        sys.exit(2)
    tls = None
    if args.ssl_key:
        try:
            tls = tls_context(args.ssl_cert, args.ssl_key)
        except (OSError, ssl.SSLError) as e:
            print(f"atrium proxy: cannot load the TLS key and certificate: {e}", file=sys.stderr)
            sys.exit(2)
    import uvloop

    if args.worker_fd is not None:
        uvloop.run(serve_worker(args, tls))
    else:
        uvloop.run(serve(args, token, tls, list(sys.argv[2:] if argv is None else argv)))


if __name__ == "__main__":
    main()
