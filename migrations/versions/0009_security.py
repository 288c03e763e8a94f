"""security: timeline events' audit key id, users' console session version

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:40:00.000000

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("timeline_events") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=40), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
    with op.batch_alter_table("timeline_events") as batch:
        batch.drop_column("key_id")
