"""Alembic environment: run on the connection (and inside the transaction and lock) that
:func:`datakeep.index.migrate.upgrade` opened, never on a connection of its own."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
