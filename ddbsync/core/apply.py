"""Apply a batch of changes to PostgreSQL: one statement for the batch's tables, guarded by versions.

Two transports carry the batch's rows to that statement, chosen by the batch's size:
- JSON: one document per table that the server turns into rows (`json_to_recordset`), so a small
  batch costs one round trip and one parameter per table, in autocommit;
- COPY: the rows streamed into a session temp table per mapped table (`COPY ... FROM STDIN`, text
  format), then the same statement reading from it, in one transaction. Above a few thousand rows
  parsing one big JSON document costs the server more than COPY's line format does.
Both use one statement builder (`_table_ctes`), so the merge is the same. Within that statement:
- deletes remove the row only if their version is newer, and leave a tombstone with their version;
- upserts write only if newer than both the stored row and any tombstone of the same item,
so an older change never overwrites a newer one, also across a delete. The tombstone check is a
scalar subquery on purpose: PostgreSQL runs it as one primary-key lookup per row, where NOT EXISTS
may become a join that scans every tombstone for every row once a cached plan misjudges the table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from ddbsync.core.copy import COPY_THRESHOLD, copy_rows
from ddbsync.core.decode import Change
from ddbsync.core.version import stored_version
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


def _record_type(table: TableMapping) -> str:
    """The batch document's row type: key, version, deletion, one field per column, the extras."""
    inputs = [("_key", "text"), ("_version", "numeric"), ("_deleted", "boolean")]
    inputs += [(f"c{i}", a.type.transport) for i, a in enumerate(table.attributes)]
    if table.keeps_extras:
        inputs.append(("_extras", "text"))
    return ", ".join(f"{name} {sql_type}" for name, sql_type in inputs)


def _column_values(table: TableMapping) -> tuple[list[str], list[str]]:
    """The table's mapped columns (and extras) and the expressions that give them from a document row `b`."""
    columns = [quote_ident(a.column) for a in table.attributes]
    values = [a.type.expression.format(f"b.c{i}") for i, a in enumerate(table.attributes)]
    if table.keeps_extras:
        columns.append(quote_ident(EXTRAS_COLUMN))
        values.append("b._extras::jsonb")
    return columns, values


@lru_cache(maxsize=64)
def rows_query(table: TableMapping) -> str:
    """A batch document as the rows the apply statement would write (for comparing), deletions flagged."""
    _, values = _column_values(table)
    return f"SELECT b._deleted, {', '.join(values)} FROM json_to_recordset(%s) AS b({_record_type(table)})"


@lru_cache(maxsize=64)
def stored_rows_query(table: TableMapping) -> str:
    """The table's mapped columns as they are, in the order `rows_query` gives them."""
    columns, _ = _column_values(table)
    return f"SELECT {', '.join(columns)} FROM {quote_ident(table.sql_table)}"


def stage_table(table: TableMapping, kind: str = "batch") -> str:
    """The session temp table a batch (or a backfill's data file) of `table` is copied into.

    Named by a digest of the table's name: ASCII and short, so PostgreSQL's 63-byte cut never makes two
    tables (long or non-ASCII names) share one stage.
    """
    return quote_ident(f"ddbsync_{kind}_{hashlib.sha256(table.sql_table.encode()).hexdigest()[:32]}")


@lru_cache(maxsize=64)
def stage_statement(table: TableMapping, kind: str = "batch") -> str:
    """Create a stage once per session.

    A batch's stage empties at each commit, so nothing lingers between batches; a data file's keeps
    its rows across the commits of the COPYs that fill it, until the file's merge has committed.
    """
    on_commit = "DELETE ROWS" if kind == "batch" else "PRESERVE ROWS"
    return f"CREATE TEMP TABLE IF NOT EXISTS {stage_table(table, kind)} ({_record_type(table)}) ON COMMIT {on_commit}"


