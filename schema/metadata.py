"""The SQL side of the mappings: SQLAlchemy Core tables that Alembic compares and migrates.

Besides one table per mapping, the metadata holds ddbsync's bookkeeping, so it is migrated like
everything else: the per-row version, the tombstones that keep deletes from being undone by late
older changes, and the rejects table.
"""

from __future__ import annotations

from sqlalchemy import Column, Identity, Index, MetaData, PrimaryKeyConstraint, Table, UniqueConstraint, func, text
from sqlalchemy.dialects import postgresql as pg

from schema.model import Mappings, TableMapping

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

VERSION_COLUMN = "_ddb_version"
EXTRAS_COLUMN = "_ddb_extras"
SYNCED_AT_COLUMN = "_ddb_synced_at"
TOMBSTONES_TABLE = "ddbsync_tombstones"
REJECTS_TABLE = "ddbsync_rejects"
EXPORTS_TABLE = "ddbsync_exports"
EXPORT_FILES_TABLE = "ddbsync_export_files"


def build_metadata(mappings: Mappings) -> MetaData:
    """One `MetaData` for every mapped table plus the bookkeeping tables."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for mapping in mappings.entities:
        mapped_table(metadata, mapping)
    _tombstones(metadata)
    _rejects(metadata)
    _exports(metadata)
    return metadata


def mapped_table(metadata: MetaData, mapping: TableMapping) -> Table:
    """The SQL table a mapping (or one entity) lands in: its columns, then ddbsync's version and extras."""
    keys = set(mapping.key_positions)
    # autoincrement=False: keys come from DynamoDB, so an integer key must not become a SERIAL.
    columns = [
        Column(a.column, a.type.sa_type, nullable=i not in keys, autoincrement=False)
        for i, a in enumerate(mapping.attributes)
    ]
    if mapping.keeps_extras:
        columns.append(Column(EXTRAS_COLUMN, pg.JSONB(), nullable=True))
    columns += [
        # (time in microseconds, tie-breaker) as one exact number; see ddbsync.core.version.
        Column(VERSION_COLUMN, pg.NUMERIC(), nullable=False),
        Column(SYNCED_AT_COLUMN, pg.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    ]
    return Table(mapping.sql_table, metadata, *columns, PrimaryKeyConstraint(*mapping.primary_key_columns))


def _tombstones(metadata: MetaData) -> Table:
    return Table(
        TOMBSTONES_TABLE,
        metadata,
        Column("table_name", pg.TEXT(), nullable=False),
        # SHA-256 of the canonical key (ddbsync.core.decode.item_key): bounded whatever the key's size.
        Column("item_key", pg.TEXT(), nullable=False),
        Column("version", pg.NUMERIC(), nullable=False),
        Column("deleted_at", pg.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("table_name", "item_key"),
        Index(None, "deleted_at"),
    )


def _rejects(metadata: MetaData) -> Table:
    return Table(
        REJECTS_TABLE,
        metadata,
        Column("id", pg.BIGINT(), Identity(always=False), primary_key=True),
        Column("rejected_at", pg.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
        Column("dynamodb_table", pg.TEXT(), nullable=True),
        Column("event_name", pg.TEXT(), nullable=True),
        Column("sequence_number", pg.TEXT(), nullable=True),
        Column("reason", pg.TEXT(), nullable=False),
        # json, not jsonb: it keeps the record byte for byte, NUL escapes included.
        Column("record", pg.JSON(), nullable=False),
        Column("replayed_at", pg.TIMESTAMP(timezone=True), nullable=True),
        # Which item and change: a record delivered again adds no second reject, and the item's
        # tombstone is kept while the reject waits (a replay must never bring a deleted item back).
        Column("sql_table", pg.TEXT(), nullable=True),
        Column("item_key", pg.TEXT(), nullable=True),
        Column("version", pg.NUMERIC(), nullable=True),
        Index(None, "dynamodb_table", "rejected_at"),
        UniqueConstraint("dynamodb_table", "item_key", "version"),
        Index(None, "sql_table", "item_key", postgresql_where=text("replayed_at IS NULL")),
    )


def _exports(metadata: MetaData) -> None:
    """The backfill's ledger: exports being loaded, and each data file once it is in (same transaction).

    Re-running a backfill skips the files listed here, so it resumes after a crash and changes
    nothing when it is done; the export's row is finished once its rows it lacks are deleted.
    """
    Table(
        EXPORTS_TABLE,
        metadata,
        Column("export_arn", pg.TEXT(), primary_key=True),
        Column("dynamodb_table", pg.TEXT(), nullable=False),
        Column("export_type", pg.TEXT(), nullable=False),
        Column("export_time", pg.TIMESTAMP(timezone=True), nullable=False),
        Column("data_files", pg.INTEGER(), nullable=False),
        Column("item_count", pg.BIGINT(), nullable=False),
        Column("started_at", pg.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
        Column("finished_at", pg.TIMESTAMP(timezone=True), nullable=True),
        Column("deleted", pg.BIGINT(), nullable=True),  # rows the full export did not hold, deleted at the end
    )
    Table(
        EXPORT_FILES_TABLE,
        metadata,
        Column("export_arn", pg.TEXT(), nullable=False),
        Column("data_file", pg.TEXT(), nullable=False),
        Column("items", pg.BIGINT(), nullable=False),
        Column("upserted", pg.BIGINT(), nullable=False),
        Column("deleted", pg.BIGINT(), nullable=False),
        Column("rejected", pg.BIGINT(), nullable=False),
        Column("loaded_at", pg.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("export_arn", "data_file"),
    )


def owned_tables(mappings: Mappings) -> set[str]:
    """Names of every table ddbsync creates; autogenerate leaves all others alone."""
    bookkeeping = {TOMBSTONES_TABLE, REJECTS_TABLE, EXPORTS_TABLE, EXPORT_FILES_TABLE}
    return {m.sql_table for m in mappings.entities} | bookkeeping
