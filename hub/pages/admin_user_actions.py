"""The users page's forms: what `/hub/admin` does without JavaScript.

Each action posts here (tornado checks the XSRF field first: without it, a 403
and nothing done), calls the same units of work and orchestrator as the REST
API, and sends the browser back to the list it came from (`back`, which must
be a users-list URL) with the outcome as a flash (post/redirect/get). A failure
a person can act on (no such user, a name taken, a blocked user) comes back as
an error flash naming it, never a traceback. Deleting asks first, on a page of
its own. Bulk actions run a few users at a time and report each user's outcome.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.users import patch_user
from hub.db.models import User
from hub.errors import AtriumError, BadRequest, Forbidden
from hub.names import validate_server_name, validate_username
from hub.ops import groups as group_ops
from hub.ops import users as user_ops
from hub.ops.context import HubContext
from hub.pages.admin_panel import AdminPage
from hub.pages.admin_users_view import shown
from hub.pages.base import safe_next
from hub.rbac import scopes
from hub.rbac.access import Requester

# users one bulk request may name (the most one page of the list shows)
MAX_BULK = 200
# servers started or stopped at once by a bulk action
BULK_CONCURRENCY = 5
# lines the "add users" box takes (as many as POST /hub/api/users)
MAX_NEW_USERS = 10_000
MAX_NAME_FIELD = 300

Method = Callable[..., Awaitable[None]]


def acts_with(*required: str) -> Callable[[Method], Method]:
    """The page's counterpart of `hub.api.base.needs_scope`: the admin panel (log in
    first; a 403 without `admin-ui`), then any one of `required`, as the REST API
    endpoint doing the same asks. Scope names are checked at import. The method gets
    the requester after `self`."""
    for scope in required:
        if scope not in scopes.SCOPES:
            raise ValueError(f"acts_with: unknown scope {scope!r}")

    def decorator(method: Method) -> Method:
        @functools.wraps(method)
        async def wrapper(self: UserAction, *args: Any) -> None:
            req = self.require_admin()
            if not req.has_any(required):
                raise Forbidden(f"Your account may not do this (it needs {' or '.join(required)}).")
            await method(self, req, *args)

        return wrapper

    return decorator


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    text: str

    @property
    def line(self) -> str:
        return f"{shown(self.name)}: {self.text}"


class UserAction(AdminPage):
    """A form action on the users page."""

    admin_tab = "users"

    def users_list(self, url: str) -> str:
        """`url` if it is the users page (with any query), else the users page."""
        url = safe_next(url[:2000], self.ctx.base_url, self.admin_url)
        if url != self.admin_url and not url.startswith(self.admin_url + "?"):
            return self.admin_url
        return url

    @property
    def back(self) -> str:
        """Where to go afterwards: the list the form was on."""
        return self.users_list(self.get_body_argument("back", ""))

    def field(self, name: str, limit: int = MAX_NAME_FIELD) -> str:
        value = self.get_body_argument(name, "")
        if len(value) > limit:
            raise BadRequest(f"The {name.replace('_', ' ')} is too long.")
        return value

    def server_field(self) -> str:
        """The server named in the form: '' for the default server."""
        server = self.field("server", 100)
        if server:
            if not self.ctx.allow_named_servers:
                raise BadRequest("Named servers are not enabled on this hub.")
            validate_server_name(server)
        return server

    async def attempt(self, work: Awaitable[str], failed: str) -> None:
        """Run `work` (its result says what was done) and go back with the outcome;
        a failure's message follows `failed`."""
        try:
            text = await work
        except AtriumError as e:
            self.done(self.back, "error", f"{failed}: {e.message}")
            return
        self.done(self.back, "ok", text)

    def confirm_page(self, preview: list[tuple[str, int]], back: str) -> None:
        """Ask before deleting the users in `preview` (name, servers running)."""
        names = [name for name, _ in preview]
        one = len(names) == 1
        self.admin_page(
            "admin_users_confirm.html",
            title=f"Delete {shown(names[0])}?" if one else f"Delete {len(names)} users?",
            shown=shown,
            preview=preview,
            back=self.users_list(back),
            admin_url=self.admin_url,
            action=(
                f"{self.admin_url}/users/{quote(names[0], safe='@')}/delete"
                if one
                else f"{self.admin_url}/users/bulk"
            ),
        )

    def permissions_changed(self) -> None:
        """Tokens are resolved afresh after a change of names, admin flags or groups,
        as after the same change through the REST API."""
        self.hub.requester_cache.invalidate()


