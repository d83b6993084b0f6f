"""Prediction batches: what each run has been asked since it was trained (workbench.monitoring). One row per
prediction batch (a file on Predict, a row by hand, `predict`, an API request): when, from where, how many rows,
and a JSON summary of its columns and predictions; never the rows themselves (those go to a Parquet file under
WORKBENCH_HOME only when WORKBENCH_LOG_ROWS=1, named in `rows_file`). A run's batches go with it.

A new table only, so SQLite never copies the runs table.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("rows_file", sa.String(255)),
    )
    op.create_index("ix_prediction_batches_run_created", "prediction_batches", ["run_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_batches_run_created", "prediction_batches")
    op.drop_table("prediction_batches")