def _table_ctes(table: TableMapping, n: int, stage: str | None = None) -> str:
    """The steps that apply a batch to `table`: delete, tombstone, version-guarded upsert.

    The batch's rows come from document `$n`, or from the table's stage of kind `stage`. Stored
    versions are read through `stored_version`, so rows written on the old scale compare right.
    """
    t = quote_ident(table.sql_table)
    key_match = " AND ".join(f"t.{quote_ident(table.attributes[i].column)} = b.c{i}" for i in table.key_positions)
    key_columns = ", ".join(quote_ident(table.attributes[i].column) for i in table.key_positions)
    columns, values = _column_values(table)
    columns += [quote_ident(VERSION_COLUMN), quote_ident(SYNCED_AT_COLUMN)]
    values += ["b._version", "now()"]
    non_key = [c for i, c in enumerate(columns) if i not in table.key_positions]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in non_key)
    row_version = stored_version(f"t.{quote_ident(VERSION_COLUMN)}")
    tomb_version = stored_version("x.version")
    name = quote_literal(table.sql_table)
    tombstones = quote_ident(TOMBSTONES_TABLE)
    rows = (
        f"SELECT * FROM {stage_table(table, stage)}"
        if stage
        else f"SELECT * FROM json_to_recordset(${n}) AS b({_record_type(table)})"
    )
    return f"""b{n} AS (
    {rows}
), gone{n} AS (
    DELETE FROM {t} AS t USING b{n} AS b
    WHERE b._deleted AND {key_match} AND {row_version} < b._version
    RETURNING 1
), tomb{n} AS (
    INSERT INTO {tombstones} AS x (table_name, item_key, version)
    SELECT {name}, b._key, b._version FROM b{n} AS b WHERE b._deleted
    ON CONFLICT (table_name, item_key) DO UPDATE SET version = EXCLUDED.version, deleted_at = now()
    WHERE {tomb_version} < EXCLUDED.version
), up{n} AS (
    INSERT INTO {t} AS t ({", ".join(columns)})
    SELECT {", ".join(values)} FROM b{n} AS b
    WHERE NOT b._deleted AND b._version > coalesce((
        SELECT {tomb_version} FROM {tombstones} AS x WHERE x.table_name = {name} AND x.item_key = b._key
    ), -1)
    ON CONFLICT ({key_columns}) DO UPDATE SET {updates}
    WHERE {row_version} < EXCLUDED.{quote_ident(VERSION_COLUMN)}
    RETURNING 1
)"""


@lru_cache(maxsize=128)
def apply_statement(tables: tuple[TableMapping, ...], stage: str | None = None) -> str:
    """The one statement that applies a batch to its tables; built once per set of tables and transport.

    One statement for all the tables a batch touches (a single-table design's entities), so the
    batch commits as one transaction whatever its shape, and costs one round trip over JSON.
    """
    ctes = ", ".join(_table_ctes(table, n, stage) for n, table in enumerate(tables, 1))
    counts = " + ".join
    numbers = range(1, len(tables) + 1)
    return f"""
WITH {ctes}
SELECT {counts(f"(SELECT count(*) FROM up{n})" for n in numbers)},
       {counts(f"(SELECT count(*) FROM gone{n})" for n in numbers)},
       {counts(f"(SELECT count(*) FROM b{n} WHERE b{n}._deleted)" for n in numbers)},
       {counts(f"(SELECT count(*) FROM b{n})" for n in numbers)}
"""


def _bytea_text(value: Any) -> str:
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"cannot send {type(value).__name__} to PostgreSQL")


def batch_document(table: TableMapping, changes: Sequence[Change]) -> str:
    """The batch as one JSON array of rows; numbers travel as text, so they stay exact."""
    names = [f"c{i}" for i in range(len(table.attributes))]
    rows = []
    for change in changes:
        row = dict(zip(names, change.values))
        row["_key"], row["_version"], row["_deleted"] = change.item_key, str(change.version), change.deleted
        if table.keeps_extras:
            row["_extras"] = change.extras
        rows.append(row)
    return json.dumps(rows, ensure_ascii=False, default=_bytea_text)