def owner_text(name: str, server: str) -> str:
    return f"{shown(name)}'s server" + (f" {shown(server)}" if server else "")


# --- one user ----------------------------------------------------------------------------


class StartHandler(UserAction):
    """POST /hub/admin/users/<name>/start, `server` naming which ('' the default)."""

    async def _start(self, req: Requester, name: str, server: str) -> str:
        orchestrator = self.hub.orchestrator
        wait = orchestrator.timeouts.page_spawn
        if await orchestrator.start(req, name, server, None, wait=wait) == "ready":
            return f"Started {owner_text(name, server)}."
        return f"{owner_text(name, server)} is starting."

    @acts_with("start:servers")
    async def post(self, req: Requester, name: str) -> None:
        server = self.server_field()
        failed = f"Could not start {owner_text(name, server)}"
        await self.attempt(self._start(req, name, server), failed)


class StopHandler(UserAction):
    """POST /hub/admin/users/<name>/stop, `server` naming which ('' the default)."""

    async def _stop(self, req: Requester, name: str, server: str) -> str:
        if await self.hub.orchestrator.stop(req, name, server) == "stopped":
            return f"Stopped {owner_text(name, server)}."
        return f"{owner_text(name, server)} is stopping."

    @acts_with("delete:servers")
    async def post(self, req: Requester, name: str) -> None:
        server = self.server_field()
        failed = f"Could not stop {owner_text(name, server)}"
        await self.attempt(self._stop(req, name, server), failed)


class RenameHandler(UserAction):
    """POST /hub/admin/users/<name>/rename with `new_name`."""

    async def _rename(self, req: Requester, name: str, new_name: str) -> str:
        model = await patch_user(self.hub, req, name, {"name": new_name})
        self.permissions_changed()
        if model.get("name") == name:
            return f"{shown(name)} keeps the same name."
        return f"Renamed {shown(name)} to {model.get('name', new_name)}."

    @acts_with("admin:users")
    async def post(self, req: Requester, name: str) -> None:
        new_name = self.field("new_name").strip()
        await self.attempt(self._rename(req, name, new_name), f"Could not rename {shown(name)}")


class AdminFlagHandler(UserAction):
    """POST /hub/admin/users/<name>/admin with `admin` = 1 (grant) or 0 (remove)."""

    async def _set(self, req: Requester, name: str, admin: bool) -> str:
        await patch_user(self.hub, req, name, {"admin": admin})
        self.permissions_changed()
        who = shown(name)
        return f"{who} is now an admin." if admin else f"{who} is no longer an admin."

    @acts_with("admin:users")
    async def post(self, req: Requester, name: str) -> None:
        value = self.field("admin", 5)
        if value not in ("0", "1"):
            raise BadRequest("admin must be 1 (make an admin) or 0 (remove admin rights).")
        await self.attempt(self._set(req, name, value == "1"), f"Could not change {shown(name)}")


class BlockHandler(UserAction):
    """POST /hub/admin/users/<name>/block with `blocked` = 1 (block, which also ends
    their logins and stops their servers) or 0 (unblock)."""

    async def _set(self, req: Requester, name: str, blocked: bool) -> str:
        await patch_user(self.hub, req, name, {"blocked": blocked})
        self.permissions_changed()
        if blocked:
            return f"Blocked {shown(name)}: their logins ended and their servers were stopped."
        return f"Unblocked {shown(name)}."

    @acts_with("admin:users")
    async def post(self, req: Requester, name: str) -> None:
        value = self.field("blocked", 5)
        if value not in ("0", "1"):
            raise BadRequest("blocked must be 1 (block) or 0 (unblock).")
        await self.attempt(self._set(req, name, value == "1"), f"Could not change {shown(name)}")


