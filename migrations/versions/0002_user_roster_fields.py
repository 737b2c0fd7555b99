"""users: full name and email (from a class roster or the identity provider)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:58:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("full_name", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("email", sa.String(length=320), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email")
        batch_op.drop_column("full_name")
