"""The hub's database schema: SQLAlchemy 2.0 typed models.

Every change here needs an alembic revision in `migrations/versions`; the test
`tests/test_migrations.py` fails when models and migrations drift apart.
Timestamps are stored as naive UTC (SQLite has no time zones); `hub.timeutil`
converts at the edges.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hub.timeutil import utcnow

# Stable constraint names so alembic migrations work on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Lengths: usernames and group names are bounded by validation (hub.names);
# the columns leave room for that bound.
NAME_LEN = 255


class Base(DeclarativeBase):
    """Ids are never reused (SQLite AUTOINCREMENT): a revoked token's id `aN` or a
    deleted user's id must not come to name a newer one in API calls or the audit log."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime.datetime: DateTime(timezone=False),
    }


user_group_map = Table(
    "user_group_map",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_user_group_map_group_id", "group_id"),
)

user_role_map = Table(
    "user_role_map",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)

group_role_map = Table(
    "group_role_map",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)

service_role_map = Table(
    "service_role_map",
    Base.metadata,
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    last_activity: Mapped[datetime.datetime | None] = mapped_column(index=True)
    # from a class roster or the identity provider; shown to admins, never used to log in
    full_name: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    # argon2id hash for native accounts; NULL when another authenticator owns the identity
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # encrypted with a key from the environment (hub.auth.crypto)
    encrypted_auth_state: Mapped[bytes | None] = mapped_column(LargeBinary)
    # the authenticator (its id) that logs this user in; with several on one login page,
    # another may not take the account over. NULL until the first login.
    auth_provider: Mapped[str | None] = mapped_column(String(32))
    # when the identity was last confirmed with the provider (a login or a refresh)
    auth_refreshed: Mapped[datetime.datetime | None]
    # native accounts' second factor: the TOTP secret, encrypted (hub.auth.crypto), and
    # the last time step used, so a code works once
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # random id in the hub cookie; rotating it logs the user out everywhere
    cookie_id: Mapped[str] = mapped_column(String(64), unique=True)

    groups: Mapped[list[Group]] = relationship(
        secondary=user_group_map, back_populates="users", order_by="Group.name"
    )
    roles: Mapped[list[Role]] = relationship(secondary=user_role_map)
    servers: Mapped[list[Server]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    tokens: Mapped[list[APIToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)

    users: Mapped[list[User]] = relationship(
        secondary=user_group_map, back_populates="groups", order_by="User.name"
    )
    roles: Mapped[list[Role]] = relationship(secondary=group_role_map)


class Role(Base):
    """A named set of scopes; assigned to users, groups and services."""

    __tablename__ = "roles"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    scopes: Mapped[list[str]] = mapped_column(default=list)
    # roles defined in the config file are rewritten at each start
    managed: Mapped[bool] = mapped_column(Boolean, default=False)


class Service(Base):
    __tablename__ = "services"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    url: Mapped[str | None] = mapped_column(Text)
    oauth_client_id: Mapped[str | None] = mapped_column(String(NAME_LEN))
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)

    roles: Mapped[list[Role]] = relationship(secondary=service_role_map)
    tokens: Mapped[list[APIToken]] = relationship(
        back_populates="service", cascade="all, delete-orphan", passive_deletes=True
    )


class Server(Base):
    """One of a user's servers; the default server has the name ''."""

    __tablename__ = "servers"
    __table_args__ = (
        UniqueConstraint("user_id", "name", name="uq_servers_user_id_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    # where the proxy sends this server's traffic, e.g. http://127.0.0.1:51234
    url: Mapped[str | None] = mapped_column(Text)
    # set while starting or stopping: 'spawn' or 'stop'
    pending: Mapped[str | None] = mapped_column(String(16))
    pending_since: Mapped[datetime.datetime | None]
    started: Mapped[datetime.datetime | None] = mapped_column(index=True)
    last_activity: Mapped[datetime.datetime | None]
    # what the spawner needs to find the server again after a hub restart
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # the last failure, shown to the user until the next start
    failure: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User] = relationship(back_populates="servers")


class APIToken(Base):
    """An API token, stored as a salted hash; `prefix` narrows the lookup."""

    __tablename__ = "api_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    hashed: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime.datetime | None] = mapped_column(index=True)
    last_activity: Mapped[datetime.datetime | None]
    # the hub login session that issued it (revoked together at logout)
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # the OAuth client it was issued to; 'atrium' for tokens made through the API
    client_id: Mapped[str] = mapped_column(String(NAME_LEN), default="atrium")

    user: Mapped[User | None] = relationship(back_populates="tokens")
    service: Mapped[Service | None] = relationship(back_populates="tokens")


class OAuthClient(Base):
    __tablename__ = "oauth_clients"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # salted hash of the client secret (for a server, its API token)
    secret_hash: Mapped[str] = mapped_column(String(255))
    redirect_uri: Mapped[str] = mapped_column(Text)
    allowed_scopes: Mapped[list[str]] = mapped_column(default=list)
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow)


class OAuthCode(Base):
    __tablename__ = "oauth_codes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.identifier", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(255), unique=True)
    expires_at: Mapped[datetime.datetime]
    redirect_uri: Mapped[str] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    code_challenge: Mapped[str | None] = mapped_column(String(255))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))


class AuditEvent(Base):
    """One administrative action: who did what to what, and when."""

    __tablename__ = "audit_log"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(NAME_LEN + 16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(NAME_LEN + 16), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SignupRequest(Base):
    """A native account someone asked for, waiting for an admin's approval; approving it
    makes the user (with this password hash), rejecting it deletes it."""

    __tablename__ = "signup_requests"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    created: Mapped[datetime.datetime] = mapped_column(default=utcnow, index=True)
    # the client address it came from (bounded), shown to the approving admin
    address: Mapped[str] = mapped_column(String(64), default="")


class LoginThrottle(Base):
    """Failed logins counted per key: an account (for clients it does not know), a client
    address, or an account on one known device (hub.auth.throttle). Kept in the database
    so a restart does not reset an attacker's count."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[datetime.datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime.datetime | None]
