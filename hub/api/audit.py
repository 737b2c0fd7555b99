"""`GET /hub/api/audit`: the audit log, newest first (an Atrium extension).

Needs the `read:audit` scope (held by the admin role), unfiltered: the log is
about the whole hub. Query arguments narrow it down:

- `actor`, `target`: exact names (`target` is a user, group or `user/server`);
- `action`: one action (`user.create`) or a noun's actions (`user.` or `user.*`);
- `since`: an ISO 8601 time; events at or after it (a time without zone is UTC);
- `offset`, `limit`: as on every list; paginated models with
  `Accept: application/jupyterhub-pagination+json`, a bare list otherwise.

Each event is `{id, at, actor, action, target, details}` (`hub.ops.audit`).
"""

from __future__ import annotations

from hub.api.base import APIHandler, needs_scope
from hub.errors import BadRequest, Forbidden
from hub.log import bounded
from hub.ops import audit as audit_ops
from hub.rbac.scopes import ALL
from hub.timeutil import parse_timestamp

MAX_FILTER_CHARS = 300


class AuditAPIHandler(APIHandler):
    def text_filter(self, name: str) -> str | None:
        value = self.get_query_argument(name, None)
        if value is None or value == "":
            return None
        if len(value) > MAX_FILTER_CHARS:
            raise BadRequest(f"{name} is too long (at most {MAX_FILTER_CHARS} characters)")
        return value

    @needs_scope("read:audit")
    async def get(self) -> None:
        if self.req.parsed.get("read:audit") != ALL:
            raise Forbidden("Reading the audit log needs the read:audit scope without a filter")
        offset, limit = self.pagination()
        since = None
        raw_since = self.text_filter("since")
        if raw_since is not None:
            try:
                since = parse_timestamp(raw_since)
            except ValueError:
                raise BadRequest(
                    f"since must be an ISO 8601 time such as 2024-09-01T08:00:00Z, "
                    f"not {bounded(raw_since, 40)}"
                ) from None
        items, total = await self.db.run(
            audit_ops.list_events,
            offset=offset,
            limit=limit,
            action=self.text_filter("action"),
            actor=self.text_filter("actor"),
            target=self.text_filter("target"),
            since=since,
        )
        if self.accepts_pagination:
            self.write_json(self.paginated(items, offset, limit, total))
        else:
            self.write_json(items)


routes = [(r"/api/audit", AuditAPIHandler)]
