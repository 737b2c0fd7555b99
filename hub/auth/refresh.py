"""Asking the identity provider again: on page visits and before a server starts.

A logged-in user's identity is refreshed with their authenticator when it is
older than `auth_refresh_age` (checked when they open a hub page) and, with
`refresh_pre_spawn`, before each server start. The authenticator answers True
(nothing new), a new `Identity` (applied like a login: lists, admin, groups,
auth state), or None/False: the provider no longer vouches for the user, who
is then logged out everywhere (and the start is refused).

Before every start, the authenticator's `pre_spawn_start` gets the decrypted
auth state, e.g. to pass an access token to the server's environment.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth.accept import Policy, Rejected, accept_identity
from hub.auth.base import Authenticator, Identity
from hub.auth.crypto import DecryptError
from hub.db.models import User
from hub.errors import BadRequest, Forbidden
from hub.ops.users import new_cookie_id
from hub.timeutil import utcnow

if TYPE_CHECKING:
    from hub.ops.servers import ServerRef
    from hub.state import HubState

log = logging.getLogger("hub.auth")

EXPIRED = "Your login has expired. Please log in again to start your server."


@dataclass(frozen=True)
class AuthRow:
    provider: str | None
    refreshed: datetime.datetime | None
    encrypted_state: bytes | None


def _auth_row(session: Session, name: str) -> AuthRow | None:
    row = session.execute(
        select(User.auth_provider, User.auth_refreshed, User.encrypted_auth_state).where(
            User.name == name
        )
    ).first()
    return AuthRow(*row) if row is not None else None


def _log_out_everywhere(session: Session, name: str) -> None:
    user = session.scalar(select(User).where(User.name == name))
    if user is not None:
        user.cookie_id = new_cookie_id()


def authenticator_of(state: HubState, provider: str | None) -> Authenticator:
    auth = state.auth.get(provider) if provider else None
    return auth or state.auth.authenticators[0]


def auth_state_of(state: HubState, row: AuthRow) -> dict[str, Any] | None:
    crypter = state.auth.crypter
    if crypter is None or row.encrypted_state is None:
        return None
    try:
        value = crypter.decrypt_json(row.encrypted_state)
    except DecryptError:
        log.warning("Stored auth state could not be decrypted (was the key changed?)")
        return None
    return value if isinstance(value, dict) else None


async def refresh_user(state: HubState, name: str, force: bool = False) -> bool:
    """Refresh `name`'s identity if due (or `force`); False means they were logged out."""
    row = await state.db.run(_auth_row, name)
    if row is None:
        return False
    auth = authenticator_of(state, row.provider)
    if not auth.can_refresh:
        return True
    if not force:
        age = auth.auth_refresh_age
        if not age:
            return True
        if row.refreshed is not None and (utcnow() - row.refreshed).total_seconds() < age:
            return True
    try:
        outcome = await auth.refresh(name, auth_state_of(state, row))
    except Exception:
        # a provider that cannot be reached does not log everyone out
        log.warning("Refreshing %s with %s failed", name, auth.ident, exc_info=True)
        return True
    if outcome is True:
        await state.db.run(_touch, name)
        return True
    if isinstance(outcome, Identity):
        try:
            identity = dataclasses.replace(
                outcome,
                name=auth.normalize_username(outcome.name),
                groups=auth.normalize_groups(outcome.groups),
            )
        except BadRequest:
            identity = None
        if identity is not None and identity.name == name:
            crypter = state.auth.crypter
            policy = Policy.of(auth, identity, state.auth.exclusive)
            encrypt = crypter.encrypt_json if crypter is not None else None
            result = await state.db.run(accept_identity, policy, identity, encrypt)
            if not isinstance(result, Rejected):
                state.requester_cache.invalidate()
                return True
            log.info("%s is no longer allowed (%s): logged out", name, result.reason)
    log.info("%s's identity provider no longer vouches for them: logged out", name)
    await state.db.run(_log_out_everywhere, name)
    state.requester_cache.invalidate()
    return False


def _touch(session: Session, name: str) -> None:
    user = session.scalar(select(User).where(User.name == name))
    if user is not None:
        user.auth_refreshed = utcnow()


def before_start_hook(state: HubState) -> Any:
    """The orchestrator's hook run before each start (see the module docstring)."""

    async def before_start(ref: ServerRef, spawner: Any) -> None:
        row = await state.db.run(_auth_row, ref.user_name)
        if row is None:
            return
        auth = authenticator_of(state, row.provider)
        if auth.refresh_pre_spawn and auth.can_refresh:
            if not await refresh_user(state, ref.user_name, force=True):
                raise Forbidden(EXPIRED)
            row = await state.db.run(_auth_row, ref.user_name) or row
        await auth.pre_spawn_start(ref.user_name, auth_state_of(state, row), spawner)

    return before_start
