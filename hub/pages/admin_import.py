"""The admin panel's Import roster page: `/hub/admin/import`.

A class roster (CSV: username, full_name, email, groups separated by `;`) is
uploaded as a file or pasted. The first submit shows a preview, row by row, of
what importing would do (`hub.ops.roster.plan_roster`), changing nothing. The
preview carries the roster in a hidden field with a signed token naming a hash
of that text and of the plan; "Apply" imports exactly that roster, in one
transaction, and only if neither the text nor the plan changed since the
preview (someone else's change to the same users shows a new preview to check
instead). A roster with any row in error is never applied: the preview says
what to fix.

The request body is streamed, so that a roster over `c.Hub.max_body_size` gets
this page with a clear message instead of a cut connection; the XSRF token is
then checked once the body (which carries it) has been read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session
from tornado import httputil, web

from hub.api.base import limit_streamed_body
from hub.errors import BadRequest, Conflict, Forbidden, PayloadTooLarge
from hub.ops import roster as roster_ops
from hub.ops.context import HubContext
from hub.pages.admin_panel import AdminPage
from hub.rbac.access import Requester
from hub.rbac.scopes import ALL

# the name the preview token is signed under (tornado signed values carry a name)
PREVIEW_SIGNED_NAME = "atrium-roster-preview"
# how long a preview may be applied after it was shown (days)
PREVIEW_MAX_AGE_DAYS = 1
EXAMPLE = (
    "username,full_name,email,groups\n"
    "ann,Ann Lee,ann@example.org,physics-101;lab-a\n"
    "bo,Bo Chen,bo@example.org,physics-101\n"
)
ACTION_LABELS = {
    "create": "Create user",
    "update": "Update",
    "unchanged": "Unchanged",
    "error": "Error",
}


class PlanChanged(Conflict):
    """The hub changed between the preview and the apply; `plan` is the new preview."""

    def __init__(self, plan: dict[str, Any]) -> None:
        super().__init__(
            "The hub changed since the preview (someone changed some of these users or "
            "groups). Nothing was imported; check this new preview and apply it again."
        )
        self.plan = plan


def normalize(text: str) -> str:
    """One form of the roster's text for hashing: browsers send hidden fields back with
    CRLF line ends whatever they were, and a leading byte order mark means nothing."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def plan_hash(plan: dict[str, Any]) -> str:
    """What a preview showed, as a hash: every row's report and the groups to create."""
    shown = {"rows": plan["rows"], "groups": plan["groups_created"]}
    return hashlib.sha256(orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)).hexdigest()


def preview_roster(session: Session, ctx: HubContext, req: Requester, text: str) -> dict[str, Any]:
    return roster_ops.plan_roster(session, ctx, req, roster_ops.parse_roster(text))


def apply_previewed(
    session: Session, ctx: HubContext, req: Requester, text: str, expected: str
) -> dict[str, Any]:
    """Import `text` if its plan is still the one previewed (hash `expected`) and has no
    errors; otherwise raise, and nothing changes."""
    rows = roster_ops.parse_roster(text)
    plan = roster_ops.plan_roster(session, ctx, req, rows)
    if plan_hash(plan) != expected:
        raise PlanChanged(plan)
    if plan["summary"]["error"]:
        raise BadRequest("The roster has rows with errors; fix them and preview it again.")
    return roster_ops.apply_roster(session, ctx, req, rows)


@dataclass(frozen=True)
class Submitted:
    """The roster from the form, and where it came from."""

    text: str
    source: str  # "file" or "text"
    filename: str = ""


def preview_sentence(summary: dict[str, int]) -> str:
    """What a preview would do, in a sentence."""
    text = (
        f"Nothing has changed yet. Importing this roster would create {summary['create']} "
        f"{'user' if summary['create'] == 1 else 'users'}, update {summary['update']}, "
        f"leave {summary['unchanged']} unchanged"
    )
    errors = summary["error"]
    if errors:
        text += f", and {errors} {'row has an error' if errors == 1 else 'rows have errors'}"
    return text + "."


def result_message(result: dict[str, Any]) -> tuple[str, list[str]]:
    """The flash after an import: a sentence of counts, and the rows that changed."""
    s = result["summary"]
    text = (
        f"Roster imported: {s['create']} {'user' if s['create'] == 1 else 'users'} created, "
        f"{s['update']} updated, {s['unchanged']} unchanged."
    )
    if result["groups_created"]:
        text += f" Groups created: {', '.join(result['groups_created'])}."
    items = [
        f"Line {r['line']}, {r['username']}: {'; '.join(r['changes'])}"
        for r in result["rows"]
        if r["changes"]
    ]
    return text, items


