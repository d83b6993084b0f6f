"""Run groups and score intervals: the run_groups table (a repeated run and its stored fold assignments), and on
runs the group a member belongs to, which of its test rows it had, and the 95% interval of each test score.

Only new tables and nullable columns: SQLite adds them with ALTER TABLE, so the runs table is never copied (a copy
would drop the old table, and with foreign keys on that would cascade to the epochs). Older runs read intervals
as empty: they show their points only.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_groups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("scheme", sa.JSON, nullable=False),
        sa.Column("scheme_key", sa.String(64), nullable=False),
        sa.Column("test_share", sa.Float, nullable=False),
        sa.Column("n_members", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_run_groups_dataset_id", "run_groups", ["dataset_id"])
    op.create_index("ix_run_groups_scheme_key", "run_groups", ["scheme_key"])
    op.add_column("runs", sa.Column("intervals", sa.JSON))
    op.add_column("runs", sa.Column("group_id", sa.String(32)))
    op.add_column("runs", sa.Column("member", sa.String(16)))
    op.create_index("ix_runs_group_id", "runs", ["group_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_group_id", "runs")
    for column in ("member", "group_id", "intervals"):
        op.drop_column("runs", column)
    op.drop_table("run_groups")
