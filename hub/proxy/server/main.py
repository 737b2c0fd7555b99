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
import ssl
import sys

from hub.proxy.server.api import make_api
from hub.proxy.server.forward import Limits, ProxyServer, ProxySettings, RedirectToHTTPS
from hub.proxy.server.routes import RouteTable

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
    p.add_argument("--log-level", default="info", type=str.lower, choices=sorted(LOG_LEVELS))
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


async def serve(args: argparse.Namespace, token: str | None, tls: ssl.SSLContext | None) -> None:
    from tornado.httpserver import HTTPServer

    table = RouteTable()
    proxy = ProxyServer(
        table,
        ProxySettings(
            default_target=args.default_target,
            error_target=args.error_target,
            host_routing=args.host_routing,
            tls=tls is not None,
            limits=Limits(),
        ),
    )
    loop = asyncio.get_running_loop()
    # SO_REUSEPORT: a new proxy can bind while this one drains (graceful reload)
    server = await loop.create_server(
        proxy.protocol,
        args.ip or None,
        args.port,
        ssl=tls,
        reuse_address=True,
        reuse_port=True,
        backlog=1024,
    )
    redirect = None
    if args.redirect_port is not None:
        https_port = args.redirect_to or server.sockets[0].getsockname()[1]
        redirect = await loop.create_server(
            lambda: RedirectToHTTPS(https_port),
            args.ip or None,
            args.redirect_port,
            reuse_address=True,
        )
    proxy.start_sweeper()
    api = HTTPServer(make_api(table, token, proxy.metrics))
    api.listen(args.api_port, args.api_ip)
    port = server.sockets[0].getsockname()[1]
    log.info(
        "Proxying %s://%s:%s (routes API on %s:%s)",
        "https" if tls else "http",
        args.ip or "*",
        port,
        args.api_ip,
        args.api_port,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Shutting down: finishing requests in flight")
    server.close()
    if redirect is not None:
        redirect.close()
    await proxy.drain(args.drain_timeout)
    api.stop()
    await proxy.stop()
    log.info("Stopped")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=LOG_LEVELS[args.log_level],
        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s",
    )
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
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(serve(args, token, tls))
    else:
        uvloop.run(serve(args, token, tls))


if __name__ == "__main__":
    main()
