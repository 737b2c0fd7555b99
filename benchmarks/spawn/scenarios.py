"""The five measurements of the spawn benchmark, each for every hub in the run.

1. `spawn_latency`: sequential starts, POST -> first 200 through the proxy.
2. `first_execution`: start + kernel + websocket + `print(1)` -> reply and output.
3. `bursts`: B users started at once; how many get through, how fast.
4. `memory_and_kernel_rtt`: K idle servers' memory (PSS of each process tree),
   then websocket vs ZMQ round trips to a kernel of the first server.

Sequential steps take turns between the hubs (A B B A ...), so machine noise
that comes and goes hits both; bursts and the per-hub steps run one hub at a
time. After each step every server is stopped, and processes left behind are
reported (and killed). Neighbours: `hubapi.py`, `kernels.py`, `proctree.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kernels
import proctree
import report
from httpclient import median, percentile
from hubapi import HubAPI, Spawned
from hubs import BenchError, log_tail
from hubsetup import SpawnHub

LEFTOVER_WAIT = 15.0  # seconds stopped servers' processes get to be gone before they count


@dataclass
class Context:
    args: argparse.Namespace
    apis: list[HubAPI]
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)  # the machine before each step

    def note(self, step: str, hub: str, what: str, **details: Any) -> None:
        print(f"  ! {hub}, {step}: {what}", flush=True)
        self.anomalies.append({"step": step, "hub": hub, "what": what, **details})

    def turns(self, i: int) -> list[HubAPI]:
        """The hubs in the order of turn `i`: A B, B A, A B, ..."""
        return list(self.apis) if i % 2 == 0 else list(reversed(self.apis))


def stats(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": round(median(values) * scale, digits),
        "p95": round(percentile(values, 95) * scale, digits),
        "min": round(min(values) * scale, digits),
        "max": round(max(values) * scale, digits),
    }


def check_alive(hub: SpawnHub) -> None:
    if hub.hub.proc.poll() is not None:
        raise BenchError(
            f"{hub.label} exited ({hub.hub.proc.returncode}):\n{log_tail(hub.hub.log)}"
        )


async def leftovers(ctx: Context, step: str, api: HubAPI) -> list[str]:
    """Server processes still there once every server is stopped; killed and noted."""
    hub = api.hub
    deadline = time.monotonic() + LEFTOVER_WAIT
    pids = hub.server_processes()
    while pids and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        pids = hub.server_processes()
    if not pids:
        return []
    described = proctree.describe(pids)
    ctx.note(
        step, hub.name, f"{len(pids)} processes left after stopping every server", pids=described
    )
    proctree.kill(pids)
    return described


def _say_median(api: HubAPI, seconds: dict[str, Any]) -> None:
    print(f"  {api.hub.label}: median {seconds.get('median')}s of {seconds['n']}", flush=True)


async def spawn_and_stop(ctx: Context, step: str, api: HubAPI, name: str) -> Spawned:
    started = await api.spawn(name, ctx.args.spawn_bound)
    if not started.ok:
        ctx.note(step, api.hub.name, f"start of {name} failed: {started.error}")
    await api.stop(name)
    return started


# --- 1. spawn latency ----------------------------------------------------------------


async def spawn_latency(ctx: Context) -> dict[str, Any]:
    n = ctx.args.users
    names = [f"lat{i:03d}" for i in range(n + 1)]
    runs: dict[str, list[Spawned]] = {api.hub.name: [] for api in ctx.apis}
    for api in ctx.apis:
        await api.create_users(names)
        # not counted: Atrium's first start also starts its server template
        warm = await spawn_and_stop(ctx, "spawn_latency", api, names[0])
        print(f"  {api.hub.label}: warm-up start {warm.seconds:.2f}s", flush=True)
    for i, name in enumerate(names[1:]):
        for api in ctx.turns(i):
            runs[api.hub.name].append(await spawn_and_stop(ctx, "spawn_latency", api, name))
    out = {}
    for api in ctx.apis:
        done = runs[api.hub.name]
        ok = [s.seconds for s in done if s.ok]
        out[api.hub.name] = {
            "seconds": stats(ok),
            "failed": len(done) - len(ok),
            "post_status": sorted({s.post_status for s in done}),
            "starts": [s.as_dict() for s in done],
            "leftovers": await leftovers(ctx, "spawn_latency", api),
        }
        _say_median(api, out[api.hub.name]["seconds"])
    return out


# --- 2. time to first execution ----------------------------------------------------------


async def first_execution_once(ctx: Context, api: HubAPI, name: str) -> dict[str, Any]:
    """Start, kernel, websocket, print(1): the seconds of each part, from the POST."""
    t0 = time.perf_counter()
    started = await api.spawn(name, ctx.args.spawn_bound)
    if not started.ok:
        ctx.note("first_execution", api.hub.name, f"start of {name} failed: {started.error}")
        await api.stop(name)
        return {"ok": False, "error": started.error}
    t1 = time.perf_counter()
    kernel_id = await api.start_kernel(name)
    t2 = time.perf_counter()
    ks = await kernels.open_socket(api.kernel_ws_url(name, kernel_id), api.hub.hub.token)
    t3 = time.perf_counter()
    try:
        await kernels.first_output(ks, "print(1)", "1\n")
        t4 = time.perf_counter()
    finally:
        ks.close()
    await api.stop(name)
    return {
        "ok": True,
        "seconds": t4 - t0,
        "spawn": t1 - t0,
        "kernel_post": t2 - t1,
        "ws_open": t3 - t2,
        "execute": t4 - t3,
    }


async def first_execution(ctx: Context) -> dict[str, Any]:
    n = ctx.args.users
    names = [f"exec{i:03d}" for i in range(n + 1)]
    runs: dict[str, list[dict[str, Any]]] = {api.hub.name: [] for api in ctx.apis}
    for api in ctx.apis:
        await api.create_users(names)
        warm = await first_execution_once(ctx, api, names[0])
        print(f"  {api.hub.label}: warm-up {warm.get('seconds', float('nan')):.2f}s", flush=True)
    for i, name in enumerate(names[1:]):
        for api in ctx.turns(i):
            runs[api.hub.name].append(await first_execution_once(ctx, api, name))
    out = {}
    for api in ctx.apis:
        ok = [r for r in runs[api.hub.name] if r["ok"]]
        parts = ("seconds", "spawn", "kernel_post", "ws_open", "execute")
        out[api.hub.name] = {
            **{part: stats([r[part] for r in ok]) for part in parts},
            "failed": len(runs[api.hub.name]) - len(ok),
            "runs": [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                for r in runs[api.hub.name]
            ],
            "leftovers": await leftovers(ctx, "first_execution", api),
        }
        _say_median(api, out[api.hub.name]["seconds"])
    return out


# --- 3. bursts ------------------------------------------------------------------------


async def _leftover_fields(ctx: Context, step: str, api: HubAPI) -> dict[str, Any]:
    left = await leftovers(ctx, step, api)
    return {"leftover_count": len(left), "leftovers": left}


async def one_burst(ctx: Context, api: HubAPI, size: int) -> dict[str, Any]:
    names = [f"burst{size}x{i:03d}" for i in range(size)]
    await api.create_users(names)
    descendants_before = len(proctree.descendants(api.hub.pid))
    t0 = time.perf_counter()
    started = await asyncio.gather(*(api.spawn(n, ctx.args.burst_bound) for n in names))
    wall = time.perf_counter() - t0
    ok = [s.seconds for s in started if s.ok]
    running = len(api.hub.server_processes())
    t1 = time.perf_counter()
    stops = await asyncio.gather(*(api.stop(n, bound=120) for n in names), return_exceptions=True)
    stop_errors = [
        f"{n}: {e!r}" for n, e in zip(names, stops, strict=True) if isinstance(e, BaseException)
    ]
    stop_wall = time.perf_counter() - t1
    step = f"burst_{size}"
    for error in report.count_alike([s.error for s in started if not s.ok]):
        ctx.note(step, api.hub.name, f"starts that failed (of {size}): {error}")
    for error in stop_errors:
        ctx.note(step, api.hub.name, f"stop failed: {error}")
    return {
        "size": size,
        "succeeded": len(ok),
        "failed": size - len(ok),
        "ready_seconds": stats(ok),
        "wall_seconds": round(wall, 3),
        "server_processes_while_running": running,
        "stop_wall_seconds": round(stop_wall, 3),
        "stop_errors": stop_errors,
        "starts": [s.as_dict() for s in started],
        **(await _leftover_fields(ctx, step, api)),
        # the hub's own helpers included (Atrium: proxy processes and template)
        "hub_descendants_before": descendants_before,
        "hub_descendants_after": len(proctree.descendants(api.hub.pid)),
    }


async def bursts(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, size in enumerate(ctx.args.burst):
        per_hub = {}
        for api in ctx.turns(i):
            result = await one_burst(ctx, api, size)
            check_alive(api.hub)
            per_hub[api.hub.name] = result
            r = result["ready_seconds"]
            print(
                f"  {api.hub.label}, {size} at once: {result['succeeded']}/{size} ready, "
                f"p50 {r.get('median', float('nan')):.2f}s p95 {r.get('p95', float('nan')):.2f}s, "
                f"leftovers {len(result['leftovers'])}",
                flush=True,
            )
        out[str(size)] = per_hub
    return out


# --- 4. idle memory and kernel round trips ------------------------------------------------


def idle_memory(api: HubAPI, pids: dict[str, int]) -> dict[str, Any]:
    """PSS/RSS/USS of each server's process tree (server + children, no kernels)."""
    kids = proctree.children_map()
    trees = {
        name: proctree.tree_memory([pid, *proctree.descendants(pid, kids)])
        for name, pid in pids.items()
    }
    mib = 1 / 1024
    out: dict[str, Any] = {
        "servers": len(trees),
        "measure": sorted({m.source for m in trees.values()}),
        "pss_mib": stats([m.pss_kib for m in trees.values()], mib, 1),
        "rss_mib": stats([m.rss_kib for m in trees.values()], mib, 1),
        "uss_mib": stats([m.uss_kib for m in trees.values()], mib, 1),
        "processes_per_server": sorted({m.processes for m in trees.values()}),
        "per_server_kib": {n: vars(m) for n, m in trees.items()},
    }
    helpers = [p for p in api.hub.infrastructure() if "spawners.template" in proctree.cmdline(p)]
    if helpers:  # Atrium's template: what the forked servers share with it, counted once
        template = proctree.tree_memory(helpers)
        out["template_pss_mib"] = round(template.pss_kib * mib, 1)
        out["template_rss_mib"] = round(template.rss_kib * mib, 1)
    return out


