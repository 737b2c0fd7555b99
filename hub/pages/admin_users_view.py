"""What the users page (`hub.pages.admin_users`) shows, and the queries behind it.

`Listing` is the search, sort and page size asked for in the URL; `load_users_page`
reads one page of it in a handful of queries whatever the number of users (the
rows and the total through `hub.ops.users.list_users`, their groups, roles and
servers, the servers' last failures, the groups on offer), and turns it into
rows that say what the requester may do to each user.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import Group, Server, User
from hub.errors import BadRequest
from hub.ops import users as user_ops
from hub.ops.context import HubContext
from hub.pages.admin_panel import Pager, clamp_page, relative_time
from hub.rbac.access import Requester
from hub.timeutil import parse_timestamp, utcnow

# explicit embeddings, overrides and isolates reorder the text around them: they are
# shown as their code points, so that no name can pass for another ("\u202egnp.exe"
# reads "exe.png")
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def shown(text: str) -> str:
    """`text` as the page shows it: bidirectional controls made visible."""
    return _BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


# sort keys of the page, as shown in its column headers, and their first direction
SORTS = {"name": "name", "last_activity": "last activity", "server": "server state"}
FIRST_ORDER = {"name": "asc", "last_activity": "desc", "server": "asc"}
ORDERS = ("asc", "desc")
PER_PAGE = (25, 50, 100, 200)
DEFAULT_PER_PAGE = 50
MAX_SEARCH = 256
# groups offered in a menu for "add to group"; beyond this the page asks for a name
MAX_GROUP_CHOICES = 300
STATE_LABELS = {
    "ready": "Running",
    "starting": "Starting",
    "stopping": "Stopping",
    "stopped": "Stopped",
}


@dataclass(frozen=True)
class Listing:
    """What the page lists: a search, a sort and a page size (the page number apart)."""

    q: str = ""
    sort: str = "name"
    order: str = "asc"
    per_page: int = DEFAULT_PER_PAGE

    @property
    def descending(self) -> bool:
        return self.order == "desc"

    @property
    def api_sort(self) -> str:
        """The same order as the REST API's `sort` argument (`-name`, `server`...)."""
        return ("-" if self.descending else "") + self.sort

    def query(self, **changes: str) -> dict[str, str]:
        """Query arguments that reproduce this listing (defaults left out), changed."""
        args = {
            "q": self.q,
            "sort": "" if self.sort == "name" else self.sort,
            "order": "" if self.order == FIRST_ORDER[self.sort] else self.order,
            "per_page": "" if self.per_page == DEFAULT_PER_PAGE else str(self.per_page),
        }
        args.update(changes)
        return {k: v for k, v in args.items() if v}

    def sort_query(self, key: str) -> dict[str, str]:
        """The listing sorted by `key`: the other way round if it is sorted so already."""
        flipped = "desc" if self.order == "asc" else "asc"
        order = flipped if key == self.sort else FIRST_ORDER[key]
        return Listing(self.q, key, order, self.per_page).query()

    def aria_sort(self, key: str) -> str:
        if key != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"

    @property
    def sort_text(self) -> str:
        direction = {
            ("name", "asc"): "A to Z",
            ("name", "desc"): "Z to A",
            ("last_activity", "desc"): "most recent first",
            ("last_activity", "asc"): "least recent first",
            ("server", "asc"): "running first",
            ("server", "desc"): "stopped first",
        }[(self.sort, self.order)]
        return f"sorted by {SORTS[self.sort]}, {direction}"


def per_page_choices(max_per_page: int) -> list[int]:
    """The page sizes offered: those up to the hub's `page_max_limit`."""
    return [n for n in PER_PAGE if n <= max_per_page] or [max_per_page]


def parse_listing(get: Callable[[str, str], str | None], max_per_page: int) -> Listing:
    """The listing asked for by the query arguments (`get(name, default)`); BadRequest
    saying what is wrong for a value the page does not offer."""
    q = (get("q", "") or "").strip()
    if len(q) > MAX_SEARCH:
        raise BadRequest(f"The search is too long (at most {MAX_SEARCH} characters).")
    sort = get("sort", "") or "name"
    if sort not in SORTS:
        raise BadRequest("The list can be sorted by name, last_activity or server.")
    order = get("order", "") or FIRST_ORDER[sort]
    if order not in ORDERS:
        raise BadRequest("The order must be asc or desc.")
    choices = per_page_choices(max_per_page)
    raw = get("per_page", "") or str(min(DEFAULT_PER_PAGE, choices[-1]))
    if not raw.isascii() or not raw.isdigit() or int(raw) not in choices:
        raise BadRequest(f"Rows per page can be {', '.join(map(str, choices))}.")
    return Listing(q, sort, order, int(raw))


@dataclass(frozen=True)
class ServerView:
    name: str  # '' for the default server
    state: str  # ready | starting | stopping | stopped
    url: str
    failure: str

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]


@dataclass(frozen=True)
class RowAbilities:
    """What the requester may do to one user: the controls its row shows. The units of
    work check again when asked, so a control shown here can never do more."""

    start: bool
    stop: bool
    open: bool
    rename: bool
    set_admin: bool
    block: bool
    delete: bool

    @classmethod
    def of(cls, req: Requester, name: str, groups: tuple[str, ...], admin: bool) -> RowAbilities:
        def may(scope: str) -> bool:
            return req.allows(scope, user=name, user_groups=groups)

        full = req.is_full_admin()
        itself = req.kind == "user" and req.name == name
        # only full admins change admins, grant admin rights, or block anyone
        edit = may("admin:users") and (full or not admin)
        return cls(
            start=may("start:servers"),
            stop=may("delete:servers"),
            open=may("access:servers"),
            rename=edit,
            set_admin=edit and full and not itself,
            block=edit and full and not itself,
            delete=may("delete:users") and (full or not admin) and not itself,
        )