def _delete_preview(
    session: Session, ctx: HubContext, req: Requester, names: Sequence[str]
) -> list[tuple[str, int]]:
    """The users about to be deleted that exist and `req` may delete, with how many of
    their servers run (they are stopped first)."""
    preview = []
    for name in names:
        try:
            user_ops.check_delete(session, req, name)
            model = user_ops.get_user(session, ctx, req, name)
        except AtriumError:
            continue
        preview.append((name, len(model.get("servers") or {})))
    return preview


class DeleteHandler(UserAction):
    """GET /hub/admin/users/<name>/delete asks to confirm; POST deletes."""

    @acts_with("delete:users")
    async def get(self, req: Requester, name: str) -> None:
        preview = await self.db.run(_delete_preview, self.ctx, req, [name])
        if not preview:
            # the same check again, for its message: 404, or why this one may not go
            await self.db.run(user_ops.check_delete, req, name)
        self.confirm_page(preview, self.get_query_argument("back", ""))

    async def _delete(self, req: Requester, name: str) -> str:
        await self.hub.orchestrator.delete_user(req, name)
        self.permissions_changed()
        return f"Deleted {shown(name)}."

    @acts_with("delete:users")
    async def post(self, req: Requester, name: str) -> None:
        await self.attempt(self._delete(req, name), f"Could not delete {shown(name)}")


# --- many users --------------------------------------------------------------------------

# what each bulk action needs, as the REST API endpoint it stands for
BULK_SCOPES = {
    "start": "start:servers",
    "stop": "delete:servers",
    "delete": "delete:users",
    "group": "groups",
}


class BulkHandler(UserAction):
    """POST /hub/admin/users/bulk: `action` on every `user` ticked in the list."""

    async def _each(
        self, names: Sequence[str], one: Callable[[str], Awaitable[str]]
    ) -> list[Outcome]:
        gate = asyncio.Semaphore(BULK_CONCURRENCY)

        async def run(name: str) -> Outcome:
            async with gate:
                try:
                    return Outcome(name, True, await one(name))
                except AtriumError as e:
                    return Outcome(name, False, e.message)

        return list(await asyncio.gather(*(run(n) for n in names)))

    def report(self, outcomes: list[Outcome], did: str, failed: str) -> None:
        good = [o for o in outcomes if o.ok]
        bad = [o for o in outcomes if not o.ok]
        text = f"{did} {len(good)} of {len(outcomes)}."
        if bad:
            text += f" {len(bad)} {failed}."
        self.done(self.back, "error" if bad else "ok", text, [o.line for o in bad + good])

    def names(self) -> list[str]:
        names = list(dict.fromkeys(self.get_body_arguments("user")))
        if len(names) > MAX_BULK:
            raise BadRequest(f"At most {MAX_BULK} users at once.")
        if any(len(n) > MAX_NAME_FIELD for n in names):
            raise BadRequest("A user name in the request is too long.")
        return names

    @acts_with(*BULK_SCOPES.values())
    async def post(self, req: Requester) -> None:
        action = self.field("action", 10)
        names = self.names()
        if action not in BULK_SCOPES:
            raise BadRequest("The action must be start, stop, delete or group.")
        if not req.has(BULK_SCOPES[action]):
            raise Forbidden(f"Your account may not do this (it needs {BULK_SCOPES[action]}).")
        if not names:
            self.done(self.back, "error", "Select at least one user first.")
            return
        orchestrator = self.hub.orchestrator
        if action == "start":

            async def start(name: str) -> str:
                outcome = await orchestrator.start(
                    req, name, "", None, wait=orchestrator.timeouts.page_spawn
                )
                return "running" if outcome == "ready" else "starting"

            self.report(await self._each(names, start), "Started servers for", "could not start")
        elif action == "stop":

            async def stop(name: str) -> str:
                outcome = await orchestrator.stop(req, name, "")
                return "stopped" if outcome == "stopped" else "stopping"

            self.report(await self._each(names, stop), "Stopped servers for", "could not stop")
        elif action == "delete":
            await self._bulk_delete(req, names)
        else:
            await self._add_to_group(req, names)

    async def _bulk_delete(self, req: Requester, names: list[str]) -> None:
        if self.get_body_argument("confirm", "") != "yes":
            preview = await self.db.run(_delete_preview, self.ctx, req, names)
            if not preview:
                self.done(self.back, "error", "None of the selected users can be deleted.")
                return
            self.confirm_page(preview, self.back)
            return

        async def delete(name: str) -> str:
            await self.hub.orchestrator.delete_user(req, name)
            return "deleted"

        outcomes = await self._each(names, delete)
        self.permissions_changed()
        self.report(outcomes, "Deleted", "could not be deleted")

    async def _add_to_group(self, req: Requester, names: list[str]) -> None:
        group = self.field("group", 200).strip()
        if not group:
            self.done(self.back, "error", "Choose a group to add the selected users to.")
            return
        try:
            await self.db.run(group_ops.change_members, self.ctx, req, group, names, True)
        except AtriumError as e:
            self.done(self.back, "error", f"Could not add users to {shown(group)}: {e.message}")
            return
        self.permissions_changed()
        self.done(
            self.back,
            "ok",
            f"Added {len(names)} user{'s' if len(names) != 1 else ''} to {shown(group)}.",
            [shown(n) for n in names],
        )


