"""A user's server for the proxy-restore benchmark: answers every request with 200 and
an `X-Light-Server` header naming its user, so a client can tell it from the hub.

Listens on 127.0.0.1 at the port in argv[1], or else the one in JUPYTERHUB_SERVICE_URL
(what both hubs' spawners give a server). Started by the hubs' spawners, never by hand.
"""

from __future__ import annotations

import http.server
import os
import sys
from urllib.parse import urlsplit

USER = os.environ.get("JUPYTERHUB_USER", "")


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _head(self) -> bytes:
        body = USER.encode()
        self.send_response(200)
        self.send_header("X-Light-Server", USER)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_GET(self) -> None:
        self.wfile.write(self._head())

    def do_HEAD(self) -> None:
        self._head()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    # JupyterHub's spawner adds its own --flags after the command: a port is digits
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        port = int(sys.argv[1])
    else:
        port = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"]).port or 0
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Answer).serve_forever()


if __name__ == "__main__":
    main()
