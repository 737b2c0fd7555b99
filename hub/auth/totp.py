"""Native accounts' optional second factor: time-based one-time codes (RFC 6238, pyotp).

Enrolment (`/hub/totp`, `hub.auth.native_pages`) shows a new secret as a QR
code, as base32 and as an `otpauth://` URI; the secret travels to the
confirmation post encrypted (`enrolment_token`), and is stored (encrypted with
the hub's TOTP crypter, `hub.auth.crypto`) only once a code from the person's
app matches it. A code is accepted one time step either side of ours (clocks
drift), and each time step works once: `users.totp_last_step` keeps the last
one used, and the update that records a login's step is conditional on it, so
two posts of one code cannot both win.

At login, the password step answers with a code form carrying a signed,
short-lived *pending login* (`pending_token`): the user's name, an expiry, and
a fingerprint of their cookie id, so that ending their logins (a password
change, a block) also voids a pending one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import pyotp
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hub.auth.crypto import Crypter, DecryptError
from hub.db.models import User
from hub.errors import BadRequest, Forbidden, NotFound
from hub.log import bounded
from hub.ops import audit
from hub.ops.users import find_visible_user
from hub.rbac.access import Requester

DIGITS = 6
INTERVAL = 30
VALID_WINDOW = 1
# how long a password step stays good for its code, and an enrolment for its confirmation
PENDING_SECONDS = 300
ENROL_SECONDS = 1800
PENDING_COOKIE_NAME = "atrium-totp-pending"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, name: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=name, issuer_name=issuer or None
    )


def qr_data_uri(uri: str) -> str:
    """The URI as a QR code, an SVG `data:` URI (the pages' CSP allows images so)."""
    import segno

    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def clean_code(code: str) -> str:
    """A code as people type it ('123 456'), or '' if it cannot be one."""
    digits = "".join(code.split())
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else ""


def matching_step(
    secret: str, code: str, after: int | None, now: float | None = None
) -> int | None:
    """The time step whose code `code` is (within VALID_WINDOW of now) and that is later
    than `after`, the last step used; None if there is none."""
    code = clean_code(code)
    if not code:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    current = totp.timecode(time.time() if now is None else now)
    found = None
    # every candidate is compared, so the timing does not say which one matched
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step if found is None else found
    return found


# --- signed tokens carried by forms ----------------------------------------------------


def _fingerprint(cookie_id: str) -> str:
    return hashlib.sha256(f"atrium totp {cookie_id}".encode()).hexdigest()[:16]


def pending_value(name: str, cookie_id: str, now: float | None = None) -> str:
    """What the pending-login token says (the caller signs it)."""
    expires = int((time.time() if now is None else now) + PENDING_SECONDS)
    return f"{name}\n{expires}\n{_fingerprint(cookie_id)}"


def read_pending(value: str, now: float | None = None) -> tuple[str, str] | None:
    """(name, cookie fingerprint) from a verified token's value, if it has not expired."""
    parts = value.split("\n")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    if int(parts[1]) < (time.time() if now is None else now):
        return None
    return parts[0], parts[2]


def fingerprint_matches(cookie_id: str, fingerprint: str) -> bool:
    return hmac.compare_digest(_fingerprint(cookie_id), fingerprint)


def enrolment_token(crypter: Crypter, name: str, secret: str) -> str:
    """The secret being enrolled, for the confirmation form: encrypted, for one user."""
    value = {"name": name, "secret": secret, "expires": int(time.time()) + ENROL_SECONDS}
    return crypter.encrypt_json(value).decode()


def read_enrolment(crypter: Crypter, token: str, name: str) -> str:
    """The secret an enrolment token carries for `name`; BadRequest if it is not one."""
    expired = BadRequest("This set-up page is too old. Start again with a new code.")
    try:
        value = crypter.decrypt_json(token.encode())
    except (DecryptError, ValueError, UnicodeError):
        raise expired from None
    if (
        not isinstance(value, dict)
        or value.get("name") != name
        or not isinstance(value.get("secret"), str)
        or not isinstance(value.get("expires"), int)
        or value["expires"] < time.time()
    ):
        raise expired
    return str(value["secret"])


# --- the database ----------------------------------------------------------------------


@dataclass(frozen=True)
class SecondFactor:
    """A native user's TOTP state, for a login's code step."""

    secret: bytes | None  # encrypted
    last_step: int | None
    cookie_id: str
    blocked: bool
    admin: bool = False


def second_factor(session: Session, name: str) -> SecondFactor | None:
    row = session.execute(
        select(
            User.totp_secret, User.totp_last_step, User.cookie_id, User.blocked, User.admin
        ).where(User.name == name)
    ).first()
    if row is None:
        return None
    return SecondFactor(row[0], row[1], row[2], row[3], row[4])


def use_step(session: Session, name: str, step: int) -> bool:
    """Record that a login used `step`; False if that step (or a later one) was used."""
    result = session.execute(
        update(User)
        .where(
            User.name == name,
            User.totp_secret.is_not(None),
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return bool(getattr(result, "rowcount", 0))


def enable(session: Session, name: str, encrypted: bytes, step: int) -> None:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No such user: {bounded(name, 64)}")
    user.totp_secret = encrypted
    user.totp_last_step = step
    audit.record(session, name, "user.totp_enable", name)


def enable_if_off(session: Session, name: str, encrypted: bytes, step: int) -> bool:
    """Store a second factor confirmed at login (admins who must have one), unless one
    was stored meanwhile; True if this one was."""
    result = session.execute(
        update(User)
        .where(User.name == name, User.totp_secret.is_(None))
        .values(totp_secret=encrypted, totp_last_step=step)
    )
    stored = bool(getattr(result, "rowcount", 0))
    if stored:
        audit.record(session, name, "user.totp_enable", name)
    return stored


def grouped(secret: str) -> str:
    """A base32 secret in groups of four, to type by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def disable(session: Session, actor: str, name: str, action: str = "user.totp_disable") -> bool:
    """Remove `name`'s second factor; False if they had none."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No such user: {bounded(name, 64)}")
    if user.totp_secret is None:
        return False
    user.totp_secret = None
    user.totp_last_step = None
    audit.record(session, actor, action, name)
    return True


def has_totp(session: Session, name: str) -> bool:
    return session.scalar(select(User.totp_secret).where(User.name == name)) is not None


def reset_by_admin(session: Session, req: Requester, name: str) -> None:
    """An admin removes `name`'s second factor (a lost phone): they log in with their
    password alone until they enrol again. BadRequest if they have none."""
    user = find_visible_user(session, req, name, ["admin:users"])
    if user.admin and not req.is_full_admin():
        raise Forbidden("Only admins can change other admins")
    if not disable(session, req.name, user.name, "user.totp_reset"):
        raise BadRequest(f"{user.name} does not use two-step login: there is nothing to reset")
