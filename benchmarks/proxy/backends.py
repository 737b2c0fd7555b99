"""The backends behind the proxies: nginx, an upload sink and a websocket echo server.

- nginx (Debian's package) with its own temporary config, in the foreground,
  one worker: `/bench/...` (any path not below) answers `ok\\n`, `/files/1m.bin`
  is a 1 MiB file (sendfile).
- `upload_sink.py` (uvloop + httptools, Atrium's virtualenv): reads each
  request body to its end, then answers with the number of bytes it read, so a
  proxy that cuts a body short is caught.
- `echo_server.py` (the `websockets` package in `.scratch/ws-venv`): echoes
  every message back on the same socket.

All on 127.0.0.1, started through `hubs.ProcessGroup` (stopped by PID).
Neighbours: `proxies.py` (what sits in front of these), `bench.py`.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import hubs
from httpclient import Client
from hubs import BenchError, ProcessGroup, log_tail, wait_listening

HERE = Path(__file__).resolve().parent
WS_VENV = hubs.SCRATCH / "ws-venv"
WS_SPECS = ("websockets", "uvloop")
FILE_SIZE = 1024 * 1024
SMALL_BODY = b"ok\n"
SMALL_PATH = "/bench/small"
FILE_PATH = "/files/1m.bin"
UPLOAD_PATH = "/upload"
WS_PATH = "/ws/echo"

NGINX_CONF = """\
# Written by benchmarks/proxy/backends.py for one benchmark run.
{user}
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 10000000;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/www;
        location /files/ {{
        }}
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


@dataclass
class Backends:
    nginx_port: int
    sink_port: int
    echo_port: int
    nginx: subprocess.Popen[bytes]
    sink: subprocess.Popen[bytes]
    echo: subprocess.Popen[bytes]

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"


def ensure_ws_venv() -> Path:
    """The python of `.scratch/ws-venv` with `websockets` and `uvloop` (installed if missing)."""
    python = hubs._scratch_python(WS_VENV)
    check = [str(python), "-c", "import websockets, uvloop; print(websockets.__version__)"]
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        print(f"Installing {' '.join(WS_SPECS)} into {WS_VENV} ...", flush=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        hubs._run([*pip, *WS_SPECS])
    hubs._run(check)
    return python


def nginx_command() -> Path:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not found:
        raise BenchError("nginx not found: apt-get install -y nginx")
    return Path(found)


def _nginx_user() -> str:
    """As root, nginx's workers switch user; name one that exists (Debian has no group `nobody`)."""
    if os.geteuid() != 0:
        return ""
    for user in ("www-data", "nobody"):
        try:
            group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
        except KeyError:
            continue
        return f"user {user} {group};"
    return ""


def start_backends(procs: ProcessGroup, workdir: Path, ws_python: Path) -> Backends:
    directory = workdir / "nginx"
    for sub in ("www/files", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # the workers run as another user when we are root: they must reach the files
    for path in (workdir, directory, directory / "www", directory / "www" / "files"):
        path.chmod(0o755)
    (directory / "www" / "files" / "1m.bin").write_bytes(os.urandom(FILE_SIZE))
    (directory / "www" / "files" / "1m.bin").chmod(0o644)
    nginx_port = hubs.free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=nginx_port, user=_nginx_user()))
    log = directory / "stderr.log"
    cmd = [
        str(nginx_command()),
        "-p",
        str(directory),
        "-c",
        str(conf),
        "-e",
        str(directory / "error.log"),
    ]
    nginx = procs.start("nginx", cmd, cwd=directory, env=dict(os.environ), log=log)
    wait_http(nginx_port, SMALL_PATH, nginx, log, "nginx")

    sink_port = hubs.free_port()
    log = workdir / "upload-sink.log"
    sink = procs.start(
        "upload-sink",
        [sys.executable, str(HERE / "upload_sink.py"), str(sink_port)],
        cwd=workdir,
        env=dict(os.environ),
        log=log,
    )
    wait_http(sink_port, "/", sink, log, "upload sink")

    echo_port = hubs.free_port()
    log = workdir / "echo-server.log"
    echo = procs.start(
        "echo-server",
        [str(ws_python), str(HERE / "echo_server.py"), str(echo_port)],
        cwd=workdir,
        env=dict(os.environ),
        log=log,
    )
    wait_listening(echo_port, echo, log, "websocket echo server")
    return Backends(nginx_port, sink_port, echo_port, nginx, sink, echo)


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    wait_listening(port, proc, log, what)
    with Client("127.0.0.1", port, None, timeout=10) as c:
        r = c.request("GET", path)
    if r.status != 200:
        raise BenchError(f"{what}: GET {path} answered {r.status}; its log:\n{log_tail(log)}")


def versions(ws_python: Path) -> dict[str, str]:
    nginx = subprocess.run(
        [str(nginx_command()), "-v"], capture_output=True, text=True, check=False, timeout=10
    )
    ws = hubs.tool_version(
        [str(ws_python), "-c", "import websockets; print(websockets.__version__)"]
    )
    return {"nginx": (nginx.stderr or nginx.stdout).strip().split("/")[-1], "websockets": ws}
