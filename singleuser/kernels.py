"""The kernel websocket bridge: browser websocket <-> the kernel's ZMQ sockets.

jupyter_server's bridge writes each kernel message to the browser's TCP
connection as it comes, with Nagle's algorithm on: the small frames of one
execution (status busy, execute_input, stream, execute_reply, status idle) wait
for the peer's delayed ACK, ~40 ms per round trip. This bridge turns Nagle off
on the browser's connection, so every kernel message leaves at once. Frames of
the binary v1 protocol (`v1.kernel.websocket.jupyter.org`, what JupyterLab
speaks) are passed through as jupyter_server does, without decoding them
except where the iopub rate limits read a header; comm messages (widgets) are
ordinary messages and pass the same way.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager


class FastKernelConnection(ZMQChannelsWebsocketConnection):
    def connect(self) -> Any:
        self.websocket_handler.set_nodelay(True)
        return super().connect()


# sockaddr_un.sun_path holds 108 bytes with the final NUL; ipc endpoints are "<ip>-<n>"
IPC_PATH_MAX = 107 - len("-65535")
_short_dir: list[str] = []


def _short_private_dir() -> str:
    """A 0700 directory with a short path, for kernel sockets whose runtime dir is
    too deep for a Unix socket address (made once per server, removed at exit)."""
    if not _short_dir:
        import atexit
        import shutil
        import tempfile

        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        base = runtime if runtime and os.access(runtime, os.W_OK) else None
        path = tempfile.mkdtemp(prefix="atrium-k-", dir=base)  # mode 0700
        atexit.register(shutil.rmtree, path, True)
        _short_dir.append(path)
    return _short_dir[0]


class PrivateKernelManager(ServerKernelManager):
    """On the ipc transport, kernel sockets sit beside the connection file in the
    0700 runtime dir, or, when that path is too long for a socket address, in a
    short private directory of their own."""

    def _ip_default(self) -> str:
        if self.transport != "ipc":
            return str(super()._ip_default())
        stem = os.path.splitext(self.connection_file)[0] if self.connection_file else ""
        if stem and len(stem) + len("-ipc") <= IPC_PATH_MAX:
            return stem + "-ipc"
        name = os.path.basename(stem) or "kernel"
        return os.path.join(_short_private_dir(), name[:48])
