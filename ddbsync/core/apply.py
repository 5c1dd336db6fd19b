"""Apply a batch of changes to PostgreSQL: one statement per mapped table, guarded by versions.

The batch travels as one array per column and is unnested server-side, so a batch of any size costs
one round trip per table. Within that one statement:
- deletes remove the row only if their version is newer, and leave a tombstone with their version;
- upserts write only if newer than both the stored row and any tombstone of the same item,
so an older change never overwrites a newer one, also across a delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from ddbsync.core.decode import Change
from schema.metadata import EXTRAS_COLUMN, SYNCED_AT_COLUMN, TOMBSTONES_TABLE, VERSION_COLUMN
from schema.model import TableMapping


def quote_ident(name: str) -> str:
    """Quote a SQL identifier; mapping names may hold any character."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class ApplyCounts:
    """What a statement did: rows written, rows deleted, changes that lost to a newer version."""

    upserted: int = 0
    deleted: int = 0
    stale: int = 0

    def __add__(self, other: ApplyCounts) -> ApplyCounts:
        return ApplyCounts(self.upserted + other.upserted, self.deleted + other.deleted, self.stale + other.stale)


@lru_cache(maxsize=64)
def apply_statement(table: TableMapping) -> str:
    """The one statement that applies a batch of changes to `table`; built once per mapping."""
    t = quote_ident(table.sql_table)
    inputs = [("_key", "text"), ("_version", "numeric"), ("_deleted", "boolean")]
    inputs += [(f"c{i}", a.type.transport) for i, a in enumerate(table.attributes)]
    if table.keeps_extras:
        inputs.append(("_extras", "jsonb"))
    unnest = ", ".join(f"%s::{sql_type}[]" for _, sql_type in inputs)
    names = ", ".join(name for name, _ in inputs)

    key_match = " AND ".join(
        f"t.{quote_ident(table.attributes[i].column)} = b.c{i}" for i in table.key_positions
    )
    key_columns = ", ".join(quote_ident(table.attributes[i].column) for i in table.key_positions)
    columns = [quote_ident(a.column) for a in table.attributes]
    values = [a.type.expression.format(f"b.c{i}") for i, a in enumerate(table.attributes)]
    if table.keeps_extras:
        columns.append(quote_ident(EXTRAS_COLUMN))
        values.append("b._extras")
    columns += [quote_ident(VERSION_COLUMN), quote_ident(SYNCED_AT_COLUMN)]
    values += ["b._version", "now()"]
    non_key = [c for i, c in enumerate(columns) if i not in table.key_positions]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in non_key)
    version = quote_ident(VERSION_COLUMN)
    name = quote_literal(table.sql_table)
    tombstones = quote_ident(TOMBSTONES_TABLE)
    return f"""
WITH b AS (
    SELECT * FROM unnest({unnest}) AS b({names})
), gone AS (
    DELETE FROM {t} AS t USING b
    WHERE b._deleted AND {key_match} AND t.{version} < b._version
    RETURNING 1
), tomb AS (
    INSERT INTO {tombstones} AS x (table_name, item_key, version)
    SELECT {name}, b._key, b._version FROM b WHERE b._deleted
    ON CONFLICT (table_name, item_key) DO UPDATE SET version = EXCLUDED.version, deleted_at = now()
    WHERE x.version < EXCLUDED.version
), up AS (
    INSERT INTO {t} AS t ({", ".join(columns)})
    SELECT {", ".join(values)} FROM b
    WHERE NOT b._deleted AND NOT EXISTS (
        SELECT 1 FROM {tombstones} AS x
        WHERE x.table_name = {name} AND x.item_key = b._key AND x.version >= b._version
    )
    ON CONFLICT ({key_columns}) DO UPDATE SET {updates}
    WHERE t.{version} < EXCLUDED.{version}
    RETURNING 1
)
SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM gone), (SELECT count(*) FROM b WHERE b._deleted)
"""


def statement_parameters(table: TableMapping, changes: Sequence[Change]) -> list[list[Any]]:
    """The batch turned column-wise: one array per statement input."""
    columns: list[list[Any]] = [
        [c.item_key for c in changes],
        [str(c.version) for c in changes],
        [c.deleted for c in changes],
    ]
    columns += [list(col) for col in zip(*(c.values for c in changes))] or [[] for _ in table.attributes]
    if table.keeps_extras:
        columns.append([c.extras for c in changes])
    return columns


def apply_changes(cursor: Any, table: TableMapping, changes: Sequence[Change]) -> ApplyCounts:
    """Apply changes (at most one per item) of one table in one statement; the caller commits."""
    if not changes:
        return ApplyCounts()
    cursor.execute(apply_statement(table), statement_parameters(table, changes))
    upserted, deleted, deletes = cursor.fetchone()
    return ApplyCounts(upserted, deleted, stale=len(changes) - upserted - deletes)
