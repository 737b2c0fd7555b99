"""Sign-up requests for native accounts: made on `/hub/signup`, approved or rejected by
an admin (the admin panel's Sign-ups page, `/hub/api/signups`, `hub-admin signup`).

A request keeps the name, the argon2id hash of the chosen password, an optional
full name and email, and the client address it came from. Approving it creates
the user with that hash (their account belongs to the native authenticator);
rejecting it deletes it. With approval turned off, sign-up creates the user at
once (`create_account`). Every step is in the audit log: `signup.request`,
`signup.approve` (with `user.create`), `signup.reject`.

These are units of work for `Database.run`; the pages are `hub.auth.native_pages`,
the API `hub.api.signups`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db.models import SignupRequest, User
from hub.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from hub.log import bounded
from hub.ops import audit
from hub.ops.users import new_cookie_id
from hub.rbac.access import Requester
from hub.rbac.scopes import ALL
from hub.timeutil import isoformat, utcnow

MAX_FULL_NAME = 200
MAX_EMAIL = 320
MAX_ADDRESS = 64
# who the audit log says acted when a person signed themselves up
SIGNUP_ACTOR = "signup"


def taken_message(name: str) -> str:
    return f"The username {name} is taken. Choose another one."


@dataclass(frozen=True)
class NewAccount:
    """What a sign-up form asked for, checked; `password_hash` is argon2id."""

    name: str
    password_hash: str
    full_name: str = ""
    email: str = ""
    address: str = ""


def check_email(value: str) -> str:
    """An email address as a person typed it, loosely checked ('' for none)."""
    email = value.strip()
    if not email:
        return ""
    if len(email) > MAX_EMAIL:
        raise BadRequest(f"The email address is too long (at most {MAX_EMAIL} characters).")
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(ch.isspace() for ch in email):
        raise BadRequest(
            "The email address does not look right: it should be like ann@example.org."
        )
    return email


def check_full_name(value: str) -> str:
    name = " ".join(value.split())
    if len(name) > MAX_FULL_NAME:
        raise BadRequest(f"The full name is too long (at most {MAX_FULL_NAME} characters).")
    return name


def name_taken(session: Session, name: str) -> bool:
    """A user or a waiting sign-up request has this name."""
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        return True
    return session.scalar(select(SignupRequest.id).where(SignupRequest.name == name)) is not None


def request_account(session: Session, new: NewAccount, max_pending: int) -> None:
    """Keep a sign-up request for an admin to approve. Conflict if the name is taken;
    TooManyRequests if `max_pending` requests are already waiting."""
    if name_taken(session, new.name):
        raise Conflict(taken_message(new.name))
    pending = session.scalar(select(func.count()).select_from(SignupRequest)) or 0
    if pending >= max_pending:
        raise TooManyRequests(
            "Too many sign-ups are waiting for approval just now. Please try again later.",
            retry_after=3600,
        )
    row = SignupRequest(
        name=new.name,
        password_hash=new.password_hash,
        full_name=new.full_name,
        email=new.email,
        address=new.address[:MAX_ADDRESS],
        created=utcnow(),
    )
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(taken_message(new.name)) from None
    audit.record(session, SIGNUP_ACTOR, "signup.request", new.name, address=row.address)


def create_account(session: Session, new: NewAccount, provider: str) -> None:
    """Make the user at once (sign-up without approval). Conflict if the name is taken."""
    if name_taken(session, new.name):
        raise Conflict(taken_message(new.name))
    _make_user(session, new.name, new.password_hash, new.full_name, new.email, provider)
    audit.record(session, SIGNUP_ACTOR, "user.create", new.name, address=new.address[:MAX_ADDRESS])


def _make_user(
    session: Session,
    name: str,
    password_hash: str,
    full_name: str,
    email: str,
    provider: str | None,
) -> User:
    user = User(
        name=name,
        admin=False,
        blocked=False,
        cookie_id=new_cookie_id(),
        password_hash=password_hash,
        full_name=full_name,
        email=email,
        auth_provider=provider,
        created=utcnow(),
    )
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(taken_message(name)) from None
    return user


def pending_hash(session: Session, name: str) -> str | None:
    """The password hash of a waiting sign-up request for `name`, if there is one."""
    return session.scalar(select(SignupRequest.password_hash).where(SignupRequest.name == name))


# --- what admins do ------------------------------------------------------------------


def require_signup_admin(req: Requester) -> None:
    """Deciding on sign-ups makes accounts: admin:users over every user."""
    if req.parsed.get("admin:users") != ALL:
        raise Forbidden("Deciding on sign-up requests needs admin:users for every user")


def _model(row: SignupRequest) -> dict[str, Any]:
    return {
        "name": row.name,
        "full_name": row.full_name,
        "email": row.email,
        "created": isoformat(row.created),
        "address": row.address,
    }


def list_requests(
    session: Session, req: Requester, offset: int = 0, limit: int = 200
) -> tuple[list[dict[str, Any]], int]:
    """A page of waiting requests, oldest first, and how many wait in all."""
    require_signup_admin(req)
    rows = session.scalars(
        select(SignupRequest)
        .order_by(SignupRequest.created.asc(), SignupRequest.id.asc())
        .offset(offset)
        .limit(limit)
    ).all()
    total = session.scalar(select(func.count()).select_from(SignupRequest)) or 0
    return [_model(r) for r in rows], int(total)


def _request_row(session: Session, name: str) -> SignupRequest:
    row = session.scalar(select(SignupRequest).where(SignupRequest.name == name))
    if row is None:
        raise NotFound(f"No sign-up request for {bounded(name, 64)} is waiting")
    return row


def approve(session: Session, req: Requester, name: str, provider: str | None) -> str:
    """Make the user a request asked for, with its password; returns the name.
    `provider` is the native authenticator's id (None offline, where the config is not
    read: the first login records it)."""
    require_signup_admin(req)
    row = _request_row(session, name)
    if session.scalar(select(User.id).where(User.name == row.name)) is not None:
        raise Conflict(f"A user named {row.name} already exists; reject this request instead")
    _make_user(session, row.name, row.password_hash, row.full_name, row.email, provider)
    session.execute(delete(SignupRequest).where(SignupRequest.id == row.id))
    audit.record(session, req.name, "signup.approve", row.name)
    audit.record(session, req.name, "user.create", row.name, admin=False)
    return row.name


def reject(session: Session, req: Requester, name: str) -> None:
    require_signup_admin(req)
    row = _request_row(session, name)
    session.execute(delete(SignupRequest).where(SignupRequest.id == row.id))
    audit.record(session, req.name, "signup.reject", row.name)