async def kernel_rtt(ctx: Context, api: HubAPI, name: str) -> dict[str, Any]:
    """Websocket (through the proxy) vs ZMQ round trips to one kernel, interleaved."""
    kernel_id = await api.start_kernel(name)
    ks = await kernels.open_socket(api.kernel_ws_url(name, kernel_id), api.hub.hub.token)
    connection = kernels.find_connection_file(api.hub.users_dir, kernel_id)
    kc = await kernels.zmq_client(connection)
    out: dict[str, Any] = {"connection_file_transport": _transport(connection)}
    try:
        for case, code in (("pass", "pass"), ("print_100", "print('x'*100)")):
            out[case] = await _rtt_case(ctx, ks, kc, code)
    finally:
        kc.stop_channels()
        ks.close()
    return out


def _transport(connection: Path) -> str:
    return str(json.loads(connection.read_text()).get("transport"))


async def _rtt_case(ctx: Context, ks: Any, kc: Any, code: str) -> dict[str, Any]:
    for _ in range(ctx.args.rtt_warmup):
        await kernels.ws_round_trip(ks, code)
        await kernels.zmq_round_trip(kc, code)
    ws: list[float] = []
    zmq: list[float] = []
    block = 20
    for i in range(0, ctx.args.rtt_iterations, block):
        count = min(block, ctx.args.rtt_iterations - i)
        order = ("ws", "zmq") if (i // block) % 2 == 0 else ("zmq", "ws")
        for side in order:
            if side == "ws":
                await kernels.drain_ws(ks)
                ws += [await kernels.ws_round_trip(ks, code) for _ in range(count)]
            else:
                await kernels.drain_zmq(kc)
                zmq += [await kernels.zmq_round_trip(kc, code) for _ in range(count)]
    ws_ms, zmq_ms = stats(ws, 1000), stats(zmq, 1000)
    return {
        "code": code,
        "ws_ms": ws_ms,
        "zmq_ms": zmq_ms,
        "ratio_ws_over_zmq": round(ws_ms["median"] / zmq_ms["median"], 2),
        "ws_samples_ms": [round(s * 1000, 3) for s in ws],
        "zmq_samples_ms": [round(s * 1000, 3) for s in zmq],
    }


async def _start_idle(ctx: Context, api: HubAPI, names: list[str]) -> list[str]:
    """Start `names` one after the other; the ones that came up."""
    started = [await api.spawn(n, ctx.args.spawn_bound) for n in names]
    for s in started:
        if not s.ok:
            ctx.note("memory_rtt", api.hub.name, f"start of {s.name} failed: {s.error}")
    return [s.name for s in started if s.ok]


async def _measure_idle(ctx: Context, api: HubAPI, up: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if not ctx.args.skip_memory:
        await asyncio.sleep(ctx.args.settle)
        pids = {n: pid for n in up if (pid := await api.server_pid(n))}
        result["memory"] = memory = idle_memory(api, pids)
        median_pss = memory["pss_mib"].get("median")
        print(f"  {api.hub.label}: idle server PSS median {median_pss} MiB", flush=True)
    if not ctx.args.skip_rtt and up:
        result["kernel_rtt"] = rtt = await kernel_rtt(ctx, api, up[0])
        ws, zmq = rtt["pass"]["ws_ms"]["median"], rtt["pass"]["zmq_ms"]["median"]
        print(f"  {api.hub.label}: kernel RTT pass ws {ws} ms, zmq {zmq} ms", flush=True)
    return result


async def memory_and_kernel_rtt(ctx: Context) -> dict[str, Any]:
    """K idle servers per hub (one if memory is skipped): their memory, then round
    trips to a kernel of the first; one hub at a time."""
    k = ctx.args.memory_servers if not ctx.args.skip_memory else 1
    names = [f"mem{i:03d}" for i in range(k)]
    out: dict[str, Any] = {}
    for api in ctx.turns(1):
        await api.create_users(names)
        try:
            result = await _measure_idle(ctx, api, await _start_idle(ctx, api, names))
        finally:
            await asyncio.gather(*(api.stop(n) for n in names), return_exceptions=True)
        result["leftovers"] = await leftovers(ctx, "memory_rtt", api)
        check_alive(api.hub)
        out[api.hub.name] = result
    return out