@web.stream_request_body
class ImportPage(AdminPage):
    """`/hub/admin/import`: GET shows the form; POST previews (`step=preview`) or
    imports a previewed roster (`step=apply`)."""

    admin_tab = "import"
    _chunks: list[bytes]
    _size = 0

    def check_xsrf_cookie(self) -> None:
        """Checked in `post`, once the streamed body that carries the token is read."""

    async def prepare(self) -> None:
        await super().prepare()
        self._chunks = []
        if self.request.method != "POST":
            return
        self._require_importer()
        too_large = limit_streamed_body(self.request, self.hub.max_body_size)
        if too_large is not None:
            self._too_large(too_large)

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self.hub.max_body_size:
            self._chunks.append(chunk)
        else:
            self._chunks.clear()

    def _require_importer(self) -> Requester:
        req = self.require_admin()
        if not all(req.parsed.get(s) == ALL for s in roster_ops.REQUIRED_SCOPES):
            raise Forbidden(
                "Importing a roster needs the admin:users and admin:groups permissions."
            )
        return req

    def _too_large(self, size: int) -> None:
        limit = self.hub.max_body_size
        raise PayloadTooLarge(
            f"The roster is too large ({size:,} bytes; this hub takes at most {limit:,} "
            "bytes at once). Split it into smaller files and import them one by one."
        )

    def _form(self, status: int = 200, **values: Any) -> None:
        values.setdefault("error", "")
        values.setdefault("text", "")
        self.admin_page(
            "admin_import.html",
            status,
            title="Import roster",
            mode="form",
            example=EXAMPLE,
            columns=roster_ops.COLUMNS,
            import_url=f"{self.admin_url}/import",
            max_bytes=self.hub.max_body_size,
            **values,
        )

    async def get(self) -> None:
        self._require_importer()
        self._form()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A roster too large, or not one at all, gets the form again with the reason."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if self.requester is not None and isinstance(exc, BadRequest | PayloadTooLarge):
            self._form(status_code, error=exc.message)
            return
        super().write_error(status_code, **kwargs)

    # --- POST -----------------------------------------------------------------------

    def _read_body(self) -> None:
        """Parse the streamed form, then check its XSRF token."""
        if self._size > self.hub.max_body_size:
            self._too_large(self._size)
        try:
            httputil.parse_body_arguments(
                self.request.headers.get("Content-Type", ""),
                b"".join(self._chunks),
                self.request.body_arguments,
                self.request.files,
                self.request.headers,
            )
        except httputil.HTTPInputError:
            # without a readable form there is no XSRF token either
            raise web.HTTPError(403, "the form could not be read") from None
        for name, values in self.request.body_arguments.items():
            self.request.arguments.setdefault(name, []).extend(values)
        web.RequestHandler.check_xsrf_cookie(self)

    def _submitted(self) -> Submitted:
        pasted = self.get_body_argument("roster_text", "", strip=False)
        uploads = [f for f in self.request.files.get("roster_file", []) if f["body"]]
        if uploads and pasted.strip():
            raise BadRequest("Choose a file or paste the roster, not both.")
        if uploads:
            upload = uploads[0]
            return Submitted(
                roster_ops.decode_roster(upload["body"]), "file", upload["filename"][:200]
            )
        if not pasted.strip():
            raise BadRequest("Choose a CSV file or paste the roster first.")
        return Submitted(pasted, "text")

    async def post(self) -> None:
        req = self._require_importer()
        self._read_body()
        step = self.get_body_argument("step", "")
        if step == "preview":
            try:
                submitted = self._submitted()
            except BadRequest as e:
                pasted = self.get_body_argument("roster_text", "", strip=False)
                self._form(400, error=e.message, text=pasted)
                return
            await self._preview(req, normalize(submitted.text), submitted=submitted)
        elif step == "apply":
            await self._apply(req)
        else:
            raise BadRequest("Unknown step; reload the page and start again.")

    def _token(self, req: Requester, text: str, plan: dict[str, Any]) -> str:
        value = f"{req.name}\n{text_hash(text)}\n{plan_hash(plan)}"
        return self.create_signed_value(PREVIEW_SIGNED_NAME, value).decode()

    def _read_token(self, req: Requester) -> tuple[str, str] | None:
        """(roster text hash, plan hash) from a preview's token, if it is this person's,
        genuine and recent."""
        raw = self.get_body_argument("token", "")
        value = web.decode_signed_value(
            self.application.settings["cookie_secret"],
            PREVIEW_SIGNED_NAME,
            raw,
            max_age_days=PREVIEW_MAX_AGE_DAYS,
        )
        if value is None:
            return None
        name, _, rest = value.decode().partition("\n")
        text_sha, _, plan_sha = rest.partition("\n")
        if name != req.name or not text_sha or not plan_sha:
            return None
        return text_sha, plan_sha

    async def _preview(
        self,
        req: Requester,
        text: str,
        *,
        status: int = 200,
        plan: dict[str, Any] | None = None,
        submitted: Submitted | None = None,
        notice: str = "",
    ) -> None:
        if plan is None:
            try:
                plan = await self.db.run(preview_roster, self.ctx, req, text)
            except BadRequest as e:
                self._form(400, error=f"This roster cannot be read: {e.message}", text=text)
                return
        rows = [{**r, "label": ACTION_LABELS.get(r["action"], r["action"])} for r in plan["rows"]]
        self.admin_page(
            "admin_import.html",
            status,
            title="Import roster: preview",
            mode="preview",
            rows=rows,
            summary=plan["summary"],
            summary_text=preview_sentence(plan["summary"]),
            groups_created=plan["groups_created"],
            text=text,
            token=self._token(req, text, plan),
            source=submitted,
            notice=notice,
            import_url=f"{self.admin_url}/import",
        )

    async def _apply(self, req: Requester) -> None:
        text = normalize(self.get_body_argument("roster", "", strip=False))
        previewed = self._read_token(req)
        if previewed is None:
            self._form(
                400,
                error="This preview has expired or is not valid; preview the roster again. "
                "Nothing was imported.",
                text=text,
            )
            return
        text_sha, plan_sha = previewed
        if text_hash(text) != text_sha:
            await self._preview(
                req,
                text,
                status=409,
                notice="The roster changed since the preview. Nothing was imported; check "
                "this preview of the roster as it is now and apply it again.",
            )
            return
        try:
            result = await self.db.run(apply_previewed, self.ctx, req, text, plan_sha)
        except PlanChanged as e:
            await self._preview(req, text, status=409, plan=e.plan, notice=e.message)
            return
        message, items = result_message(result)
        self.done(f"{self.admin_url}/import", "ok", message, items)


routes = [(r"/admin/import", ImportPage)]
