"""The five measurements, each over every target that works, interleaved.

Every measurement runs the targets in rotating order each round (A B C, B C
A, C A B), so noise on this small shared machine hits all of them. A target
that fails (a check, an error response, its process exiting) is recorded in
`Context.failures` and skipped for the rest of that measurement; the others go on.
Neighbours: `bench.py` (wiring, report), `proxies.py`, `wrk.py`, `wsclient.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import http.client
import json
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import backends
import proxies
import wrk
import wsclient
from backends import Backends
from httpclient import Client, median, percentile
from hubs import BenchError, ProcessGroup
from proxies import Target, target_stats

T = TypeVar("T")
WS_PAYLOAD = b"0123456789abcdef0123456789abcdef"  # 32 bytes
WS_CHUNK = 500  # round trips per target before the next target's turn
ROUTE_CHUNK = 100  # routes API calls per proxy before the other's turn
MAX_ERROR_SHARE = 0.01  # more failed requests than this and a wrk run does not count


@dataclass
class Context:
    args: Any
    workdir: Path
    procs: ProcessGroup
    backends: Backends
    targets: list[Target]
    commands: dict[str, list[str]]
    failures: dict[str, dict[str, str]] = field(default_factory=dict)

    def fail(self, target: Target, measurement: str, message: str) -> None:
        print(f"  ! {target.label} ({target.name}), {measurement}: {message}", flush=True)
        self.failures.setdefault(target.name, {})[measurement] = message

    def usable(self, measurement: str, need: str, *, proxies_only: bool = False) -> list[Target]:
        out = []
        for t in self.targets:
            if proxies_only and not t.is_proxy:
                continue
            if not t.alive():
                self.fail(t, measurement, t.why_dead())
            elif need in t.broken:
                self.fail(t, measurement, f"skipped: the {need} check failed: {t.broken[need]}")
            else:
                out.append(t)
        return out

    def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            import uvloop

            factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
        except ImportError:
            factory = None
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)


def rotate(items: Sequence[T], r: int) -> list[T]:
    k = r % len(items) if items else 0
    return list(items[k:]) + list(items[:k])


def ms(seconds: float) -> float:
    return round(seconds * 1000, 4)


def spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": ms(median(values)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values)) if values else float("nan"),
    }


# --- checks before measuring ---------------------------------------------------


def check_targets(ctx: Context) -> None:
    """What works through each target: small GET, 1 MiB GET, 1 MiB upload, websocket echo."""
    file_bytes = (ctx.workdir / "nginx" / "www" / "files" / "1m.bin").read_bytes()
    upload = b"u" * backends.FILE_SIZE
    for t in ctx.targets:

        def small(t: Target = t) -> None:
            with Client("127.0.0.1", t.http_port, None, timeout=10) as c:
                r = c.request("GET", backends.SMALL_PATH)
            if r.status != 200 or r.body != backends.SMALL_BODY:
                raise BenchError(f"GET {backends.SMALL_PATH} answered {r.status} {r.body[:80]!r}")

        def download(t: Target = t) -> None:
            with Client("127.0.0.1", t.http_port, None, timeout=10) as c:
                r = c.request("GET", backends.FILE_PATH)
            if (
                r.status != 200
                or hashlib.sha256(r.body).digest() != hashlib.sha256(file_bytes).digest()
            ):
                raise BenchError(
                    f"GET {backends.FILE_PATH} answered {r.status} with {len(r.body)} bytes "
                    "(not the file)"
                )

        def upload_(t: Target = t) -> None:
            with Client("127.0.0.1", t.upload_port, None, timeout=10) as c:
                r = c.request("POST", backends.UPLOAD_PATH, upload)
            if r.status != 200 or r.body != str(len(upload)).encode():
                raise BenchError(
                    f"POST {backends.UPLOAD_PATH} answered {r.status} {r.body[:80]!r} "
                    f"(the sink answers the byte count, {len(upload)})"
                )

        def ws(t: Target = t) -> None:
            sock = wsclient.BlockingWebSocket("127.0.0.1", t.ws_port, backends.WS_PATH)
            try:
                for _ in range(10):
                    sock.round_trip(WS_PAYLOAD)
            finally:
                sock.close()

        for name, check in (
            ("small", small),
            ("download", download),
            ("upload", upload_),
            ("ws", ws),
        ):
            try:
                check()
            except (BenchError, OSError, http.client.HTTPException) as e:
                t.broken[name] = f"{type(e).__name__}: {e}"
                ctx.fail(t, f"check {name}", t.broken[name])
        ok = [n for n in ("small", "download", "upload", "ws") if n not in t.broken]
        print(f"  {t.label}: works for {', '.join(ok) or 'nothing'}", flush=True)


# --- wrk series ------------------------------------------------------------------


def wrk_series(
    ctx: Context,
    measurement: str,
    targets: Sequence[Target],
    *,
    path: str,
    connections: int,
    script: Path,
    upload: bool = False,
) -> dict[str, Any]:
    """`rounds` wrk runs per target, rotating; per target the runs and their medians."""
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    skip: set[str] = set()
    for r in range(ctx.args.rounds):
        for t in rotate(targets, r):
            if t.name in skip:
                continue
            port = t.upload_port if upload else t.http_port
            before = target_stats(t)
            try:
                res = wrk.run(
                    f"http://127.0.0.1:{port}{path}",
                    connections=connections,
                    threads=ctx.args.wrk_threads,
                    duration=ctx.args.duration,
                    script=script,
                )
            except BenchError as e:
                ctx.fail(t, measurement, str(e))
                skip.add(t.name)
                continue
            after = target_stats(t)
            if not t.alive():
                ctx.fail(t, measurement, t.why_dead())
                skip.add(t.name)
                continue
            run = res.as_dict()
            if upload:
                run["mb_per_second"] = round(
                    res.requests * backends.FILE_SIZE / res.seconds / 1e6, 1
                )
            else:
                run["mb_per_second"] = round(res.bytes / res.seconds / 1e6, 1)
            if before and after and res.requests:
                cpu = after.cpu_seconds - before.cpu_seconds
                run["proxy_cpu_seconds"] = round(cpu, 3)
                run["proxy_cpu_us_per_request"] = round(cpu / res.requests * 1e6, 1)
            runs[t.name].append(run)
            if res.requests == 0 or res.error_count > MAX_ERROR_SHARE * res.requests:
                ctx.fail(
                    t,
                    measurement,
                    f"{res.requests} requests, errors {res.errors} (run not counted)",
                )
                runs[t.name].pop()
                skip.add(t.name)
    return {name: summarize_runs(rs) for name, rs in runs.items() if rs}


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.median(key(r) for r in runs), 4)

    out: dict[str, Any] = {
        "requests_per_second": med(lambda r: r["requests_per_second"]),
        "p50_ms": med(lambda r: r["latency_ms"]["p50"]),
        "p99_ms": med(lambda r: r["latency_ms"]["p99"]),
        "mb_per_second": med(lambda r: r["mb_per_second"]),
        "runs": runs,
    }
    if all("proxy_cpu_us_per_request" in r for r in runs):
        out["proxy_cpu_us_per_request"] = med(lambda r: r["proxy_cpu_us_per_request"])
    return out


# --- 1 and 2: small GETs, 1 MiB downloads and uploads -------------------------


def small_get(ctx: Context) -> dict[str, Any]:
    script = wrk.write_script(ctx.workdir / "get.lua")
    out = {}
    for c in ctx.args.connections:
        print(f"  {c} connection(s)", flush=True)
        out[f"c{c}"] = wrk_series(
            ctx,
            f"small GET c={c}",
            ctx.usable("small GET", "small"),
            path=backends.SMALL_PATH,
            connections=c,
            script=script,
        )
    return out


def transfers(ctx: Context) -> dict[str, Any]:
    c = ctx.args.transfer_connections
    print(f"  1 MiB downloads, {c} connections", flush=True)
    down = wrk_series(
        ctx,
        "1 MiB download",
        ctx.usable("1 MiB download", "download"),
        path=backends.FILE_PATH,
        connections=c,
        script=wrk.write_script(ctx.workdir / "get.lua"),
    )
    print(f"  1 MiB uploads, {c} connections", flush=True)
    up = wrk_series(
        ctx,
        "1 MiB upload",
        ctx.usable("1 MiB upload", "upload"),
        path=backends.UPLOAD_PATH,
        connections=c,
        script=wrk.write_script(ctx.workdir / "upload.lua", upload_size=backends.FILE_SIZE),
        upload=True,
    )
    return {"download": down, "upload": up}


# --- 3: websocket echo latency and throughput --------------------------------------


def ws_latency(ctx: Context) -> dict[str, Any]:
    """Sequential echo round trips, one socket per target, in rotating chunks."""
    measurement = "WS echo latency"
    socks: dict[str, wsclient.BlockingWebSocket] = {}
    samples: dict[str, list[float]] = {}
    targets = ctx.usable(measurement, "ws")
    try:
        for t in targets:
            try:
                socks[t.name] = wsclient.BlockingWebSocket("127.0.0.1", t.ws_port, backends.WS_PATH)
                for _ in range(200):
                    socks[t.name].round_trip(WS_PAYLOAD)
                samples[t.name] = []
            except OSError as e:
                ctx.fail(t, measurement, f"{type(e).__name__}: {e}")
        chunks = max(1, ctx.args.ws_messages // WS_CHUNK)
        for r in range(chunks):
            for t in rotate(targets, r):
                sock = socks.get(t.name)
                if sock is None:
                    continue
                try:
                    samples[t.name] += [sock.round_trip(WS_PAYLOAD) for _ in range(WS_CHUNK)]
                except OSError as e:
                    ctx.fail(t, measurement, f"{type(e).__name__}: {e}")
                    socks.pop(t.name).sock.close()
                    samples.pop(t.name, None)
    finally:
        for sock in socks.values():
            sock.close()
    out: dict[str, Any] = {
        name: {**spread(s), "payload_bytes": len(WS_PAYLOAD)} for name, s in samples.items()
    }
    if "direct" in out:
        base = out["direct"]
        for name, entry in out.items():
            if name != "direct":
                entry["overhead_p50_us"] = round((entry["p50_ms"] - base["p50_ms"]) * 1000, 1)
                entry["overhead_p99_us"] = round((entry["p99_ms"] - base["p99_ms"]) * 1000, 1)
    return out


async def _echo_throughput(port: int, sockets: int, duration: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    conns: list[wsclient.EchoLoop] = []
    transports: list[asyncio.BaseTransport] = []
    try:
        for _ in range(sockets):
            transport, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: wsclient.EchoLoop("127.0.0.1", port, backends.WS_PATH, WS_PAYLOAD),
                    "127.0.0.1",
                    port,
                ),
                10,
            )
            transports.append(transport)
            conns.append(proto)
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in conns)), 20)
        t0 = time.perf_counter()
        for c in conns:
            c.start()
        await asyncio.sleep(duration)
        count = sum(c.count for c in conns)
        seconds = time.perf_counter() - t0
        for c in conns:
            c.running = False
        waiting = [c.idle.wait() for c in conns if c.in_flight]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiting), 5)
        errors = [str(c.error) for c in conns if c.error]
        per_socket = sorted(c.count for c in conns)
        return {
            "messages": count,
            "seconds": round(seconds, 3),
            "messages_per_second": round(count / seconds, 1),
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "per_socket_min_max": [per_socket[0], per_socket[-1]],
        }
    finally:
        for tr in transports:
            tr.close()
        await asyncio.sleep(0.2)


def ws_throughput(ctx: Context) -> dict[str, Any]:
    """Messages/s with `--ws-sockets` sockets each keeping one message in flight."""
    measurement = f"WS echo, {ctx.args.ws_sockets} sockets"
    targets = ctx.usable(measurement, "ws")
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    skip: set[str] = set()
    for r in range(ctx.args.rounds):
        for t in rotate(targets, r):
            if t.name in skip:
                continue
            before = target_stats(t)
            try:
                run = ctx.run_async(
                    _echo_throughput(t.ws_port, ctx.args.ws_sockets, ctx.args.duration)
                )
            except (OSError, TimeoutError) as e:
                ctx.fail(t, measurement, f"{type(e).__name__}: {e}")
                skip.add(t.name)
                continue
            after = target_stats(t)
            if before and after and run["messages"]:
                cpu = after.cpu_seconds - before.cpu_seconds
                run["proxy_cpu_us_per_message"] = round(cpu / run["messages"] * 1e6, 1)
            runs[t.name].append(run)
            if run["errors"]:
                ctx.fail(t, measurement, f"{run['errors']} sockets failed: {run['first_error']}")
                skip.add(t.name)
    return {
        name: {
            "messages_per_second": statistics.median(r["messages_per_second"] for r in rs),
            "runs": rs,
        }
        for name, rs in runs.items()
        if rs
    }


# --- 4: 10,000 routes ----------------------------------------------------------------


def _route_calls(
    ctx: Context,
    instances: dict[str, Target],
    calls: Callable[[str], list[tuple[str, str, bytes | None, int]]],
    measurement: str,
) -> dict[str, list[float]]:
    """Send each instance its (method, path, body, status) calls, interleaved in chunks."""
    clients = {name: t.api(timeout=30) for name, t in instances.items()}
    todo = {name: calls(name) for name in instances}
    latencies: dict[str, list[float]] = {name: [] for name in instances}
    try:
        total = max(len(v) for v in todo.values())
        for i, start in enumerate(range(0, total, ROUTE_CHUNK)):
            for name in rotate(list(instances), i):
                if name not in clients:
                    continue
                for method, path, body, status in todo[name][start : start + ROUTE_CHUNK]:
                    try:
                        r = clients[name].request(method, path, body)
                    except (OSError, http.client.HTTPException) as e:
                        ctx.fail(instances[name], measurement, f"{method} {path}: {e}")
                        clients.pop(name).close()
                        break
                    if r.status != status:
                        ctx.fail(
                            instances[name],
                            measurement,
                            f"{method} {path} answered {r.status}: {r.body[:200]!r}",
                        )
                        clients.pop(name).close()
                        break
                    latencies[name].append(r.seconds)
    finally:
        for c in clients.values():
            c.close()
    return latencies


def routes(ctx: Context) -> dict[str, Any]:
    """Add N routes to a fresh instance of each proxy, list them, GET through them, delete them."""
    n = ctx.args.routes
    mains = ctx.usable("routes", "small", proxies_only=True)
    instances: dict[str, Target] = {}
    for t in mains:
        try:
            instances[t.name] = proxies.start_proxy(
                f"{t.name}-routes",
                ctx.commands[t.name],
                ctx.procs,
                ctx.workdir,
                ctx.backends,
                routes=False,
            )
        except (BenchError, OSError) as e:
            ctx.fail(t, "routes", f"second instance did not start: {e}")
    if not instances:
        return {}
    out: dict[str, Any] = {name: {"routes": n} for name in instances}
    for name, inst in instances.items():
        s = target_stats(inst)
        out[name]["before"] = s.as_dict() if s else None
    names = [f"u{i:05d}" for i in range(n)]
    target_url = ctx.backends.nginx_url

    def adds(_name: str) -> list[tuple[str, str, bytes | None, int]]:
        return [
            (
                "POST",
                f"/api/routes/user/{u}",
                json.dumps(
                    {"target": target_url, "user": u, "server_name": "", "jupyterhub": True}
                ).encode(),
                201,
            )
            for u in names
        ]

    print(f"  adding {n:,} routes to each", flush=True)
    t0 = time.perf_counter()
    added = _route_calls(ctx, instances, adds, f"add {n:,} routes")
    print(f"  {time.perf_counter() - t0:.1f}s", flush=True)
    for name, lat in added.items():
        out[name]["add"] = {**spread(lat), "total_seconds": round(sum(lat), 3)}
        s = target_stats(instances[name])
        out[name]["after_add"] = s.as_dict() if s else None
    complete = [name for name in instances if len(added[name]) == n]

    # GET /api/routes with everything in it
    for name in complete:
        out[name]["get_all"] = {"seconds": [], "bytes": 0, "count": 0}
    for i in range(5):
        for name in rotate(complete, i):
            with instances[name].api(timeout=60) as api:
                try:
                    r = api.request("GET", "/api/routes")
                except (OSError, http.client.HTTPException) as e:
                    ctx.fail(instances[name], "GET /api/routes", str(e))
                    continue
            entry = out[name]["get_all"]
            entry["seconds"].append(round(r.seconds, 4))
            entry["bytes"] = len(r.body)
            entry["count"] = len(json.loads(r.body)) if r.status == 200 else -1
            if r.status != 200 or entry["count"] < n:
                ctx.fail(instances[name], "GET /api/routes", f"{r.status}, {entry['count']} routes")
    for name in complete:
        secs = out[name]["get_all"]["seconds"]
        out[name]["get_all"]["median_ms"] = ms(median(secs)) if secs else None

    # small GETs to one user's route: N routes (this instance) vs the main instance's 3
    path = f"/user/{names[n // 2]}{backends.SMALL_PATH}"
    c = ctx.args.routes_connections
    print(f"  small GET {path}, {c} connections: {n:,} routes vs the main instance", flush=True)
    series_targets: list[Target] = []
    for name in complete:
        series_targets += [instances[name], next(t for t in mains if t.name == name)]
    got = wrk_series(
        ctx,
        f"small GET with {n:,} routes",
        series_targets,
        path=path,
        connections=c,
        script=wrk.write_script(ctx.workdir / "get.lua"),
    )
    for name in complete:
        out[name]["small_get_many_routes"] = got.get(f"{name}-routes")
        out[name]["small_get_main_instance"] = got.get(name)

    def deletes(name: str) -> list[tuple[str, str, bytes | None, int]]:
        return (
            [("DELETE", f"/api/routes/user/{u}", None, 204) for u in names]
            if name in complete
            else []
        )

    print(f"  deleting {n:,} routes from each", flush=True)
    deleted = _route_calls(
        ctx, {k: v for k, v in instances.items() if k in complete}, deletes, "delete routes"
    )
    for name, lat in deleted.items():
        out[name]["delete"] = {**spread(lat), "total_seconds": round(sum(lat), 3)}
        with (
            contextlib.suppress(OSError, http.client.HTTPException, ValueError),
            instances[name].api() as api,
        ):
            out[name]["count_after_delete"] = len(
                json.loads(api.request("GET", "/api/routes").body)
            )
        s = target_stats(instances[name])
        out[name]["after_delete"] = s.as_dict() if s else None
    for inst in instances.values():
        if inst.proc is not None:
            ctx.procs.stop(inst.proc)
    return out


# --- 5: memory and fds with idle websockets and open/close cycles --------------------


async def _hold_idle(
    port: int, n: int, concurrency: int, measure: Callable[[], proxies.ProcStats | None]
) -> tuple[int, int, proxies.ProcStats | None]:
    """Open n websockets (one echo each), measure while they idle, close them."""
    socks, errors = await _open_idle(port, n, concurrency)
    await asyncio.sleep(1)
    held = measure()
    await _close_all(socks, concurrency)
    return len(socks), errors, held


async def _open_idle(
    port: int, n: int, concurrency: int
) -> tuple[list[wsclient.AsyncWebSocket], int]:
    sem = asyncio.Semaphore(concurrency)
    errors = 0

    async def one() -> wsclient.AsyncWebSocket | None:
        nonlocal errors
        async with sem:
            try:
                ws = await asyncio.wait_for(
                    wsclient.open_ws("127.0.0.1", port, backends.WS_PATH), 10
                )
                await asyncio.wait_for(ws.echo(WS_PAYLOAD), 10)
                return ws
            except (OSError, TimeoutError):
                errors += 1
                return None

    got = await asyncio.gather(*(one() for _ in range(n)))
    return [ws for ws in got if ws is not None], errors


async def _close_all(socks: list[wsclient.AsyncWebSocket], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(ws: wsclient.AsyncWebSocket) -> None:
        async with sem:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(ws.close(), 10)

    await asyncio.gather(*(one(ws) for ws in socks))


async def _cycles(port: int, n: int, concurrency: int) -> dict[str, Any]:
    """n times: open, one echo, close (even: close handshake; odd: TCP connection dropped)."""
    errors: list[str] = []

    async def worker(k: int) -> None:
        for i in range(k, n, concurrency):
            try:
                ws = await asyncio.wait_for(
                    wsclient.open_ws("127.0.0.1", port, backends.WS_PATH), 10
                )
                await asyncio.wait_for(ws.echo(WS_PAYLOAD), 10)
                await asyncio.wait_for(ws.close(clean=i % 2 == 0), 10)
            except (OSError, TimeoutError) as e:
                errors.append(f"{type(e).__name__}: {e}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    seconds = time.perf_counter() - t0
    return {
        "cycles": n,
        "seconds": round(seconds, 2),
        "cycles_per_second": round(n / seconds, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def _settle(t: Target, baseline_fds: int, seconds: float) -> proxies.ProcStats | None:
    """Stats once the fds are back to the baseline, or after `seconds`."""
    deadline = time.monotonic() + seconds
    time.sleep(1)
    s = target_stats(t)
    while s is not None and s.fds > baseline_fds and time.monotonic() < deadline:
        time.sleep(0.5)
        s = target_stats(t)
    return s


def ws_resources(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    idle_n, cycles_n = ctx.args.idle_ws, ctx.args.ws_cycles
    for t in ctx.usable("WS memory", "ws", proxies_only=True):
        entry: dict[str, Any] = {}
        out[t.name] = entry
        base = target_stats(t)
        if base is None:
            continue
        print(f"  {t.label}: {idle_n:,} idle websockets", flush=True)
        opened, errors, held = ctx.run_async(
            _hold_idle(t.ws_port, idle_n, 50, functools.partial(target_stats, t))
        )
        closed = _settle(t, base.fds, 10)
        if held is None or closed is None:
            ctx.fail(t, "idle websockets", t.why_dead())
            continue
        entry["idle"] = {
            "sockets": opened,
            "errors": errors,
            "before": base.as_dict(),
            "open": held.as_dict(),
            "after_close": closed.as_dict(),
            "rss_mib_per_1000": round(
                (held.rss_kib - base.rss_kib) / 1024 * 1000 / max(opened, 1), 2
            ),
            "fds_per_socket": round((held.fds - base.fds) / max(opened, 1), 2),
        }
        if errors:
            ctx.fail(t, "idle websockets", f"{errors} of {idle_n} sockets failed to open/echo")

        print(f"  {t.label}: {cycles_n:,} open/echo/close cycles", flush=True)
        ctx.run_async(_cycles(t.ws_port, min(200, cycles_n), 20))  # warm-up, not counted
        base = _settle(t, 0, 0)
        if base is None:
            ctx.fail(t, "websocket cycles", t.why_dead())
            continue
        run = ctx.run_async(_cycles(t.ws_port, cycles_n, 20))
        after = _settle(t, base.fds, 15)
        if after is None:
            ctx.fail(t, "websocket cycles", t.why_dead())
            continue
        entry["cycles"] = {
            **run,
            "concurrency": 20,
            "before": base.as_dict(),
            "after": after.as_dict(),
            "rss_delta_mib": round((after.rss_kib - base.rss_kib) / 1024, 2),
            "fds_delta": after.fds - base.fds,
        }
        if run["errors"]:
            ctx.fail(t, "websocket cycles", f"{run['errors']} cycles failed: {run['first_error']}")
    return out
