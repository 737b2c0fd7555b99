"""Does a failed PAM login take as long for an unknown account as for a wrong password?

Runs Atrium with the PAM authenticator (`atrium`, SQLite, no proxy, throttling
out of the way) and times login posts, interleaved round by round: a real
account (made here with useradd, removed afterwards) with a wrong password,
an account that does not exist, and a system account (root: below min_uid,
refused without trying its password). For comparison it also times PAM
itself through pamela for the first two, with no padding, which shows what
the hub evens out. Needs root.

    .venv/bin/python benchmarks/pam_timing.py                  # service 'login'
    .venv/bin/python benchmarks/pam_timing.py --no-fail-delay  # the bare difference

'login' has pam_faildelay (3 s, which Linux-PAM varies by up to +-50%): its
noise hides the difference anyway. `--no-fail-delay` uses a PAM service of its
own (/etc/pam.d/atrium-timing, removed afterwards) whose pam_unix has
`nodelay`, so what remains is the cost of the password hash, which pam_unix
pays only for accounts that exist. Results: stdout, and `--output` (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.httpclient import median, percentile
from benchmarks.hubs import ProcessGroup, free_port, log_tail, wait_ready
from benchmarks.runinfo import machine, now, write_results

SERVICE = "atrium-timing"
NO_DELAY_SERVICE = (
    "# written by Atrium's benchmarks/pam_timing.py; removed when it ends\n"
    "auth [success=1 default=ignore] pam_unix.so nodelay\n"
    "auth requisite pam_deny.so\n"
    "auth required pam_permit.so\n"
    "@include common-account\n"
)


class Login:
    """Login posts to one hub, with the XSRF cookie a browser would hold."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.request("GET", "/hub/login")
        r = self.conn.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie") or ""
        found = re.search(r"_xsrf=([^;]+)", cookie)
        if found is None:
            raise SystemExit(f"the login page set no XSRF cookie: {cookie!r}")
        self.xsrf = found.group(1)

    def post(self, name: str, password: str) -> tuple[int, float]:
        body = urlencode(
            {"_xsrf": self.xsrf, "authenticator": "pam", "username": name, "password": password}
        )
        headers = {
            "Cookie": f"_xsrf={self.xsrf}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        t0 = time.perf_counter()
        self.conn.request("POST", "/hub/login", body=body, headers=headers)
        r = self.conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0


def raw_pam(name: str, password: str, service: str) -> float:
    import pamela

    t0 = time.perf_counter()
    with contextlib.suppress(pamela.PAMError):
        pamela.authenticate(name, password, service=service)
    return time.perf_counter() - t0


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "median_ms": round(median(ms), 1),
        "p10_ms": round(percentile(ms, 10), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "mean_ms": round(sum(ms) / len(ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=0, help="default 20, or 200 with no delay")
    parser.add_argument("--no-fail-delay", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes a Unix account, and PAM checks its password")
    rounds = args.rounds or (200 if args.no_fail_delay else 20)
    service = SERVICE if args.no_fail_delay else "login"
    name = f"atrtime{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    procs = ProcessGroup()
    pam_file = Path("/etc/pam.d") / SERVICE
    with tempfile.TemporaryDirectory(prefix="atrium-pam-timing-") as tmp:
        work = Path(tmp)
        try:
            if args.no_fail_delay:
                pam_file.write_text(NO_DELAY_SERVICE)
            subprocess.run(["useradd", name], check=True)
            subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
            results = run(procs, work, name, password, service, rounds)
        finally:
            procs.stop_all()
            subprocess.run(["userdel", name], check=False, capture_output=True)
            if args.no_fail_delay:
                pam_file.unlink(missing_ok=True)
    print(f"PAM service {service!r}, {rounds} rounds")
    for label, values in results["cases"].items():
        print(f"  {label:40} " + "  ".join(f"{k} {v:8.1f}" for k, v in values.items()))
    if args.output:
        write_results(results, args.output)


def run(
    procs: ProcessGroup, work: Path, name: str, password: str, service: str, rounds: int
) -> dict[str, Any]:
    port = free_port()
    config = work / "atrium_config.py"
    config.write_text(
        "c.Hub.authenticator_class = 'pam'\n"
        f"c.PAMAuthenticator.service = {service!r}\n"
        "c.Hub.login_failures_free = 1000000\n"
        "c.Hub.login_address_failures_free = 1000000\n"
    )
    atrium = Path(sys.executable).parent / "atrium"
    log = work / "atrium.log"
    cmd = [
        str(atrium),
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--db=sqlite:///{work / 'atrium.sqlite'}",
        f"--AtriumApp.config_file={config}",
        "--Hub.proxy=none",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATRIUM_")}
    proc = procs.start("atrium", cmd, cwd=work, env=env, log=log)
    wait_ready(port, proc, log, "atrium")
    login = Login(port)
    status, _ = login.post(name, password)
    if status != 302:
        raise SystemExit(f"the account's own password did not log in ({status}):\n{log_tail(log)}")
    wrong = "not-" + password
    cases: dict[str, list[float]] = {
        "hub: wrong password": [],
        "hub: unknown account": [],
        "hub: root (below min_uid)": [],
        "pam: wrong password": [],
        "pam: unknown account": [],
    }
    unknown = f"atrnone{secrets.token_hex(3)}"
    for _ in range(rounds):
        for label, who in (
            ("hub: wrong password", name),
            ("hub: unknown account", unknown),
            ("hub: root (below min_uid)", "root"),
        ):
            status, seconds = login.post(who, wrong)
            if status != 403:
                raise SystemExit(f"{label}: expected 403, got {status}")
            cases[label].append(seconds)
        cases["pam: wrong password"].append(raw_pam(name, wrong, service))
        cases["pam: unknown account"].append(raw_pam(unknown, wrong, service))
    return {
        "machine": machine(),
        "time": now(),
        "service": service,
        "rounds": rounds,
        "cases": {label: summary(values) for label, values in cases.items()},
    }


if __name__ == "__main__":
    main()
