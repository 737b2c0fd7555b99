"""A native user's account, as units of work: which password hash a login checks,
changing the password (which ends the user's other logins), and an admin setting one.

Changing a password gives the user a new cookie id, so every other browser's
login cookie stops working, and revokes the tokens issued through their other
login sessions (an open JupyterLab tab elsewhere loses access) and any OAuth
codes not yet exchanged. The browser that made the change keeps its login
session (the caller sets its cookie again with the new id) and its tokens.
API tokens made on purpose (token page, API) stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth.passwords import PasswordRules, check_new_password
from hub.db.models import SignupRequest, User
from hub.errors import BadRequest, Forbidden, NotFound
from hub.log import bounded
from hub.ops import audit
from hub.ops.users import end_logins, find_visible_user
from hub.rbac.access import Requester


@dataclass(frozen=True)
class StoredPassword:
    """The hash a password login checks, and whose it is."""

    hash: str | None
    # "user": an account; "pending": a sign-up waiting for approval; "": neither
    kind: str


def stored_password(session: Session, name: str) -> StoredPassword:
    """The hash of an unblocked user's password, else of a waiting sign-up's."""
    row = session.execute(select(User.password_hash, User.blocked).where(User.name == name)).first()
    if row is not None:
        hashed, blocked = row
        return StoredPassword(None if blocked else hashed, "user" if hashed and not blocked else "")
    pending = session.scalar(select(SignupRequest.password_hash).where(SignupRequest.name == name))
    return StoredPassword(pending, "pending" if pending else "")


def has_password(session: Session, name: str) -> bool:
    return session.scalar(select(User.password_hash).where(User.name == name)) is not None


def password_hash(session: Session, name: str) -> str | None:
    return session.scalar(
        select(User.password_hash).where(User.name == name, User.blocked.is_(False))
    )


def change_password(
    session: Session,
    name: str,
    new_hash: str,
    keep_session: str | None,
) -> str:
    """Store `new_hash` (already checked against the rules and hashed) as `name`'s
    password and end their other logins; returns the new cookie id."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None or user.password_hash is None:
        raise NotFound(f"{bounded(name, 64)} has no password on this hub")
    user.password_hash = new_hash
    end_logins(session, user, keep_session)
    audit.record(session, name, "user.password_change", name)
    session.flush()
    return user.cookie_id


def check_change(password: str, again: str, name: str, rules: PasswordRules) -> None:
    """The new password's two copies agree and it passes the rules; BadRequest if not."""
    if password != again:
        raise BadRequest("The two new passwords are not the same. Type the same one twice.")
    check_new_password(password, name, rules)


def set_by_admin(
    session: Session, req: Requester, name: str, new_hash: str, provider: str | None
) -> str:
    """An admin gives `name` a password (checked and hashed by the caller): a first one
    for an account made without, or a new one for someone who forgot theirs. Their
    logins end. Accounts another authenticator logs in are refused (`provider`, the
    native authenticator's id; None offline, where the config is not read, and an
    account of another authenticator stays closed to passwords anyway). Returns the name."""
    user = find_visible_user(session, req, name, ["admin:users"])
    if user.admin and not req.is_full_admin():
        raise Forbidden("Only admins can change other admins")
    if provider is not None and user.auth_provider not in (None, provider):
        raise BadRequest(
            f"{user.name} logs in with {user.auth_provider}: the hub keeps no password for them"
        )
    user.password_hash = new_hash
    end_logins(session, user)
    audit.record(session, req.name, "user.password_set", user.name)
    session.flush()
    return user.name
