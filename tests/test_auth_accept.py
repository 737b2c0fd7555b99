"""The identity -> user step (`hub.auth.accept`) and the throttle's counting
(`hub.auth.throttle`), as units of work on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hub.auth import throttle
from hub.auth.accept import OTHER_PROVIDER, Accepted, Policy, Rejected, accept_identity
from hub.auth.base import Identity
from hub.db.engine import Database
from hub.db.models import AuditEvent, Group, LoginThrottle, User

BASE = Policy(
    provider="oidc",
    allowed_users=frozenset(),
    blocked_users=frozenset(),
    admin_users=frozenset(),
    allow_all=False,
    allow_existing_users=True,
    manage_groups=False,
    allowed_by_identity=False,
    exclusive=False,
    owns_passwords=False,
)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.close()


def accept(db: Database, identity: Identity, **policy: Any) -> Accepted | Rejected:
    return db.run_sync(accept_identity, dataclasses.replace(BASE, **policy), identity, None)


def user(db: Database, name: str) -> dict[str, Any] | None:
    def read(session: Any) -> dict[str, Any] | None:
        row = session.scalar(select(User).where(User.name == name))
        if row is None:
            return None
        return {
            "admin": row.admin,
            "provider": row.auth_provider,
            "groups": [g.name for g in row.groups],
            "refreshed": row.auth_refreshed,
        }

    return db.run_sync(read)


def test_nobody_new_without_an_allow_rule(db: Database) -> None:
    result = accept(db, Identity("ann"))
    assert isinstance(result, Rejected)
    assert result.reason == "not in any allow list"
    assert user(db, "ann") is None
    rules: list[tuple[str, dict[str, Any]]] = [
        ("bo", {"allow_all": True}),
        ("cy", {"allowed_users": frozenset({"cy"})}),
        ("dee", {"admin_users": frozenset({"dee"})}),
        ("eve", {"allowed_by_identity": True}),
    ]
    for name, rule in rules:
        result = accept(db, Identity(name), **rule)
        assert isinstance(result, Accepted), rule
        assert result.created
    assert isinstance(accept(db, Identity("fay"), allowed_users=frozenset({"cy"})), Rejected)


def test_a_new_user_is_audited_and_stamped(db: Database) -> None:
    result = accept(db, Identity("ann"), allow_all=True)
    assert isinstance(result, Accepted)

    def events(session: Any) -> list[tuple[str, str, str]]:
        return [(e.actor, e.action, e.target) for e in session.scalars(select(AuditEvent))]

    assert ("login:oidc", "user.create", "ann") in db.run_sync(events)
    row = user(db, "ann")
    assert row is not None
    assert row["provider"] == "oidc"
    assert row["refreshed"] is not None
    # the second login finds the same user and cookie id
    again = accept(db, Identity("ann"), allow_all=True)
    assert isinstance(again, Accepted)
    assert not again.created
    assert again.cookie_id == result.cookie_id


def test_existing_users_and_blocks(db: Database) -> None:
    db.run_sync(lambda s: s.add(User(name="cy", cookie_id="c-cy")))
    assert isinstance(accept(db, Identity("cy")), Accepted)
    assert isinstance(accept(db, Identity("cy"), allow_existing_users=False), Rejected)
    blocked = accept(db, Identity("cy"), allow_all=True, blocked_users=frozenset({"cy"}))
    assert isinstance(blocked, Rejected)
    assert blocked.reason == "in blocked_users"

    def block(session: Any) -> None:
        session.scalar(select(User).where(User.name == "cy")).blocked = True

    db.run_sync(block)
    result = accept(db, Identity("cy"), allow_all=True)
    assert isinstance(result, Rejected)
    assert result.reason == "blocked by an admin"


def test_admin_from_the_lists_and_the_identity(db: Database) -> None:
    accept(db, Identity("ann", admin=True), allow_all=True)
    assert user(db, "ann")["admin"] is True  # type: ignore[index]
    accept(db, Identity("ann"), allow_all=True)  # None: the hub keeps what it has
    assert user(db, "ann")["admin"] is True  # type: ignore[index]
    accept(db, Identity("ann", admin=False), allow_all=True)
    assert user(db, "ann")["admin"] is False  # type: ignore[index]
    accept(db, Identity("ann", admin=False), allow_all=True, admin_users=frozenset({"ann"}))
    assert user(db, "ann")["admin"] is True  # type: ignore[index]


def test_groups_only_when_managed(db: Database) -> None:
    db.run_sync(lambda s: s.add(Group(name="staff")))
    accept(db, Identity("ann", groups=("physics", "staff")), allow_all=True)
    assert user(db, "ann")["groups"] == []  # type: ignore[index]
    accept(db, Identity("ann", groups=("physics", "staff")), allow_all=True, manage_groups=True)
    assert user(db, "ann")["groups"] == ["physics", "staff"]  # type: ignore[index]
    accept(db, Identity("ann", groups=("chem",)), allow_all=True, manage_groups=True)
    assert user(db, "ann")["groups"] == ["chem"]  # type: ignore[index]
    # None: the provider said nothing of groups, so they stay
    accept(db, Identity("ann"), allow_all=True, manage_groups=True)
    assert user(db, "ann")["groups"] == ["chem"]  # type: ignore[index]
    names = db.run_sync(lambda s: sorted(s.scalars(select(Group.name))))
    assert names == ["chem", "physics", "staff"]  # groups are kept when emptied


def test_with_several_authenticators_an_account_has_one_owner(db: Database) -> None:
    mine = {"allow_all": True, "exclusive": True}
    assert isinstance(accept(db, Identity("ann"), provider="oidc", **mine), Accepted)
    refused = accept(db, Identity("ann"), provider="dummy", **mine)
    assert isinstance(refused, Rejected)
    assert refused.message == OTHER_PROVIDER
    assert user(db, "ann")["provider"] == "oidc"  # type: ignore[index]

    # a native account (made with a password, no provider yet) belongs to password
    # authenticators only
    db.run_sync(lambda s: s.add(User(name="bo", cookie_id="c-bo", password_hash="$argon2id$x")))
    assert isinstance(accept(db, Identity("bo"), provider="oidc", **mine), Rejected)
    owned = accept(db, Identity("bo"), provider="native", owns_passwords=True, **mine)
    assert isinstance(owned, Accepted)
    # an account an admin made without a password goes to the first that logs it in
    db.run_sync(lambda s: s.add(User(name="cy", cookie_id="c-cy")))
    assert isinstance(accept(db, Identity("cy"), provider="gitlab", **mine), Accepted)
    assert user(db, "cy")["provider"] == "gitlab"  # type: ignore[index]

    # with one authenticator there is no one else: switching the hub over works
    assert isinstance(accept(db, Identity("ann"), provider="github", allow_all=True), Accepted)
    assert user(db, "ann")["provider"] == "github"  # type: ignore[index]


# --- the throttle's counting ---------------------------------------------------------


RULES = throttle.ThrottleRules(account_free=2, address_free=5, max_delay=60, forget_after=600)


def test_delays_grow_and_stop_at_the_ceiling() -> None:
    delays = [RULES.delay(n, 2) for n in range(1, 12)]
    assert delays == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_failures_count_wait_and_are_forgotten(db: Database) -> None:
    keys = throttle.login_keys(RULES, "ann", "192.0.2.1", None)
    t0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
    assert db.run_sync(throttle.record_failure, RULES, keys, t0) == 0
    assert db.run_sync(throttle.record_failure, RULES, keys, t0) == 0
    assert db.run_sync(throttle.record_failure, RULES, keys, t0) == 1
    assert db.run_sync(throttle.wait_seconds, keys, t0) == 1
    assert db.run_sync(throttle.wait_seconds, keys, t0 + datetime.timedelta(seconds=2)) == 0
    # long after the last failure, the count starts again
    later = t0 + datetime.timedelta(seconds=601)
    assert db.run_sync(throttle.record_failure, RULES, keys, later) == 0

    def failures(session: Any) -> dict[str, int]:
        return {r.key: r.failures for r in session.scalars(select(LoginThrottle))}

    assert db.run_sync(failures) == {"acct:ann": 1, "addr:192.0.2.1": 1}
    # a device cookie counts apart from the account
    device = throttle.login_keys(RULES, "ann", "192.0.2.1", "dev1")
    assert device[0].value == "dev:dev1:ann"
    # old rows go away
    assert db.run_sync(throttle.forget_old, RULES, later + datetime.timedelta(days=1)) == 2
    assert db.run_sync(failures) == {}
