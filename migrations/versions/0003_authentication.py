"""authentication: the provider of each account, TOTP, sign-up requests, login throttling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_provider", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("auth_refreshed", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_secret", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
    op.create_table(
        "signup_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_requests")),
        sa.UniqueConstraint("name", name=op.f("uq_signup_requests_name")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_signup_requests_created"), "signup_requests", ["created"], unique=False
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index(
        op.f("ix_login_throttle_last_failure"), "login_throttle", ["last_failure"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_throttle_last_failure"), table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_index(op.f("ix_signup_requests_created"), table_name="signup_requests")
    op.drop_table("signup_requests")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("auth_refreshed")
        batch_op.drop_column("auth_provider")
