"""API tokens: create (never beyond the owner's or requester's scopes), list, revoke."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from hub.db.models import APIToken, User
from hub.errors import BadRequest, Forbidden, NotFound
from hub.log import bounded
from hub.ops import audit
from hub.ops.context import HubContext
from hub.ops.identity import assigned_roles, groups_lookup
from hub.ops.models import token_model
from hub.rbac import scopes
from hub.rbac.access import Requester
from hub.secrets_hash import hash_token, new_token, token_prefix
from hub.timeutil import utcnow

MAX_NOTE_LEN = 1000
MAX_ROW_ID = 2**31 - 1  # ids beyond this overflow the database's integer column
TOKEN_FIELDS = {"note", "expires_in", "scopes", "roles", "auth"}


def _owner(session: Session, req: Requester | None, name: str, scope: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No such user: {bounded(name, 64)}")
    if req is not None:
        groups = [g.name for g in user.groups]
        if not req.allows(scope, user=name, user_groups=groups):
            # visible but not permitted is still a 404 for token listings
            raise NotFound(f"No such user: {bounded(name, 64)}")
    return user


def create_token(
    session: Session,
    ctx: HubContext,
    req: Requester | None,
    owner_name: str,
    body: dict[str, Any],
) -> dict[str, Any]:
    """Create a token for `owner_name`. `req` None means the owner logged in with a password."""
    unknown = set(body) - TOKEN_FIELDS
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}")
    if req is not None and not req.has("tokens"):
        raise Forbidden("Missing scope: tokens")
    try:
        owner = _owner(session, req, owner_name, "tokens")
    except NotFound:
        # JupyterHub answers 403 here, for missing users and missing permission alike
        raise Forbidden(
            f"User {bounded(owner_name, 64)} not found or no permissions to generate tokens"
        ) from None
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_LEN):
        raise BadRequest(f"note must be a string of at most {MAX_NOTE_LEN} characters")
    if not note:
        note = "Requested via api" + (
            f" by {req.kind} {req.name}" if req and req.name != owner_name else ""
        )
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0
    ):
        raise BadRequest("expires_in must be a positive number of seconds, or null")
    if ctx.token_expires_in_max:
        if expires_in is None:
            expires_in = ctx.token_expires_in_max
        elif expires_in > ctx.token_expires_in_max:
            raise BadRequest(f"expires_in must not exceed {ctx.token_expires_in_max} seconds")
    if expires_in is not None and expires_in > 10 * 365 * 86400:
        raise BadRequest("expires_in must be at most ten years")
    raw_scopes = body.get("scopes")
    roles = body.get("roles")
    for key, value in (("scopes", raw_scopes), ("roles", roles)):
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise BadRequest(f"token {key} must be null or a list of strings")
    requested: set[str] = set()
    if roles:
        for role in roles:
            if role not in ctx.roles.roles:
                raise BadRequest(f"unknown role: {bounded(role, 64)}")
        requested |= ctx.roles.raw_scopes(roles)
    if raw_scopes:
        requested |= {scopes.validate(s) for s in raw_scopes}
    if not requested:
        requested = {"inherit"}
    _check_escalation(session, ctx, req, owner, frozenset(requested))
    token = new_token()
    now = utcnow()
    row = APIToken(
        user_id=owner.id,
        prefix=token_prefix(token),
        hashed=hash_token(token),
        scopes=sorted(requested),
        note=note,
        created=now,
        expires_at=now + datetime.timedelta(seconds=expires_in) if expires_in else None,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        req.name if req else owner.name,
        "token.create",
        owner.name,
        id=f"a{row.id}",
        scopes=sorted(requested),
        note=note[:100],
    )
    model = token_model(row, "user", owner.name)
    model["token"] = token
    return model


def _check_escalation(
    session: Session, ctx: HubContext, req: Requester | None, owner: User, requested: frozenset[str]
) -> None:
    """A token may hold only what its owner, and the requester, hold now."""
    if "inherit" in requested and len(requested) > 1:
        raise BadRequest("'inherit' cannot be combined with other scopes")
    owner_scopes = ctx.roles.user_scopes(owner.name, owner.admin, assigned_roles(session, owner.id))
    wanted = owner_scopes if "inherit" in requested else scopes.expand(requested, owner.name)
    groups_of = groups_lookup(session)
    holders = [scopes.parse(owner_scopes)] + ([req.parsed] if req is not None else [])
    missing = {s for s in wanted if not all(scopes.covered(h, s, groups_of) for h in holders)}
    if missing:
        shown = ", ".join(sorted(missing)[:5])
        raise Forbidden(f"Not allowed to grant scopes the token's owner or you lack: {shown}")


def list_tokens(session: Session, req: Requester, owner_name: str) -> list[dict[str, Any]]:
    owner = _owner(session, req, owner_name, "read:tokens")
    now = utcnow()
    session.execute(
        delete(APIToken).where(APIToken.user_id == owner.id, APIToken.expires_at <= now)
    )
    rows = session.scalars(
        select(APIToken)
        .where(APIToken.user_id == owner.id)
        .where(or_(APIToken.expires_at.is_(None), APIToken.expires_at > now))
        .order_by(APIToken.id)
    )
    return [token_model(t, "user", owner.name) for t in rows]


def _token_by_id(session: Session, owner: User, token_id: str) -> APIToken:
    not_found = NotFound(f"No such token {bounded(token_id, 32)} for user {owner.name}")
    digits = token_id[1:]
    if not token_id.startswith("a") or not (digits.isascii() and digits.isdigit()):
        raise not_found
    if len(digits) > 10 or int(digits) > MAX_ROW_ID:
        raise not_found
    row = session.get(APIToken, int(digits))
    if row is None or row.user_id != owner.id:
        raise not_found
    return row


def get_token(session: Session, req: Requester, owner_name: str, token_id: str) -> dict[str, Any]:
    owner = _owner(session, req, owner_name, "read:tokens")
    return token_model(_token_by_id(session, owner, token_id), "user", owner.name)


def revoke_token(session: Session, req: Requester, owner_name: str, token_id: str) -> None:
    owner = _owner(session, req, owner_name, "tokens")
    row = _token_by_id(session, owner, token_id)
    if row.client_id != "atrium" and row.expires_at is not None:
        # revoking an OAuth token revokes every token issued to that client for this user
        # (all of them expire); the server's own API token, which carries the client's id
        # and never expires, stays: the running server still reports activity with it
        session.execute(
            delete(APIToken).where(
                APIToken.user_id == owner.id,
                APIToken.client_id == row.client_id,
                APIToken.expires_at.is_not(None),
            )
        )
    else:
        session.delete(row)
    audit.record(session, req.name, "token.revoke", owner.name, id=token_id)
