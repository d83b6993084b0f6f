"""Alembic's environment, configured in code: workbench/store/schema.py hands over an open connection inside
its transaction (and migration lock), so there is no alembic.ini and no URL in here."""

from alembic import context

from workbench.store.orm import Base
from workbench.store.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,  # not `alembic_version`: Optuna's storage stamps that one in the same database
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
