"""Alembic environment: runs the service's migrations on the connection handed over by `cim db migrate`."""

from __future__ import annotations

from alembic import context

from cim_service.store.schema import META_SCHEMA, metadata

config = context.config


def run_migrations_online() -> None:
    """Run migrations on the connection given in ``config.attributes['connection']``."""
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table="alembic_version",
        version_table_schema=META_SCHEMA,
        include_schemas=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
