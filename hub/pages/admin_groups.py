"""The admin panel's Groups pages: `/hub/admin/groups` and `/hub/admin/groups/<name>`.

The list searches group names on the server and shows each group's member count
and a summary of its properties, a page at a time; a form creates a group, and
deleting one goes through a confirmation page (`.../<name>/delete`). A group's
page lists its members (add several names at once, with a report per name;
remove one), edits its properties as JSON or as key/value rows, and for a class
starts or stops the servers of all its members (`hub.pages.admin_class`).

Changes go through the same units of work as the REST API (`hub.ops.groups`), so
they are checked against the requester's scopes and recorded in the audit log.
Reads that the API has no shape for (search with member counts, members with
their full names and servers) are small queries here.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from hub.db.models import Group, User, user_group_map
from hub.errors import AtriumError, BadRequest, Forbidden
from hub.names import validate_username
from hub.ops import groups as group_ops
from hub.ops.context import HubContext
from hub.pages.admin_class import (
    GroupServersPage,
    count_states,
    find_group,
    group_url,
    members_page,
)
from hub.pages.admin_panel import AdminPage, Pager, clamp_page
from hub.rbac.access import Requester

GROUPS_PER_PAGE = 50
# names one "add members" form may carry, and the size of the field
MAX_NAMES = 1000
MAX_NAMES_FIELD = 64 * 1024
MAX_PROPERTIES_FIELD = 2 * group_ops.MAX_PROPERTIES_BYTES
# key/value rows: how many empty rows the form offers for new properties
BLANK_ROWS = 3
_NAME_SPLIT = re.compile(r"[,\n\r]+")


# --- reads ------------------------------------------------------------------------------


def properties_summary(properties: dict[str, Any], limit: int = 3) -> str:
    """A line about a group's properties: its first keys and values, shortened."""
    if not properties:
        return ""
    parts = []
    for key in sorted(properties)[:limit]:
        value = properties[key]
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        parts.append(f"{bounded_text(key, 30)}: {bounded_text(text, 40)}")
    rest = len(properties) - limit
    return ", ".join(parts) + (f" (and {rest} more)" if rest > 0 else "")


