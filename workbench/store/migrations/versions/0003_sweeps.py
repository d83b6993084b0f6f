"""Sweeps: the sweeps table (a hyperparameter search, whose Optuna study lives in the same database under
Optuna's own tables), and on runs the sweep a trial belongs to and its trial number.

As 0002: a new table and nullable columns only, so SQLite never copies the runs table.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("study_name", sa.String(128), nullable=False, unique=True),
        sa.Column("n_trials", sa.Integer, nullable=False),
        sa.Column("trials_started", sa.Integer, nullable=False),
        sa.Column("best_run_id", sa.String(32)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_sweeps_dataset_id", "sweeps", ["dataset_id"])
    op.create_index("ix_sweeps_status", "sweeps", ["status"])
    op.add_column("runs", sa.Column("sweep_id", sa.String(32)))
    op.add_column("runs", sa.Column("trial_number", sa.Integer))
    op.create_index("ix_runs_sweep_id", "runs", ["sweep_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_sweep_id", "runs")
    for column in ("trial_number", "sweep_id"):
        op.drop_column("runs", column)
    op.drop_table("sweeps")
