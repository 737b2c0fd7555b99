"""The latency probe: a steady stream of GET /hub/api/users/{name} to one hub while
the load runs, in a process of its own (so the load generator's event loop never
delays a probe request or its timing).

Open loop: a request is due every 1/rate seconds whether or not earlier ones have
been answered; `workers` threads, each with its own keep-alive connection
(`../httpclient.py`), take due requests in order. A sample is one request: from
sending to having read the whole body; how late it was sent (all workers busy)
is kept too, and it belongs to the phase it was sent in. Requests still waiting
for a connection at `stop` are not sent but counted by the phase they were due
in (`unsent`), so a hub that
falls behind is never measured after its load has ended. A sample counts as ok
when the answer is 200 and names the user asked about.

Controlled over stdin, one command a line: `phase NAME` (later samples carry that
phase), `stop`. Prints `ready` once connected, and at the end one JSON line:
`{"samples": [[phase, due, latency, late, ok], ...], "unsent": {phase: n}}`
(seconds; `due` after the probe started).

    python probe.py --port P --token T --users 500 --prefix load- [--rate 20]
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from httpclient import Client


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--workers", type=int, default=8)
    args = p.parse_args()

    due: queue.Queue[tuple[str, float] | None] = queue.Queue()
    unsent: dict[str, int] = {}  # by the phase they were due in
    samples: list[tuple[str, float, float, float, bool]] = []
    lock = threading.Lock()
    phase = ["idle"]
    stopping = threading.Event()
    t_start = time.perf_counter()
    rng = random.Random(1)

    def work() -> None:
        with Client("127.0.0.1", args.port, args.token, timeout=60) as client:
            client.request("GET", "/hub/api/")  # connect before the first timed request
            while (item := due.get()) is not None:
                due_in, when = item
                tag = phase[0]  # the phase the request is sent in
                if stopping.is_set():
                    with lock:
                        unsent[due_in] = unsent.get(due_in, 0) + 1
                    continue
                name = f"{args.prefix}{rng.randrange(args.users):04d}"
                late = time.perf_counter() - t_start - when
                try:
                    r = client.request("GET", f"/hub/api/users/{name}")
                    ok = r.status == 200 and json.loads(r.body).get("name") == name
                    seconds = r.seconds
                except (OSError, ValueError) as e:
                    print(f"probe: {type(e).__name__}: {e}", file=sys.stderr)
                    ok, seconds = False, time.perf_counter() - t_start - when - late
                with lock:
                    samples.append((tag, round(when, 4), round(seconds, 6), round(late, 6), ok))

    def schedule() -> None:
        interval = 1.0 / args.rate
        i = 0
        while not stopping.is_set():
            when = i * interval
            wait = t_start + when - time.perf_counter()
            if wait > 0:
                stopping.wait(wait)
                if stopping.is_set():
                    break
            if phase[0] != "idle":
                due.put((phase[0], when))
            i += 1

    workers = [threading.Thread(target=work, daemon=True) for _ in range(args.workers)]
    for t in workers:
        t.start()
    scheduler = threading.Thread(target=schedule, daemon=True)
    scheduler.start()
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "phase":
            phase[0] = value
        elif command == "stop":
            break
    stopping.set()
    scheduler.join()
    for _ in workers:
        due.put(None)
    for t in workers:
        t.join(60)
    with lock:
        print(json.dumps({"samples": samples, "unsent": unsent}), flush=True)


if __name__ == "__main__":
    main()