def bounded_text(text: str, limit: int) -> str:
    """`text` shortened for display (still escaped by the template)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _visible_groups(req: Requester, query: Select[Any]) -> Select[Any]:
    """Only the groups `req` may list (as `hub.ops.groups.list_groups`)."""
    entry = req.parsed.get("list:groups")
    if entry is None:
        raise Forbidden("Your account may not list groups.")
    if isinstance(entry, dict):
        query = query.where(Group.name.in_(entry.get("group", frozenset())))
    return query


def search_groups(
    session: Session, req: Requester, text: str, page: int
) -> tuple[list[dict[str, Any]], Pager]:
    """A page of the groups whose name contains `text`, by name, with member counts."""
    members = (
        select(func.count())
        .select_from(user_group_map)
        .where(user_group_map.c.group_id == Group.id)
        .scalar_subquery()
    )
    query = _visible_groups(req, select(Group.name, Group.properties, members.label("members")))
    counter = _visible_groups(req, select(func.count()).select_from(Group))
    if text:
        like = Group.name.ilike(f"%{escape_like(text)}%", escape="\\")
        query = query.where(like)
        counter = counter.where(like)
    pager = clamp_page(page, GROUPS_PER_PAGE, session.scalar(counter) or 0)
    rows = session.execute(
        query.order_by(Group.name).offset(pager.offset).limit(pager.per_page)
    ).all()
    groups = [
        {
            "name": r.name,
            "members": r.members,
            "properties": properties_summary(dict(r.properties or {})),
        }
        for r in rows
    ]
    return groups, pager


# --- members ----------------------------------------------------------------------------


def split_names(text: str) -> list[str]:
    """The names in an "add members" field: one per line or separated by commas;
    blanks dropped, each name once, in the order given."""
    if len(text) > MAX_NAMES_FIELD:
        raise BadRequest(
            f"That is too much text for a list of names (at most {MAX_NAMES_FIELD // 1024} KiB)."
        )
    names = [n.strip() for n in _NAME_SPLIT.split(text)]
    unique = list(dict.fromkeys(n for n in names if n))
    if not unique:
        raise BadRequest("Type at least one username to add.")
    if len(unique) > MAX_NAMES:
        raise BadRequest(f"Add at most {MAX_NAMES} names at a time.")
    return unique


def add_members(
    session: Session, ctx: HubContext, req: Requester, group_name: str, names: list[str]
) -> list[tuple[str, bool]]:
    """Add the users named to the group, in one change (one audit event); names that are
    not valid, not users, or already members are reported. Returns (report line, added)
    per name, in the order given; a name given twice (`Ann`, `ann`) counts once."""
    group = find_group(session, req, group_name)
    ctx.check_membership_editable()
    checked: list[tuple[str, str, str]] = []  # (name as typed, username or "", problem)
    seen: set[str] = set()
    for raw in names:
        try:
            name = validate_username(raw)
        except BadRequest as e:
            checked.append((raw, "", e.message))
            continue
        if name not in seen:
            seen.add(name)
            checked.append((raw, name, ""))
    existing = set(session.scalars(select(User.name).where(User.name.in_(seen))))
    current = {u.name for u in group.users}
    report: list[tuple[str, bool]] = []
    to_add: list[str] = []
    for raw, name, problem in checked:
        if problem:
            report.append((f"{raw}: {problem}", False))
        elif name not in existing:
            report.append((f"{raw}: no such user", False))
        elif name in current:
            report.append((f"{name}: already a member", False))
        else:
            to_add.append(name)
            report.append((f"{name}: added", True))
    if to_add:
        group_ops.change_members(session, ctx, req, group_name, to_add, True)
    return report


# --- properties -------------------------------------------------------------------------


def parse_properties_json(text: str) -> dict[str, Any]:
    """The properties typed as JSON; BadRequest says where the JSON is wrong."""
    if len(text) > MAX_PROPERTIES_FIELD:
        raise BadRequest(
            f"The properties are too large (at most {group_ops.MAX_PROPERTIES_BYTES // 1024} KiB)."
        )
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BadRequest(
            f"The properties are not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}."
        ) from None
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else "a single value"
        raise BadRequest(
            f'The properties must be a JSON object such as {{"key": "value"}}, not {kind}.'
        )
    return value


def parse_property_rows(keys: list[str], values: list[str], kinds: list[str]) -> dict[str, Any]:
    """The properties typed as rows of (name, value, kind): kind "text" keeps the value as
    it is, "json" reads it as JSON. Rows with an empty name are dropped."""
    if not len(keys) == len(values) == len(kinds):
        raise BadRequest("The property rows are incomplete; reload the page and try again.")
    result: dict[str, Any] = {}
    for key, value, kind in zip(keys, values, kinds, strict=True):
        key = key.strip()
        if not key:
            continue
        if key in result:
            raise BadRequest(f"The property {bounded_text(key, 40)!r} is given twice.")
        if kind == "text":
            result[key] = value
        elif kind == "json":
            try:
                result[key] = orjson.loads(value)
            except orjson.JSONDecodeError as e:
                raise BadRequest(
                    f"The value of {bounded_text(key, 40)!r} is not valid JSON ({e.msg}); "
                    "choose Text to keep it as written."
                ) from None
        else:
            raise BadRequest("Each property's kind must be Text or JSON.")
    return result


def property_rows(properties: dict[str, Any]) -> list[dict[str, str]]:
    """The rows the key/value form shows: strings as text, anything else as JSON."""
    rows = []
    for key in sorted(properties):
        value = properties[key]
        if isinstance(value, str):
            rows.append({"key": key, "value": value, "kind": "text"})
        else:
            rows.append({"key": key, "value": orjson.dumps(value).decode(), "kind": "json"})
    return rows + [{"key": "", "value": "", "kind": "text"}] * BLANK_ROWS


def pretty_json(properties: dict[str, Any]) -> str:
    return orjson.dumps(properties, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


# --- pages ------------------------------------------------------------------------------


class GroupsPage(AdminPage):
    """`/hub/admin/groups`: search, list a page of groups, create one."""

    admin_tab = "groups"

    async def get(self) -> None:
        req = self.require_admin()
        await self._show(req, self.text_argument("q"), self.page_number())

    async def _show(
        self, req: Requester, text: str, page: int, status: int = 200, **extra: Any
    ) -> None:
        groups, pager = await self.db.run(search_groups, req, text, page)
        for g in groups:
            g["url"] = group_url(self.ctx.base_url, g["name"])
            g["delete_url"] = group_url(self.ctx.base_url, g["name"], "/delete")
        values: dict[str, Any] = {"new_name": "", "create_error": ""}
        values.update(extra)
        self.admin_page(
            "admin_groups.html",
            status,
            title="Groups",
            groups=groups,
            pager=pager,
            q=text,
            list_url=f"{self.admin_url}/groups",
            can_create=req.has("admin:groups"),
            can_delete=req.has("delete:groups"),
            **values,
        )

    async def post(self) -> None:
        req = self.require_admin()
        name = self.text_argument("name", 300)
        try:
            created = await self.db.run(group_ops.create_groups, self.ctx, req, [name])
        except AtriumError as e:
            if e.status >= 500:
                raise
            await self._show(req, "", 1, e.status, new_name=name, create_error=e.message)
            return
        made = created[0]["name"]
        self.done(group_url(self.ctx.base_url, made), "ok", f"Group {made} created.")


class GroupDeletePage(AdminPage):
    """`/hub/admin/groups/<name>/delete`: GET asks to confirm, POST deletes."""

    admin_tab = "groups"

    async def get(self, name: str) -> None:
        req = self.require_admin()
        info, _members, _pager = await self.db.run(members_page, req, name, 1)
        self.admin_page(
            "admin_group.html",
            title=f"Delete group {info['name']}",
            mode="delete",
            group=info,
            group_url=group_url(self.ctx.base_url, name),
            delete_url=group_url(self.ctx.base_url, name, "/delete"),
        )

    async def post(self, name: str) -> None:
        req = self.require_admin()
        await self.db.run(group_ops.delete_group, req, name)
        self.done(f"{self.admin_url}/groups", "ok", f"Group {name} deleted. Its members were not.")


class GroupPage(AdminPage):
    """`/hub/admin/groups/<name>`: members, properties and the class's servers."""

    admin_tab = "groups"

    async def get(self, name: str) -> None:
        req = self.require_admin()
        await self._show(req, name, self.page_number())

    async def _show(
        self, req: Requester, name: str, page: int, status: int = 200, **extra: Any
    ) -> None:
        info, members, pager = await self.db.run(members_page, req, name, page)
        here = group_url(self.ctx.base_url, name)
        values: dict[str, Any] = {
            "names_text": "",
            "names_error": "",
            "json_text": pretty_json(info["properties"]),
            "json_error": "",
            "rows": property_rows(info["properties"]),
            "rows_error": "",
        }
        values.update(extra)
        self.admin_page(
            "admin_group.html",
            status,
            title=f"Group {info['name']}",
            mode="view",
            group=info,
            members=members,
            pager=pager,
            group_url=here,
            delete_url=here + "/delete",
            servers_url=here + "/servers",
            status_url=f"{here}/servers?page={pager.page}",
            counts=count_states(members),
            can_edit=req.allows("groups", group=name),
            can_start=req.has_any(("servers", "start:servers")),
            can_stop=req.has_any(("servers", "delete:servers")),
            can_delete=req.allows("delete:groups", group=name),
            nonce=self.script_nonce(),
            **values,
        )

    async def post(self, name: str) -> None:
        req = self.require_admin()
        actions = {
            "add_members": self._add_members,
            "remove_member": self._remove_member,
            "properties_json": self._properties_json,
            "properties_rows": self._properties_rows,
        }
        action = actions.get(self.get_body_argument("action", ""))
        if action is None:
            raise BadRequest("Unknown action; reload the page and try again.")
        await action(req, name)

    async def _add_members(self, req: Requester, name: str) -> None:
        text = self.get_body_argument("names", "", strip=False)
        try:
            names = split_names(text)
        except BadRequest as e:
            await self._show(
                req, name, 1, 400, names_text=text[:MAX_NAMES_FIELD], names_error=e.message
            )
            return
        report = await self.db.run(add_members, self.ctx, req, name, names)
        added = sum(1 for _line, ok in report if ok)
        noun = "name" if len(report) == 1 else "names"
        self.done(
            group_url(self.ctx.base_url, name),
            "ok" if added == len(report) else "error",
            f"Added {added} of {len(report)} {noun} to {name}.",
            [line for line, _ok in report],
        )

    async def _remove_member(self, req: Requester, name: str) -> None:
        user = self.text_argument("username", 300)
        await self.db.run(group_ops.change_members, self.ctx, req, name, [user], False)
        self.done(group_url(self.ctx.base_url, name), "ok", f"Removed {user} from {name}.")

    async def _properties_json(self, req: Requester, name: str) -> None:
        text = self.get_body_argument("properties", "", strip=False)
        try:
            props = parse_properties_json(text)
            await self.db.run(group_ops.set_properties, req, name, props)
        except BadRequest as e:
            await self._show(
                req, name, 1, 400, json_text=text[:MAX_PROPERTIES_FIELD], json_error=e.message
            )
            return
        self.done(group_url(self.ctx.base_url, name), "ok", f"Properties of {name} saved.")

    async def _properties_rows(self, req: Requester, name: str) -> None:
        keys = self.get_body_arguments("key")
        values = self.get_body_arguments("value", strip=False)
        kinds = self.get_body_arguments("kind")
        try:
            props = parse_property_rows(keys, values, kinds)
            await self.db.run(group_ops.set_properties, req, name, props)
        except BadRequest as e:
            typed = [
                {"key": k, "value": v, "kind": t}
                for k, v, t in zip(keys, values, kinds, strict=False)
            ]
            await self._show(req, name, 1, 400, rows=typed, rows_error=e.message)
            return
        self.done(group_url(self.ctx.base_url, name), "ok", f"Properties of {name} saved.")


routes = [
    (r"/admin/groups", GroupsPage),
    (r"/admin/groups/([^/]+)", GroupPage),
    (r"/admin/groups/([^/]+)/delete", GroupDeletePage),
    (r"/admin/groups/([^/]+)/servers", GroupServersPage),
]
