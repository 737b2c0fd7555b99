"""The offline backend: `--db URL` runs the hub's units of work on the database directly.

It calls the same functions the REST handlers call (`hub.ops`), so the rules
(name validation, conflicts, who may grant what) cannot differ between the two
backends. The requester holds the admin role's scopes and is recorded in the
audit log as `hub-admin:<operating-system user>`.

It never creates or upgrades a schema: a database that is missing, empty or not
at this version's schema is refused with what to run instead. Settings from the
hub's config file (base URL, token lifetime limit) are not read; roles come
from the database, where the hub stores them at each start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hub.cli.backend import PAGE_SIZE, AuditQuery, Model, UserListQuery, token_body
from hub.cli.errors import CLIError
from hub.db import migrate
from hub.db.engine import Database, normalize_url
from hub.db.models import Role
from hub.errors import AtriumError, ConfigError
from hub.log import redact
from hub.ops import audit as audit_ops
from hub.ops import groups as group_ops
from hub.ops import roster as roster_ops
from hub.ops import tokens as token_ops
from hub.ops import users as user_ops
from hub.ops.context import HubContext
from hub.rbac.access import Requester
from hub.rbac.roles import ADMIN_SCOPES, DEFAULT_ROLES, RoleTable

P = ParamSpec("P")
T = TypeVar("T")

CREATE_SCHEMA_HINT = "create it with `atrium upgrade-db --db URL` or by starting the hub once on it"


def actor_name() -> str:
    """Who the audit log says acted: `hub-admin:<operating-system user>`."""
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, OSError):
        import getpass

        try:
            user = getpass.getuser()
        except Exception:
            user = f"uid{os.geteuid()}"
    return f"hub-admin:{user[:64]}"


def _reason(error: SQLAlchemyError) -> str:
    text = str(getattr(error, "orig", None) or error)
    return redact(text.strip().splitlines()[0] if text.strip() else type(error).__name__)


def open_database(url: str) -> Database:
    """A `Database` for `url` at the current schema, or a `CLIError` saying why not."""
    try:
        normalized = normalize_url(url)
    except ConfigError as e:
        raise CLIError(str(e)) from None
    parsed = make_url(normalized)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in {"", ":memory:"}:
            raise CLIError("an in-memory SQLite database has no users; give a database file")
        if not path.startswith("file:") and not Path(path).is_file():
            # opening would create an empty file; a typo must not do that
            raise CLIError(f"no database file at {path}")
    db = Database(normalized, pool_size=1)
    try:
        if migrate.is_empty(db.engine):
            raise CLIError(
                f"the database {shown} has no Atrium schema; create it with "
                f"`atrium upgrade-db --db {shown}` or by starting the hub once on it"
            )
        migrate.check_current(db.engine)
    except ConfigError as e:
        db.close()
        raise CLIError(str(e)) from None
    except SQLAlchemyError as e:
        db.close()
        raise CLIError(f"cannot open the database {shown}: {_reason(e)}") from None
    except BaseException:
        db.close()
        raise
    return db


def _context(session: Session) -> HubContext:
    """The hub context with the roles the hub stored (its config's load_roles)."""
    extra = [
        {"name": r.name, "description": r.description, "scopes": list(r.scopes)}
        for r in session.scalars(select(Role))
        if r.name not in DEFAULT_ROLES
    ]
    return HubContext(roles=RoleTable.from_config(extra))


def _walk_users(session: Session, ctx: HubContext, req: Requester, q: UserListQuery) -> list[Model]:
    items: list[Model] = []
    offset = q.offset
    key = q.sort.lstrip("-")
    while True:
        want = PAGE_SIZE if q.limit is None else min(PAGE_SIZE, q.limit - len(items))
        if want <= 0:
            break
        query = user_ops.UserQuery(
            offset=offset,
            limit=want,
            state=cast(user_ops.StateFilter, q.state),
            name_filter=q.name_filter,
            sort=key,
            descending=q.sort.startswith("-"),
            include_stopped=q.include_stopped,
        )
        page, _total = user_ops.list_users(session, ctx, req, query)
        items.extend(page)
        offset += want
        if len(page) < want:
            break
    return items


def _walk_groups(session: Session, req: Requester) -> list[Model]:
    items: list[Model] = []
    while True:
        page, _total = group_ops.list_groups(session, req, len(items), PAGE_SIZE, False)
        items.extend(page)
        if len(page) < PAGE_SIZE:
            return items


def _audit_events(session: Session, q: AuditQuery) -> list[Model]:
    since = None
    if q.since:
        from hub.timeutil import parse_timestamp

        try:
            since = parse_timestamp(q.since)
        except ValueError as e:
            raise CLIError(f"--since: {e}") from None
    items, _total = audit_ops.list_events(
        session, limit=q.limit, action=q.action, actor=q.actor, target=q.target, since=since
    )
    return items


class OfflineBackend:
    def __init__(self, url: str, actor: str | None = None) -> None:
        self.actor = actor or actor_name()
        self.db = open_database(url)
        self.req = Requester.build("user", self.actor, 0, True, ADMIN_SCOPES)
        try:
            self.ctx = self._run(_context)
        except BaseException:
            self.db.close()
            raise

    def _run(self, fn: Callable[Concatenate[Session, P], T], *a: P.args, **kw: P.kwargs) -> T:
        try:
            return self.db.run_sync(fn, *a, **kw)
        except AtriumError as e:
            raise CLIError(e.message) from None
        except ConfigError as e:
            raise CLIError(str(e)) from None
        except SQLAlchemyError as e:
            raise CLIError(f"database error: {_reason(e)}") from None

    # --- users -------------------------------------------------------------

    def list_users(self, query: UserListQuery) -> list[Model]:
        return self._run(_walk_users, self.ctx, self.req, query)

    def get_user(self, name: str) -> Model:
        return self._run(user_ops.get_user, self.ctx, self.req, name, True)

    def create_users(self, names: Sequence[str], admin: bool) -> list[Model]:
        return self._run(user_ops.create_users, self.ctx, self.req, list(names), admin)

    def update_user(self, name: str, patch: Model) -> Model:
        return self._run(user_ops.update_user, self.ctx, self.req, name, patch)

    def delete_user(self, name: str) -> None:
        self._run(user_ops.delete_user, self.req, name)

    def import_roster(self, text: str, apply: bool, skip_errors: bool) -> Model:
        return self._run(
            roster_ops.import_roster,
            self.ctx,
            self.req,
            text,
            apply=apply,
            skip_errors=skip_errors,
        )

    # --- groups ------------------------------------------------------------

    def list_groups(self) -> list[Model]:
        return self._run(_walk_groups, self.req)

    def get_group(self, name: str) -> Model:
        return self._run(group_ops.get_group, self.req, name)

    def create_group(self, name: str, users: Sequence[str]) -> Model:
        members = list(users) if users else None
        return self._run(group_ops.create_groups, self.ctx, self.req, [name], members)[0]

    def delete_group(self, name: str) -> None:
        self._run(group_ops.delete_group, self.req, name)

    def change_members(self, group: str, users: Sequence[str], add: bool) -> Model:
        return self._run(group_ops.change_members, self.ctx, self.req, group, list(users), add)

    # --- tokens ------------------------------------------------------------

    def create_token(
        self, user: str, note: str | None, expires_in: int | None, scopes: Sequence[str] | None
    ) -> Model:
        body = token_body(note or f"Created with {self.actor}", expires_in, scopes)
        return self._run(token_ops.create_token, self.ctx, self.req, user, body)

    def list_tokens(self, user: str) -> list[Model]:
        return self._run(token_ops.list_tokens, self.req, user)

    def revoke_token(self, user: str, token_id: str) -> None:
        self._run(token_ops.revoke_token, self.req, user, token_id)

    # --- audit log ---------------------------------------------------------

    def list_audit(self, query: AuditQuery) -> list[Model]:
        return self._run(_audit_events, query)

    def close(self) -> None:
        self.db.close()