class Applier:
    """Applies changes over one connection, preparing each statement once per session.

    Planning the statement costs more than running it for a batch of a hundred, so it is prepared
    once and then only executed (PostgreSQL settles on a generic plan after a few runs). Prepared
    statements and stage tables live as long as the session, so an Applier belongs to exactly one
    connection. Batches of `copy_threshold` changes or more travel by COPY (see the module's doc).
    """

    def __init__(self, copy_threshold: int = COPY_THRESHOLD) -> None:
        self.copy_threshold = copy_threshold
        self._names: dict[tuple[str | None, tuple[int, ...]], str] = {}
        self._staged: set[tuple[str, int]] = set()

    def uses_copy(self, groups: Sequence[tuple[TableMapping, Sequence[Change]]]) -> bool:
        """Whether this batch goes by COPY, which takes an explicit transaction."""
        return sum(len(changes) for _, changes in groups) >= self.copy_threshold

    def create_stages(self, cursor: Any, tables: Sequence[TableMapping], kind: str = "batch") -> None:
        """Create the tables' stages, outside any transaction (a rolled-back CREATE would be forgotten)."""
        for table in tables:
            if (kind, id(table)) not in self._staged:
                cursor.execute(stage_statement(table, kind))
                self._staged.add((kind, id(table)))

    def clear_stages(self, cursor: Any, tables: Sequence[TableMapping], kind: str = "batch") -> None:
        """Empty the stages of `tables` that exist."""
        staged = [stage_table(table, kind) for table in tables if (kind, id(table)) in self._staged]
        if staged:
            cursor.execute(f"TRUNCATE {', '.join(staged)}")

    def copy_to_stage(self, cursor: Any, table: TableMapping, changes: Sequence[Change], kind: str = "batch") -> None:
        copy_rows(cursor, stage_table(table, kind), table, changes)

    def _statement_name(self, cursor: Any, tables: tuple[TableMapping, ...], stage: str | None) -> str:
        key = (stage, tuple(id(t) for t in tables))
        name = self._names.get(key)
        if name is None:
            name = f"ddbsync_apply_{len(self._names)}"
            types = "" if stage else "(" + ", ".join("json" for _ in tables) + ")"
            cursor.execute(f"PREPARE {name} {types} AS {apply_statement(tables, stage)}")
            self._names[key] = name
        return name

    def apply_stages(self, cursor: Any, tables: Sequence[TableMapping], kind: str) -> tuple[ApplyCounts, int]:
        """Merge what the stages of `tables` hold with one statement; the counts and the rows merged."""
        cursor.execute(f"EXECUTE {self._statement_name(cursor, tuple(tables), kind)}")
        upserted, deleted, deletes, total = cursor.fetchone()
        return ApplyCounts(upserted, deleted, stale=total - upserted - deletes), total

    def apply(self, cursor: Any, table: TableMapping, changes: Sequence[Change]) -> ApplyCounts:
        """Apply changes (at most one per item) of one table in one statement; the caller commits."""
        return self.apply_tables(cursor, [(table, changes)])

    def apply_tables(self, cursor: Any, groups: Sequence[tuple[TableMapping, Sequence[Change]]]) -> ApplyCounts:
        """Apply each table's changes (at most one per item) with one statement; the caller commits.

        By COPY, the caller has opened the transaction and created the stages (`create_stages`).
        """
        groups = [(table, changes) for table, changes in groups if changes]
        if not groups:
            return ApplyCounts()
        tables = tuple(table for table, _ in groups)
        if self.uses_copy(groups):
            for table, changes in groups:
                self.copy_to_stage(cursor, table, changes)
            cursor.execute(f"EXECUTE {self._statement_name(cursor, tables, 'batch')}")
        else:
            name = self._statement_name(cursor, tables, None)
            placeholders = ", ".join("%s" for _ in groups)
            documents = tuple(batch_document(table, changes) for table, changes in groups)
            cursor.execute(f"EXECUTE {name} ({placeholders})", documents)
        upserted, deleted, deletes, _ = cursor.fetchone()
        total = sum(len(changes) for _, changes in groups)
        return ApplyCounts(upserted, deleted, stale=total - upserted - deletes)
