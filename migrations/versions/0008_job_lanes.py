"""job lanes: every job carries the priority of its purpose (#15)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0")
        )
    # Queued sends already there keep their order behind the engine's jobs.
    op.execute("UPDATE jobs SET priority = 2 WHERE kind = 'delivery.send'")
    op.create_index("ix_jobs_status_priority_run_at", "jobs", ["status", "priority", "run_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_priority_run_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("priority")
