"""`POST /hub/api/roster`: preview or import a class roster (an Atrium extension).

The body is the roster itself (`Content-Type: text/csv`, UTF-8) or the JSON
object `{"csv": "..."}`; a body sent without a type (or as curl's default form
type) is taken as JSON when it starts with `{`, as CSV otherwise.

By default nothing changes and the answer is the plan; `?apply=true` imports
it, leaving out rows with errors, and `?apply=true&skip_errors=false` imports
nothing when any row has an error. Both need `admin:users` and `admin:groups`.
The roster format and the rules are in `hub.ops.roster`.
"""

from __future__ import annotations

from hub.api.base import APIHandler, needs_scope
from hub.errors import BadRequest
from hub.log import bounded
from hub.ops import roster as roster_ops

CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv"})
# no type, or curl's default for --data-binary: told apart by the first character
SNIFFED_TYPES = frozenset({"", "application/x-www-form-urlencoded"})


class RosterAPIHandler(APIHandler):
    def roster_text(self) -> str:
        content_type = self.request.headers.get("Content-Type", "")
        media, _, params = content_type.partition(";")
        media = media.strip().lower()
        if media in SNIFFED_TYPES:
            # what curl --data-binary and form-less clients send: a JSON object or CSV
            media = "application/json" if self.body.lstrip().startswith(b"{") else "text/csv"
        if media == "application/json":
            body = self.json_object()
            unknown = set(body) - {"csv"}
            if unknown:
                raise BadRequest(
                    f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}; "
                    'send {"csv": "..."}'
                )
            text = body.get("csv")
            if not isinstance(text, str):
                raise BadRequest("csv must be the roster's text, as a string")
            return text
        if media not in CSV_TYPES:
            raise BadRequest(
                'send the roster as text/csv (UTF-8) or as JSON {"csv": "..."}, '
                f"not {bounded(media, 60)}"
            )
        charset = params.partition("charset=")[2].strip().strip('"').lower()
        if charset and charset not in {"utf-8", "utf8", "us-ascii"}:
            raise BadRequest(f"the roster must be UTF-8, not {bounded(charset, 30)}")
        return roster_ops.decode_roster(self.body)

    @needs_scope("admin:users")
    async def post(self) -> None:
        text = self.roster_text()
        result = await self.db.run(
            roster_ops.import_roster,
            self.ctx,
            self.req,
            text,
            apply=self.flag_argument("apply"),
            skip_errors=self.get_query_argument("skip_errors", "true").lower()
            not in {"0", "false"},
        )
        self.write_json(result)


routes = [(r"/api/roster", RosterAPIHandler)]
