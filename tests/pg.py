"""A real PostgreSQL server for the tests, started from Debian's binaries.

`PostgresServer.start()` runs initdb and postgres in a temporary directory on a
free loopback port (as the `postgres` user when the tests run as root, because
PostgreSQL refuses to run as root) and `stop()` ends that process by its PID.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://atrium@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://atrium@127.0.0.1:{self.port}/{dbname}"

    def _as_owner(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam("postgres")
        return {"user": pw.pw_uid, "group": pw.pw_gid}

    def start(self) -> None:
        initdb, postgres = find_bin("initdb"), find_bin("postgres")
        if not initdb or not postgres:
            raise FileNotFoundError("PostgreSQL binaries (initdb, postgres) not found")
        data = self.root / "data"
        sockets = self.root / "sock"
        self.root.mkdir(parents=True, exist_ok=True)
        sockets.mkdir(exist_ok=True)
        owner = self._as_owner()
        if owner:
            for path in (self.root, sockets):
                os.chown(path, owner["user"], owner["group"])  # type: ignore[arg-type]
        if not (data / "PG_VERSION").exists():  # a stopped server starts again on its data
            subprocess.run(
                [
                    initdb,
                    *("-D", str(data), "-U", "atrium", "--auth=trust", "-E", "UTF8", "--no-sync"),
                ],
                check=True,
                capture_output=True,
                **owner,  # type: ignore[arg-type]
            )
        with open(self.root / "postgres.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    postgres,
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(sockets),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                **owner,  # type: ignore[arg-type]
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "PostgreSQL did not start:\n"
                        + (self.root / "postgres.log").read_text(errors="replace")[-2000:]
                    ) from None
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self, fast: bool = False) -> None:
        """Smart shutdown (waits for clients to leave) of the server we started, by its PID;
        `fast` ends the clients' sessions at once, as a database going down does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if fast else signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
