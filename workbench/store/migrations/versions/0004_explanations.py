"""Explanations: on runs, what the model learned (permutation importance of each input column, partial dependence
of the top columns, and what that cost), written after training by the worker or later on demand.

As 0002 and 0003: one nullable column, so SQLite never copies the runs table.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("explanation", sa.JSON))


def downgrade() -> None:
    op.drop_column("runs", "explanation")
