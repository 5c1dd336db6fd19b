"""Alembic environment: the target metadata is projected from the mappings, never written by hand."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from schema.database import resolve_database_url, sqlalchemy_url
from schema.grants import add_replicator_grants
from schema.metadata import build_metadata, owned_tables
from schema.model import load_mappings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

mappings = load_mappings()
target_metadata = build_metadata(mappings)
OWNED_TABLES = owned_tables(mappings)


def database_url() -> str:
    """An URL set on the config (tests, tools) wins over the environment."""
    return config.get_main_option("sqlalchemy.url") or sqlalchemy_url(resolve_database_url())


def include_name(name, type_, parent_names) -> bool:
    """Autogenerate compares only the tables ddbsync owns; others in the database are not ours."""
    if type_ == "table":
        return name in OWNED_TABLES
    return True


def process_revision_directives(context_, revision, directives) -> None:
    """Autogenerate with nothing to do writes no empty file; a table it creates gets the replicator's GRANT."""
    script = directives[0]
    if getattr(config.cmd_opts, "autogenerate", False) and script.upgrade_ops.is_empty():
        directives[:] = []
        return
    add_replicator_grants(script.upgrade_ops, OWNED_TABLES)


def run_migrations_offline() -> None:
    """Emit SQL for review (`alembic upgrade head --sql`) without a database connection."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the live database in one transaction."""
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_name=include_name,
            process_revision_directives=process_revision_directives,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
