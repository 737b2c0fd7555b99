"""`/hub/api/users/{name}/server` and `/hub/api/users/{name}/servers/{server}`.

POST starts (201 ready, 202 still starting or already starting, 400 already
running or stopping); DELETE stops (204 stopped, 202 still stopping);
`{"remove": true}` also deletes a named server.
"""

from __future__ import annotations

from typing import Any

from hub.api.base import APIHandler, keeps_permissions, needs_scope
from hub.errors import BadRequest


def start_options(body: Any) -> Any:
    """The user options in a start request.

    JupyterHub 6 takes `{"user_options": {...}, "display_name": ...}`, and, from
    older clients, the whole body as the options; both are accepted.
    """
    if not isinstance(body, dict) or not {"user_options", "display_name"} & set(body):
        return body
    if not isinstance(body.get("display_name", ""), str):
        raise BadRequest("display_name must be a string")
    options = body.get("user_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("user_options must be an object or null")
    return options


class ServerAPIHandler(APIHandler):
    @keeps_permissions
    @needs_scope("start:servers")
    async def post(self, name: str, server_name: str = "") -> None:
        options = start_options(self.json_body(allow_empty=True))
        outcome = await self.hub.orchestrator.start(self.req, name, server_name, options)
        self.set_status(201 if outcome == "ready" else 202)
        self.set_header("Content-Type", "text/plain")
        self.finish()

    @keeps_permissions
    @needs_scope("delete:servers")
    async def delete(self, name: str, server_name: str = "") -> None:
        body = self.json_object(allow_empty=True)
        unknown = set(body) - {"remove"}
        if unknown:
            raise BadRequest("the only field accepted here is remove")
        remove = body.get("remove", False)
        if not isinstance(remove, bool):
            raise BadRequest("remove must be true or false")
        outcome = await self.hub.orchestrator.stop(self.req, name, server_name, remove)
        if outcome == "stopped":
            self.no_content()
        else:
            self.set_status(202)
            self.finish()


routes = [
    (r"/api/users/([^/]+)/server", ServerAPIHandler),
    (r"/api/users/([^/]+)/servers/([^/]*)", ServerAPIHandler),
]