# --- new users ---------------------------------------------------------------------------


def read_lines(text: str) -> tuple[list[str], list[str]]:
    """Valid, normalised usernames from `text` (one a line, blank lines skipped,
    repeats once), and a note per line that is not a valid username."""
    valid: dict[str, None] = {}
    invalid = []
    lines = text.splitlines()
    if len(lines) > MAX_NEW_USERS:
        raise BadRequest(f"At most {MAX_NEW_USERS} users at once.")
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        try:
            valid[validate_username(line)] = None
        except BadRequest as e:
            invalid.append(f"line {number}: {e.message}")
    return list(valid), invalid


def create_new_users(
    session: Session, ctx: HubContext, req: Requester, names: list[str], admin: bool
) -> tuple[list[str], list[str]]:
    """(created, already there) for valid `names`, in one transaction."""
    existing = set(session.scalars(select(User.name).where(User.name.in_(names))))
    fresh = [n for n in names if n not in existing]
    if fresh:
        user_ops.create_users(session, ctx, req, fresh, admin)
    return fresh, [n for n in names if n in existing]


class AddUsersHandler(UserAction):
    """POST /hub/admin/users/add: `usernames` (one a line) and `admin`."""

    @acts_with("admin:users")
    async def post(self, req: Requester) -> None:
        admin = self.get_body_argument("admin", "") == "1"
        names, invalid = read_lines(self.get_body_argument("usernames", ""))
        if not names and not invalid:
            self.done(self.back, "error", "Type at least one username, one per line.")
            return
        created: list[str] = []
        existed: list[str] = []
        if names:
            try:
                created, existed = await self.db.run(create_new_users, self.ctx, req, names, admin)
            except AtriumError as e:
                self.done(self.back, "error", f"No users were added: {e.message}")
                return
        parts = [f"Added {len(created)} user{'' if len(created) == 1 else 's'}"]
        if existed:
            parts.append(f"{len(existed)} already existed")
        if invalid:
            parts.append(f"{len(invalid)} line{'' if len(invalid) == 1 else 's'} not valid")
        items = (
            invalid + [f"{n}: already existed" for n in existed] + [f"{n}: added" for n in created]
        )
        self.done(self.back, "error" if invalid else "ok", "; ".join(parts) + ".", items)


routes = [
    (r"/admin/users/add", AddUsersHandler),
    (r"/admin/users/bulk", BulkHandler),
    (r"/admin/users/([^/]+)/start", StartHandler),
    (r"/admin/users/([^/]+)/stop", StopHandler),
    (r"/admin/users/([^/]+)/rename", RenameHandler),
    (r"/admin/users/([^/]+)/admin", AdminFlagHandler),
    (r"/admin/users/([^/]+)/block", BlockHandler),
    (r"/admin/users/([^/]+)/delete", DeleteHandler),
]
