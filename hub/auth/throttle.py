"""Slowing down password guessing, without letting a stranger lock a person out.

Failed logins are counted per key, in the database (a restart forgets
nothing), and after a number of free failures each key must wait a delay
that doubles with every further failure, up to a ceiling:

- the account, for clients that have never logged in to it: a guesser
  working on `ann` from anywhere is slowed down;
- the account on one known device: a browser that logged in as `ann` before
  holds a signed device cookie, and its failures are counted apart, so the
  guesser's delays never reach Ann's own browser (OWASP's device cookies);
- the client address (IPv6 by /64): one machine trying many accounts. A whole
  class behind one NAT address shares it, so it has far more free failures.

While a key waits, the login is refused before any password is checked, with
the same answer whether the account exists or not. A key is forgotten once its
last failure is older than `forget_after` (or its delay, if longer); a
successful login clears the account key it used.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db.models import LoginThrottle
from hub.timeutil import utcnow


@dataclass(frozen=True)
class ThrottleRules:
    account_free: int = 5
    device_free: int = 10
    address_free: int = 100
    first_delay: float = 1.0
    max_delay: float = 900.0
    forget_after: float = 3600.0

    def delay(self, failures: int, free: int) -> float:
        """Seconds to wait after `failures` failures on a key with `free` free ones."""
        if failures <= free:
            return 0.0
        return min(self.max_delay, self.first_delay * 2.0 ** (failures - free - 1))


@dataclass(frozen=True)
class Key:
    value: str
    free: int


def address_key(address: str) -> str:
    """IPv4 addresses as they are; IPv6 by their /64 (one host usually has a whole one)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "addr:" + address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        net = ipaddress.IPv6Network((ip, 64), strict=False)
        return f"addr:{net}"
    return f"addr:{ip}"


def login_keys(rules: ThrottleRules, name: str, address: str, device: str | None) -> list[Key]:
    """The keys one login attempt counts against. `device` is the id from a valid device
    cookie issued to this same account, else None."""
    account = (
        Key(f"dev:{device}:{name}", rules.device_free)
        if device
        else Key(f"acct:{name}", rules.account_free)
    )
    return [account, Key(address_key(address), rules.address_free)]


def wait_seconds(
    session: Session, keys: Sequence[Key], now: datetime.datetime | None = None
) -> int:
    """Whole seconds until a login with these keys may be tried; 0 now."""
    now = now or utcnow()
    rows = session.scalars(
        select(LoginThrottle.blocked_until).where(
            LoginThrottle.key.in_([k.value for k in keys]),
            LoginThrottle.blocked_until > now,
        )
    ).all()
    if not rows:
        return 0
    return max(math.ceil((until - now).total_seconds()) for until in rows if until is not None)


def record_failure(
    session: Session,
    rules: ThrottleRules,
    keys: Sequence[Key],
    now: datetime.datetime | None = None,
) -> int:
    """Count a failed login on every key; returns the seconds the next try must wait."""
    now = now or utcnow()
    wait = 0.0
    for key in keys:
        row = session.get(LoginThrottle, key.value)
        if row is None:
            row = LoginThrottle(key=key.value, failures=0, last_failure=now)
            session.add(row)
            try:
                with session.begin_nested():
                    session.flush()
            except IntegrityError:
                # counted at the same moment by another request
                session.expunge(row)
                row = session.get(LoginThrottle, key.value, populate_existing=True)
                if row is None:
                    continue
        stale = max(rules.forget_after, rules.delay(row.failures, key.free))
        if (now - row.last_failure).total_seconds() > stale:
            row.failures = 0
        row.failures += 1
        row.last_failure = now
        delay = rules.delay(row.failures, key.free)
        row.blocked_until = now + datetime.timedelta(seconds=delay) if delay else None
        wait = max(wait, delay)
    session.flush()
    return math.ceil(wait)


def record_success(session: Session, keys: Sequence[Key]) -> None:
    """A login worked: forget the account key it used (the address key stays: one
    success from a shared address says nothing of the other attempts from it)."""
    accounts = [k.value for k in keys if not k.value.startswith("addr:")]
    if accounts:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(accounts)))


def forget_old(session: Session, rules: ThrottleRules, now: datetime.datetime | None = None) -> int:
    """Delete keys whose last failure is long past (run now and then); returns how many."""
    now = now or utcnow()
    horizon = now - datetime.timedelta(seconds=max(rules.forget_after, rules.max_delay) * 2)
    result = session.execute(delete(LoginThrottle).where(LoginThrottle.last_failure < horizon))
    return int(getattr(result, "rowcount", 0) or 0)