@dataclass(frozen=True)
class UserRow:
    name: str
    full_name: str
    email: str
    admin: bool
    blocked: bool
    groups: tuple[str, ...]
    servers: tuple[ServerView, ...]
    last_activity: str | None  # ISO 8601, as the REST API gives it
    activity_text: str
    can: RowAbilities


@dataclass(frozen=True)
class PageAbilities:
    """The page's own controls: listing at all, adding users, adding them to groups."""

    list: bool
    add: bool
    grant_admin: bool
    group: bool

    @classmethod
    def of(cls, req: Requester) -> PageAbilities:
        return cls(
            list=req.has("list:users"),
            add=req.has("admin:users"),
            grant_admin=req.is_full_admin(),
            group=req.has("groups"),
        )


@dataclass(frozen=True)
class BulkAbilities:
    """Which bulk actions the page offers: those allowed for some user on it."""

    start: bool
    stop: bool
    delete: bool
    group: bool

    @property
    def any(self) -> bool:
        return self.start or self.stop or self.delete or self.group

    def selectable(self, row: UserRow) -> bool:
        return self.group or row.can.start or row.can.stop or row.can.delete


@dataclass(frozen=True)
class UsersPage:
    rows: tuple[UserRow, ...]
    pager: Pager
    groups: tuple[str, ...]  # groups offered for "add to group"
    more_groups: bool  # too many to offer in a menu
    bulk: BulkAbilities


def server_state(model: dict[str, Any]) -> str:
    if model.get("ready"):
        return "ready"
    pending = model.get("pending")
    if pending == "spawn":
        return "starting"
    if pending == "stop":
        return "stopping"
    return "stopped"


def _failures(session: Session, names: list[str]) -> dict[tuple[str, str], str]:
    """The last failure of each of these users' servers that has one (the REST API's
    server model does not carry it)."""
    if not names:
        return {}
    rows = session.execute(
        select(User.name, Server.name, Server.failure)
        .join(User, User.id == Server.user_id)
        .where(User.name.in_(names), Server.failure.is_not(None))
    )
    return {(user, server): failure or "" for user, server, failure in rows}


def _group_choices(session: Session, req: Requester) -> tuple[tuple[str, ...], bool]:
    """Groups `req` may add people to (by name, bounded), and whether there are more."""
    if not req.has("groups"):
        return (), False
    names = session.scalars(select(Group.name).order_by(Group.name).limit(MAX_GROUP_CHOICES + 1))
    allowed = tuple(n for n in names if req.allows("groups", group=n))
    return allowed[:MAX_GROUP_CHOICES], len(allowed) > MAX_GROUP_CHOICES


def _row(
    ctx: HubContext, req: Requester, model: dict[str, Any], failures: dict[tuple[str, str], str]
) -> UserRow:
    name = str(model["name"])
    groups = tuple(model.get("groups") or ())
    servers = dict(model.get("servers") or {})
    views = [
        ServerView(
            str(server_name),
            server_state(server),
            ctx.user_url(name, server_name),
            failures.get((name, server_name), ""),
        )
        for server_name, server in sorted(servers.items())
        # named servers left from when the hub allowed them cannot be started now
        if ctx.allow_named_servers or not server_name
    ]
    if "" not in servers:  # the default server is always there to start
        views.insert(0, ServerView("", "stopped", ctx.user_url(name), failures.get((name, ""), "")))
    info = model.get("user_info") or {}
    last = model.get("last_activity")
    return UserRow(
        name=name,
        full_name=str(info.get("full_name") or ""),
        email=str(info.get("email") or ""),
        admin=bool(model.get("admin")),
        blocked=bool(model.get("blocked")),
        groups=groups,
        servers=tuple(views),
        last_activity=last,
        activity_text=relative_time(parse_timestamp(last), utcnow()) if last else "Never",
        can=RowAbilities.of(req, name, groups, bool(model.get("admin"))),
    )


def load_users_page(
    session: Session, ctx: HubContext, req: Requester, listing: Listing, page: int
) -> UsersPage:
    """One page of the listing, moved back to the last page if `page` is past it."""

    def fetch(pager_page: int) -> tuple[list[dict[str, Any]], int]:
        query = user_ops.UserQuery(
            offset=(pager_page - 1) * listing.per_page,
            limit=listing.per_page,
            name_filter=listing.q or None,
            sort=listing.sort,
            descending=listing.descending,
            include_stopped=True,
            count=True,
        )
        models, total = user_ops.list_users(session, ctx, req, query)
        return models, total or 0

    models, total = fetch(page)
    pager = clamp_page(page, listing.per_page, total)
    if pager.page != page:
        models, total = fetch(pager.page)
        pager = Pager(pager.page, listing.per_page, total)
    failures = _failures(session, [str(m["name"]) for m in models])
    groups, more = _group_choices(session, req)
    rows = tuple(_row(ctx, req, m, failures) for m in models)
    bulk = BulkAbilities(
        start=any(r.can.start for r in rows),
        stop=any(r.can.stop for r in rows),
        delete=any(r.can.delete for r in rows),
        group=bool(groups or more),
    )
    return UsersPage(rows, pager, groups, more, bulk)
